"""Log-capturing helpers: ``setup_logging`` into a buffer, and the process's logging restored."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import warnings
from collections.abc import Iterator
from typing import Any

import structlog

from delinkcious.platform.logs import QUIET_LOGGERS, TAKEN_OVER, setup_logging

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
# Every line has these; a service call's line also has CALL_FIELDS.
LINE_FIELDS = ("timestamp", "level", "service", "called_from", "event", "trace_id", "span_id")
CALL_FIELDS = ("method", "request", "duration_ms")
_TOUCHED = ("", *TAKEN_OVER, *QUIET_LOGGERS)


@contextlib.contextmanager
def restored_logging() -> Iterator[None]:
    """Undo what ``setup_logging`` changes (structlog's and logging's global state)."""
    saved = {
        name: (list(logger.handlers), logger.level, logger.propagate)
        for name in _TOUCHED
        for logger in [logging.getLogger(name)]
    }
    structlog_config = structlog.get_config()
    showwarning = warnings.showwarning
    try:
        yield
    finally:
        logging.captureWarnings(False)
        warnings.showwarning = showwarning
        structlog.configure(**structlog_config)
        for name, (handlers, level, propagate) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate


class Captured:
    """Where a test's log lines go: ``setup_logging`` pointed at a string buffer."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def setup(self, service: str = "toy", level: str = "DEBUG", fmt: str | None = "json") -> None:
        setup_logging(service, level, fmt, self.stream)

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[str]:
        return self.text.splitlines()

    def records(self) -> list[dict[str, Any]]:
        """Every line, parsed: a line that is not one JSON object fails the test."""
        parsed = []
        for line in self.lines():
            record = json.loads(line)
            assert isinstance(record, dict), line
            parsed.append(record)
        return parsed

    def calls(self) -> list[dict[str, Any]]:
        return [record for record in self.records() if record.get("event") == "call"]


def assert_line_fields(record: dict[str, Any]) -> None:
    missing = [name for name in LINE_FIELDS if name not in record]
    assert not missing, f"missing {missing} in {record}"
    assert TIMESTAMP.match(record["timestamp"]), record["timestamp"]
    assert record["level"] in ("debug", "info", "warning", "error", "critical"), record
    assert record["called_from"].count(":") == 2, record["called_from"]
