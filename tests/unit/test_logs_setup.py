"""``setup_logging``: formats, levels, stdlib loggers routed, trace ids, redaction everywhere."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import subprocess
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import structlog
from opentelemetry.sdk.trace import TracerProvider

from delinkcious.platform.logs import (
    REDACTED,
    capped,
    parse_format,
    parse_level,
    scrub,
    setup_logging,
)
from tests.support.logs import Captured, assert_line_fields, restored_logging

SECRET = "s3cr3t-value-42"


@pytest.fixture
def logs() -> Iterator[Captured]:
    with restored_logging():
        yield Captured()


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_json_lines_have_the_common_fields(logs: Captured) -> None:
    logs.setup(service="links", level="INFO")
    structlog.get_logger("t").info("hello", answer=42)
    [record] = logs.records()
    assert_line_fields(record)
    assert record["event"] == "hello"
    assert record["level"] == "info"
    assert record["service"] == "links"
    assert record["answer"] == 42
    assert record["called_from"].startswith(f"{__name__}:test_json_lines_have_the_common_fields:")
    assert list(record)[:5] == ["timestamp", "level", "service", "event", "called_from"]


def test_version_is_on_every_line_when_given(logs: Captured) -> None:
    from delinkcious.platform.logs import setup_logging

    setup_logging("links", "INFO", "json", logs.stream, version="1.2.3")
    structlog.get_logger().info("hello")
    logging.getLogger("delinkcious.x").warning("there")
    assert [record["version"] for record in logs.records()] == ["1.2.3", "1.2.3"]


def test_console_format_is_for_people(logs: Captured) -> None:
    logs.setup(fmt="console")
    structlog.get_logger().warning("disk nearly full", free_mb=12)
    logging.getLogger("delinkcious.bus").warning("slow consumer %s", "news")
    first, second = logs.lines()
    assert "disk nearly full" in first and "free_mb=12" in first and "warning" in first
    assert "slow consumer news" in second and "delinkcious.bus" in second
    assert "trace_id" not in first  # no None noise outside a trace
    with pytest.raises(json.JSONDecodeError):
        json.loads(first)


def test_the_default_format_is_console_on_a_terminal_and_json_elsewhere() -> None:
    from delinkcious.platform.logs import setup_logging

    with restored_logging():
        terminal = Terminal()
        setup_logging("links", "INFO", None, terminal)
        structlog.get_logger().info("hello")
        assert not terminal.getvalue().startswith("{")
        assert "hello" in terminal.getvalue()
    with restored_logging():
        pipe = io.StringIO()
        setup_logging("links", "INFO", "", pipe)
        structlog.get_logger().info("hello")
        assert json.loads(pipe.getvalue())["event"] == "hello"


def test_the_level_filters_structlog_and_stdlib_alike(logs: Captured) -> None:
    logs.setup(level="warning")
    log = structlog.get_logger()
    log.info("quiet")
    log.debug("quieter")
    logging.getLogger("delinkcious.outbox").info("quiet too")
    log.warning("loud")
    logging.getLogger("delinkcious.outbox").error("louder")
    assert [record["event"] for record in logs.records()] == ["loud", "louder"]
    assert [record["level"] for record in logs.records()] == ["warning", "error"]


@pytest.mark.parametrize("bad", ["verbose", "", "10", "inf o"])
def test_an_unknown_level_is_a_clear_value_error(bad: str) -> None:
    with pytest.raises(ValueError, match=r"is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL"):
        parse_level(bad)


def test_levels_and_formats_are_case_insensitive() -> None:
    assert parse_level("debug") == logging.DEBUG
    assert parse_level(" Warning ") == logging.WARNING
    assert parse_format("JSON") == "json"
    assert parse_format(None) is None
    with pytest.raises(ValueError, match="is not one of json, console"):
        parse_format("xml")


def test_bad_settings_change_nothing(logs: Captured) -> None:
    from delinkcious.platform.logs import setup_logging

    before = list(logging.getLogger().handlers)
    with pytest.raises(ValueError):
        setup_logging("links", "chatty", "json", logs.stream)
    with pytest.raises(ValueError):
        setup_logging("links", "INFO", "yaml", logs.stream)
    assert logging.getLogger().handlers == before


def test_stdlib_loggers_go_through_the_same_renderer(logs: Captured) -> None:
    # uvicorn's own dictConfig gives its loggers handlers and propagate=False: taken over.
    uvicorn = logging.getLogger("uvicorn.error")
    uvicorn.addHandler(logging.StreamHandler(io.StringIO()))
    uvicorn.propagate = False
    logs.setup(level="INFO")
    uvicorn.warning("Invalid HTTP request received.")
    logging.getLogger("sqlalchemy.engine.Engine").warning("pool overflow")
    logging.getLogger("delinkcious.gateway").info("ready on %s", "127.0.0.1:5000")
    logging.getLogger("httpx").info('HTTP Request: GET http://x "HTTP/1.1 200 OK"')
    logging.getLogger("httpx").warning("retrying")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        logging.captureWarnings(True)
        warnings.warn("old api", DeprecationWarning, stacklevel=1)
    records = logs.records()
    for record in records:
        assert_line_fields(record)
        assert record["service"] == "toy"
    by_logger = {record["logger"]: record for record in records}
    assert set(by_logger) == {
        "uvicorn.error",
        "sqlalchemy.engine.Engine",
        "delinkcious.gateway",
        "httpx",
        "py.warnings",
    }
    assert by_logger["httpx"]["event"] == "retrying"  # httpx's INFO chatter is off
    assert by_logger["delinkcious.gateway"]["event"] == "ready on 127.0.0.1:5000"
    assert by_logger["delinkcious.gateway"]["called_from"].startswith(
        f"{__name__}:test_stdlib_loggers_go_through_the_same_renderer:"
    )


def test_exceptions_are_rendered_in_the_line_and_scrubbed(logs: Captured) -> None:
    logs.setup()
    try:
        raise RuntimeError(f"cannot connect to postgresql://app:{SECRET}@db/links")
    except RuntimeError:
        logging.getLogger("delinkcious.startup").exception("start failed")
        structlog.get_logger().exception("start failed again")
    first, second = logs.records()
    for record in (first, second):
        assert record["level"] == "error"
        assert (
            "RuntimeError: cannot connect to postgresql://app:[redacted]@db" in record["exception"]
        )
    assert SECRET not in logs.text


def test_trace_and_span_ids_come_from_the_current_span(logs: Captured) -> None:
    logs.setup()
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("outer") as span:
        structlog.get_logger().info("inside")
        logging.getLogger("delinkcious.links").info("inside too")
    structlog.get_logger().info("outside")
    context = span.get_span_context()
    inside, inside_too, outside = logs.records()
    for record in (inside, inside_too):
        assert record["trace_id"] == format(context.trace_id, "032x")
        assert record["span_id"] == format(context.span_id, "016x")
        assert len(record["trace_id"]) == 32 and len(record["span_id"]) == 16
    assert outside["trace_id"] is None and outside["span_id"] is None


def test_secrets_are_redacted_wherever_they_appear(logs: Captured) -> None:
    logs.setup()
    log = structlog.get_logger()
    log.info(
        "login attempt",
        password=SECRET,
        headers={"Authorization": f"Bearer {SECRET}", "Accept": "application/json"},
        nested=[{"credentials": {"user": "a", "pw": SECRET}}],
        url=f"redis://:{SECRET}@cache:6379/0",
        note=f"Access-Token: {SECRET}",
    )
    log.info("numbers too", pin=1234, session_token=987654321, user={"password": SECRET})
    logging.getLogger("delinkcious.x").info("sent token=%s and api_key=%s", SECRET, SECRET)
    log.info(f"Authorization: Bearer {SECRET}")
    first, numbers, second, third = logs.records()
    assert numbers["pin"] == 1234
    assert numbers["session_token"] == REDACTED
    assert numbers["user"] == {"password": REDACTED}
    assert first["password"] == REDACTED
    assert first["headers"] == {"Authorization": REDACTED, "Accept": "application/json"}
    assert first["nested"] == [{"credentials": REDACTED}]
    assert first["url"] == "redis://:[redacted]@cache:6379/0"
    assert first["note"] == "Access-Token: [redacted]"
    assert second["event"] == "sent token=[redacted] and api_key=[redacted]"
    assert third["event"] == "Authorization: [redacted]"
    assert SECRET not in logs.text


def test_scrub_leaves_ordinary_text_alone() -> None:
    message = (
        "send your access token in the Access-Token header (or Authorization: Bearer); "
        "get one with POST /v1/sessions"
    )
    assert scrub(message) == message
    assert scrub("https://example.com/a?b=c") == "https://example.com/a?b=c"
    assert scrub('{"access_token": "abc def", "user": "x"}') == (
        '{"access_token": "[redacted]", "user": "x"}'
    )


def test_capped_values_stay_structured_when_short() -> None:
    assert capped({"a": [1, 2], "token": "t"}, 100).value == {"a": [1, 2], "token": REDACTED}
    # An absent secret hides nothing: it stays null (a first page has no start_token).
    assert capped({"start_token": None}, 100).value == {"start_token": None}
    cut = capped({"text": "x" * 500}, 50).value
    assert isinstance(cut, str) and cut.startswith('{"text":"xxx') and cut.endswith("(truncated)")


@dataclass(frozen=True)
class Account:
    name: str
    api_token: str | None


def test_capped_redacts_at_any_depth() -> None:
    accounts = [Account(f"a{i}", SECRET) for i in range(10)]
    nested = {"page": {"items": [{"credentials": {"password": SECRET}}]}}
    strings = [f"Authorization: Bearer {SECRET}", f"https://u:{SECRET}@example.com/"]
    for value in (accounts, nested, strings, {"accounts": accounts}, (Account("b", None),)):
        encoded = capped(value, 4096).json.decode()
        assert SECRET not in encoded, encoded
    assert capped((Account("b", None),), 4096).value == [{"name": "b", "api_token": None}]
    assert capped(nested, 4096).value == {"page": {"items": [{"credentials": REDACTED}]}}


def test_capped_cuts_long_lists_before_encoding_them() -> None:
    cut = capped(list(range(100_000)), 100).value
    assert isinstance(cut, str) and cut.startswith("[0,1,2,") and cut.endswith("(truncated)")
    assert len(cut) == 100 + len("…(truncated)")
    # Only about what fits is encoded: the rest is a "…(N more)" marker, or cut off.
    page = capped([Account(f"user{i}", None) for i in range(500)], 1024).json.decode()
    assert page.startswith('[{"name":"user0","api_token":null},')
    assert "user499" not in page
    assert "more)" in page or page.endswith('(truncated)"')


# --- HotLogger: the access log's direct JSON line ------------------------------------------


def test_a_hot_line_is_the_line_structlog_would_write(logs: Captured) -> None:
    from delinkcious.platform.logs import HotLogger, setup_logging

    setup_logging("gateway", "INFO", "json", logs.stream, version="1.2.3")
    fields: dict[str, str | int | float | None] = {
        "route": "/v1/links",
        "status": 200,
        "duration_ms": 1.5,
        "user": None,
    }
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("request"):
        structlog.get_logger("delinkcious.access").info("request", called_from="m:f:1", **fields)
        HotLogger("delinkcious.access", "m:f:1").log(logging.INFO, "request", fields)
    slow, hot = logs.records()
    assert list(hot) == list(slow)  # same fields, same order
    del slow["timestamp"], hot["timestamp"]
    assert hot == slow
    assert hot["trace_id"] is not None and hot["version"] == "1.2.3"


def test_a_hot_logger_follows_the_level_and_the_format(logs: Captured) -> None:
    from delinkcious.platform.logs import HotLogger

    hot = HotLogger("delinkcious.access", "m:f:1")
    logs.setup(level="WARNING")
    assert not hot.enabled(logging.INFO) and hot.enabled(logging.ERROR)
    logs.setup(level="INFO", fmt="console")
    assert hot.enabled(logging.INFO) and not hot.enabled(logging.DEBUG)
    hot.log(logging.ERROR, "request", {"route": "/v1/links", "status": 503})
    [line] = logs.lines()
    assert "request" in line and "status=503" in line and "error" in line and "{" not in line


# --- the writer: JSON straight to the descriptor, hot lines batched per loop turn ----------


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "stderr.log"
    with restored_logging(), path.open("w") as stream:
        setup_logging("gateway", "INFO", "json", stream)
        yield path


def lines_in(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_hot_lines_of_one_loop_turn_go_out_together_at_its_end(log_file: Path) -> None:
    from delinkcious.platform.logs import HotLogger

    hot = HotLogger("delinkcious.access", "m:f:1")
    hot.log(logging.INFO, "request", {"n": 1})
    hot.log(logging.INFO, "request", {"n": 2})
    assert lines_in(log_file) == []  # still this turn
    await asyncio.sleep(0)
    assert [line["n"] for line in lines_in(log_file)] == [1, 2]


async def test_any_other_line_writes_the_waiting_hot_lines_first(log_file: Path) -> None:
    from delinkcious.platform.logs import HotLogger

    HotLogger("delinkcious.access", "m:f:1").log(logging.INFO, "request", {"n": 1})
    structlog.get_logger().warning("after")
    assert [line["event"] for line in lines_in(log_file)] == ["request", "after"]
    await asyncio.sleep(0)
    assert len(lines_in(log_file)) == 2  # the scheduled flush found nothing more to write


def test_outside_an_event_loop_a_hot_line_is_written_at_once(log_file: Path) -> None:
    from delinkcious.platform.logs import HotLogger

    HotLogger("delinkcious.access", "m:f:1").log(logging.INFO, "request", {"n": 1})
    assert [line["n"] for line in lines_in(log_file)] == [1]


def test_a_hot_line_of_the_last_loop_turn_is_not_lost_at_exit(tmp_path: Path) -> None:
    program = (
        "import asyncio, logging\n"
        "from delinkcious.platform.logs import HotLogger, setup_logging\n"
        "setup_logging('gateway', 'INFO', 'json')\n"
        "async def main():\n"
        "    HotLogger('delinkcious.access', 'm:f:1').log(logging.INFO, 'request', {'n': 1})\n"
        "    asyncio.get_running_loop().stop()\n"  # the loop ends before its next turn
        "loop = asyncio.new_event_loop()\n"
        "loop.create_task(main())\n"
        "loop.run_forever()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    [line] = [json.loads(text) for text in done.stderr.splitlines()]
    assert (line["event"], line["n"]) == ("request", 1)


def test_a_cached_logger_answers_for_the_level_of_the_latest_setup() -> None:
    from delinkcious.platform.logs import CachedLogger

    cached = CachedLogger("delinkcious.calls")
    with restored_logging():
        setup_logging("links", "INFO", "json", io.StringIO())
        assert cached.enabled(logging.INFO) and not cached.enabled(logging.DEBUG)
        setup_logging("links", "DEBUG", "json", io.StringIO())
        assert cached.enabled(logging.DEBUG)
        setup_logging("links", "ERROR", "json", io.StringIO())
        assert not cached.enabled(logging.WARNING) and cached.enabled(logging.ERROR)
