"""The logging middleware on a toy Protocol: fields, redaction, caps, errors, level filtering."""

from __future__ import annotations

import datetime as dt
import enum
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import pytest

from delinkcious.model.errors import NotFound
from delinkcious.model.markers import idempotent
from delinkcious.platform.logs import REDACTED, TRUNCATED, capped
from delinkcious.platform.middleware import logging as logging_module
from delinkcious.platform.middleware import wrap
from delinkcious.platform.middleware.logging import logging_middleware
from delinkcious.platform.transport.introspection import describe
from tests.support.logs import Captured, assert_line_fields, restored_logging

PASSWORD = "correct horse battery staple"
TOKEN = "tok_9f8e7d6c5b4a"


class Colour(enum.StrEnum):
    RED = "red"


@dataclass(frozen=True, slots=True)
class Item:
    name: str
    tags: frozenset[str]
    when: dt.datetime
    colour: Colour
    api_token: str


@runtime_checkable
class Toy(Protocol):
    async def login(self, username: str, password: str) -> str:
        """Answer a session token."""
        ...

    async def put(self, item: Item, note: str = "") -> Item: ...

    @idempotent
    async def many(self, count: int) -> list[str]: ...

    async def missing(self, name: str) -> None: ...

    async def broken(self) -> None: ...


class ToyService:
    def __init__(self) -> None:
        self.not_found = NotFound("no such toy", code="toy_not_found")
        self.crash = RuntimeError("the toy broke")

    async def login(self, username: str, password: str) -> str:
        return TOKEN

    async def put(self, item: Item, note: str = "") -> Item:
        return item

    async def many(self, count: int) -> list[str]:
        return [f"entry-{i:04d}" for i in range(count)]

    async def missing(self, name: str) -> None:
        raise self.not_found

    async def broken(self) -> None:
        raise self.crash


ITEM = Item(
    name="kite",
    tags=frozenset({"sky", "blue", "air"}),
    when=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
    colour=Colour.RED,
    api_token=TOKEN,
)


@pytest.fixture
def logs() -> Iterator[Captured]:
    with restored_logging():
        captured = Captured()
        captured.setup()
        yield captured


def toy(**options: object) -> tuple[Toy, ToyService]:
    core = ToyService()
    return wrap(Toy, "toy", core, logging_middleware(**options)), core  # type: ignore[arg-type]


async def test_the_wrapped_service_still_satisfies_its_protocol(logs: Captured) -> None:
    wrapped, _ = toy()
    assert isinstance(wrapped, Toy)
    assert set(describe(Toy)) <= set(dir(wrapped))
    assert wrapped.login.__doc__ == "Answer a session token."
    assert type(wrapped).__name__ == "ToyViaLogging"
    assert await wrapped.login("alice", PASSWORD) == TOKEN


async def test_a_call_is_one_json_line_with_every_field(logs: Captured) -> None:
    wrapped, _ = toy()
    assert await wrapped.put(ITEM, note="first") is ITEM
    [record] = logs.records()
    assert_line_fields(record)
    assert record["event"] == "call"
    assert record["level"] == "info"
    assert record["service"] == "toy"
    assert record["method"] == "put"
    # Who made the call, past the middleware layers: this test.
    module, function, line = record["called_from"].split(":")
    assert (module, function) == (__name__, "test_a_call_is_one_json_line_with_every_field")
    assert int(line) > 0
    assert isinstance(record["duration_ms"], float)
    assert record["duration_ms"] >= 0
    assert record["trace_id"] is None and record["span_id"] is None
    expected = {
        "name": "kite",
        "tags": ["air", "blue", "sky"],
        "when": "2026-01-02T03:04:05+00:00",
        "colour": "red",
        "api_token": REDACTED,
    }
    assert record["request"] == {"item": expected, "note": "first"}
    assert record["result"] == expected


async def test_passwords_tokens_and_login_results_never_appear(logs: Captured) -> None:
    wrapped, _ = toy()
    await wrapped.login("alice", PASSWORD)
    await wrapped.put(ITEM, note=f"Authorization: Bearer {TOKEN}")
    await wrapped.put(ITEM, note=f"postgresql://app:{PASSWORD.replace(' ', '-')}@db/links")
    login, bearer, url = logs.calls()
    assert login["request"] == {"username": "alice", "password": REDACTED}
    assert login["result"] == REDACTED
    assert bearer["request"]["note"] == f"Authorization: {REDACTED}"
    assert url["request"]["note"] == f"postgresql://app:{REDACTED}@db/links"
    for secret in (PASSWORD, TOKEN, "correct", PASSWORD.replace(" ", "-")):
        assert secret not in logs.text


async def test_large_requests_and_results_are_cut_with_a_marker(logs: Captured) -> None:
    wrapped, _ = toy(max_field=200)
    entries = await wrapped.many(500)
    assert len(entries) == 500  # the caller gets everything; only the log is cut
    [record] = logs.calls()
    assert isinstance(record["result"], str)
    assert record["result"].endswith(TRUNCATED)
    assert len(record["result"]) == 200 + len(TRUNCATED)
    assert record["result"].startswith('["entry-0000","entry-0001"')
    assert record["request"] == {"count": 500}  # short: stays structured


async def test_a_domain_error_passes_through_unchanged_and_is_a_warning(logs: Captured) -> None:
    wrapped, core = toy()
    with pytest.raises(NotFound) as raised:
        await wrapped.missing("kite")
    assert raised.value is core.not_found
    assert type(raised.value) is NotFound
    assert raised.value.code == "toy_not_found"
    [record] = logs.records()
    assert_line_fields(record)
    assert record["level"] == "warning"
    assert record["method"] == "missing"
    assert record["error"] == "NotFound: no such toy"
    assert record["code"] == "toy_not_found"
    assert record["request"] == {"name": "kite"}
    assert "result" not in record
    assert record["called_from"].startswith(f"{__name__}:test_a_domain_error")


async def test_an_unexpected_error_passes_through_unchanged_and_is_an_error(
    logs: Captured,
) -> None:
    wrapped, core = toy()
    with pytest.raises(RuntimeError) as raised:
        await wrapped.broken()
    assert raised.value is core.crash
    assert type(raised.value) is RuntimeError
    [record] = logs.records()
    assert record["level"] == "error"
    assert record["error"] == "RuntimeError: the toy broke"
    assert "code" not in record


async def test_filtered_out_calls_build_no_payload(
    logs: Captured, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = []

    def counting_capped(value: object, max_chars: int) -> object:
        built.append(value)
        return capped(value, max_chars)

    monkeypatch.setattr(logging_module, "capped", counting_capped)
    logs.setup(level="WARNING")
    wrapped, _ = toy()
    await wrapped.put(ITEM)
    await wrapped.login("alice", PASSWORD)
    assert built == []
    assert logs.text == ""
    # A failure is still logged at WARNING, with its request.
    with pytest.raises(NotFound):
        await wrapped.missing("kite")
    [record] = logs.records()
    assert record["level"] == "warning"
    assert record["request"] == {"name": "kite"}
    assert len(built) == 1


async def test_errors_pass_through_when_filtered_out_too(logs: Captured) -> None:
    logs.setup(level="CRITICAL")
    wrapped, core = toy()
    with pytest.raises(RuntimeError) as raised:
        await wrapped.broken()
    assert raised.value is core.crash
    assert logs.text == ""


async def test_console_format_is_one_readable_line_per_call(logs: Captured) -> None:
    logs.setup(fmt="console")
    wrapped, _ = toy()
    await wrapped.login("alice", PASSWORD)
    [line] = logs.lines()
    assert "call" in line and "method=login" in line and "service=toy" in line
    assert PASSWORD not in line and TOKEN not in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


async def test_successful_reads_log_at_debug_and_changes_at_info(logs: Captured) -> None:
    """Reads are the bulk of the traffic: at the usual INFO level they cost nothing."""
    wrapped, _ = toy()
    await wrapped.many(3)  # @idempotent: a read
    await wrapped.put(ITEM)
    assert [(r["method"], r["level"]) for r in logs.calls()] == [
        ("many", "debug"),
        ("put", "info"),
    ]
