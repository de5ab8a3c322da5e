"""Structured logs: one JSON object per line on stderr (or a console format for people).

``setup_logging`` configures structlog *and* the standard library's ``logging`` (uvicorn,
httpx, SQLAlchemy, asyncio, our own ``logging.getLogger`` calls) to go through the same
processors and renderer, so every line a process writes looks alike::

    {"timestamp": "2025-01-01T12:00:00.123456Z", "level": "info", "service": "links",
     "event": "call", "called_from": "delinkcious.gateway.app:add_link:203", ...}

Every line carries ``trace_id`` / ``span_id`` of the current OpenTelemetry span (null when
there is none). Values under secret-looking keys (password, token, secret, ...) become
``"[redacted]"`` at any depth, and bearer tokens, ``key=value`` secrets and URL passwords
are scrubbed from strings, so a secret never reaches the output.
"""

from __future__ import annotations

import asyncio
import atexit
import dataclasses
import datetime as dt
import enum
import functools
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping
from types import FrameType
from typing import Any, TextIO

import orjson
import structlog
from pydantic import BaseModel, SecretBytes, SecretStr
from structlog.typing import EventDict, Processor, WrappedLogger

from delinkcious.platform.tracing import current_span_context

REDACTED = "[redacted]"
TRUNCATED = "…(truncated)"
FORMATS = ("json", "console")
LEVELS = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "WARN": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
}
# Libraries that say too much at INFO (httpx logs every request it sends).
QUIET_LOGGERS = {
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
    "alembic.runtime.plugins": logging.WARNING,  # "setup plugin ..." at every start
}
# Loggers that install handlers of their own (uvicorn's default config): we take them over.
TAKEN_OVER = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
# The fields every line starts with, in this order (the rest follow as logged).
_HEAD = ("timestamp", "level", "service", "event", "called_from")
# Fields our own code writes, as strings: never secret, not worth scrubbing.
_TRUSTED = frozenset(
    (
        *("timestamp", "level", "service", "called_from", "trace_id", "span_id", "logger"),
        *("version", "method", "code", "http_method", "route", "status", "user", "client"),
    )
)
# Frames never named as a line's origin: logging machinery and our middleware layers.
CALLSITE_IGNORES = (
    "logging",
    "delinkcious.platform.logs",
    "delinkcious.platform.middleware",
)
_NATIVE_IGNORES = ("structlog", *CALLSITE_IGNORES)


# --- redaction --------------------------------------------------------------------------

_KEYWORDS = r"pass(?:word|wd|phrase)|secret|token|authori[sz]ation|api[_-]?key|credential|cookie"
_SECRET_KEY = re.compile(_KEYWORDS, re.IGNORECASE)
_SCRUB = re.compile(
    # scheme://user:PASSWORD@host
    r"(?P<url>\b[a-z][a-z0-9+.\-]{0,30}://[^\s/:@]{0,256}:)[^\s/@]{1,256}(?=@)"
    # Authorization: Bearer TOKEN (anywhere, with or without the header name)
    r"|(?P<bearer>\bbearer\s+)(?!\[redacted\])[\w.~+/=\-]+"
    # password=..., token: ..., "access_token": "...", Access-Token: ...
    rf"|(?P<kv>(?:{_KEYWORDS})[\w\-]{{0,64}}[\"']?\s{{0,8}}[:=]\s{{0,8}})"
    r"(?!(?:bearer|basic)\b\S)(?!\[redacted\])"
    r"(?P<value>\"[^\"]*\"|'[^']*'|(?:(?:bearer|basic)\s+)?[^\s\"'&,;}]+)",
    re.IGNORECASE,
)
# Cheap first look (on lower-cased text): no keyword and no URL password, nothing to scrub.
_TRIGGER = re.compile(r"pass|secret|token|authori|api[_-]?key|credential|cookie|bearer")
# In JSON made here (bytes: no slow paths for non-ASCII text): a keyword that starts a
# ``key=``/``key:`` pair, and the pairs already safe.
_PAIR_AT = re.compile(rf"(?:{_KEYWORDS})[\w\-]{{0,64}}\\?[\"']?\s{{0,8}}[:=]".encode())
_SAFE_PAIR_AT = re.compile(
    rf'(?:{_KEYWORDS})[\w\-]{{0,64}}":(?:"\[redacted\]"|null)[,}}\]]'.encode()
)
_JSON_TRIGGERS = (
    b"pass", b"secret", b"token", b"authori", b"api_key", b"api-key", b"apikey", b"credential",
    b"cookie",
)  # fmt: skip


@functools.lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """Whether values under this key are never logged (password, token, api_key, ...)."""
    return _SECRET_KEY.search(key) is not None


def _scrubbed(match: re.Match[str]) -> str:
    prefix = match.group("url") or match.group("bearer")
    if prefix is not None:
        return prefix + REDACTED
    value = match.group("value")
    quote = value[0] if value[0] in "\"'" else ""
    return f"{match.group('kv')}{quote}{REDACTED}{quote}"


def scrub(text: str) -> str:
    """``text`` with bearer tokens, ``key=value`` secrets and URL passwords redacted."""
    if _TRIGGER.search(text.lower()) is None and not ("@" in text and "://" in text):
        return text
    return _SCRUB.sub(_scrubbed, text)


def _json_is_clean(encoded: bytes) -> bool:
    """Whether JSON encoded by ``capped`` certainly holds nothing ``scrub`` would change.

    Looks for what could need it (a URL with a password, a bearer token, a secret-named
    key or ``key=value`` pair not already ``"[redacted]"`` or null) with plain substring
    searches, so the common case costs no regex over the whole text.
    """
    lowered = encoded.lower()  # ASCII only: the keywords are
    if b"bearer" in lowered or (b"@" in encoded and b"://" in encoded):
        return False
    for trigger in _JSON_TRIGGERS:
        at = lowered.find(trigger)
        while at >= 0:
            if _PAIR_AT.match(lowered, at) and not _SAFE_PAIR_AT.match(lowered, at):
                return False
            at = lowered.find(trigger, at + 1)
    return True


class Sanitized:
    """A value already JSON-encoded, redacted and capped: later processors leave it be.

    The JSON renderer embeds ``json`` as it is; ``value`` is the same as Python data.
    """

    __slots__ = ("json",)

    def __init__(self, json: bytes) -> None:
        self.json = json

    @property
    def value(self) -> Any:
        return orjson.loads(self.json)

    def __repr__(self) -> str:
        return f"Sanitized({self.json.decode()})"


class _Budget:
    """How many more characters are worth building before the field is cut anyway."""

    __slots__ = ("left",)

    def __init__(self, left: int) -> None:
        self.left = left


_MAX_DEPTH = 12
_MORE = "…"


def sanitize(value: Any, budget: int | None = None) -> Any:
    """``value`` as JSON-safe data with secrets redacted.

    Dataclasses and pydantic models become dicts, sets sorted lists, datetimes ISO 8601
    strings, enums their value; values under secret-looking keys become ``"[redacted]"``.
    With a ``budget`` (characters), building stops about there: callers that cap the size
    of what they log need not convert the whole of a large value first.
    """
    return _sanitize(value, _Budget(budget if budget is not None else sys.maxsize), 0)


def _sanitize(value: Any, budget: _Budget, depth: int) -> Any:
    if value is None or value is True or value is False:
        budget.left -= 5
        return value
    kind = type(value)
    if kind is str:
        budget.left -= len(value) + 3
        return scrub(value)
    if kind is int or kind is float:
        budget.left -= 8
        return value
    if depth >= _MAX_DEPTH:
        budget.left -= 3
        return _MORE
    if isinstance(value, Mapping):
        return _sanitize_items(value.items(), budget, depth)
    if isinstance(value, enum.Enum):
        return _sanitize(value.value, budget, depth)
    if isinstance(value, str):
        budget.left -= len(value) + 3
        return scrub(str(value))
    if isinstance(value, (bool, int, float)):
        budget.left -= 8
        return value
    if isinstance(value, (list, tuple)):
        return _sanitize_sequence(value, budget, depth)
    if isinstance(value, (set, frozenset)):
        return _sanitize_sequence(_sorted(value), budget, depth)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        budget.left -= 30
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _sanitize_items(
            ((f.name, getattr(value, f.name)) for f in dataclasses.fields(value)), budget, depth
        )
    if isinstance(value, (SecretStr, SecretBytes)):
        budget.left -= 12
        return REDACTED
    if isinstance(value, BaseModel):
        return _sanitize(value.model_dump(mode="python"), budget, depth)
    if isinstance(value, (bytes, bytearray, memoryview)):
        budget.left -= 16
        return f"<{len(value)} bytes>"
    if isinstance(value, BaseException):
        return _sanitize(f"{type(value).__name__}: {value}", budget, depth)
    if isinstance(value, Sanitized):
        return value.value
    return _sanitize(str(value), budget, depth)


def _sanitize_items(items: Any, budget: _Budget, depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    budget.left -= 2
    for key, item in items:
        if budget.left <= 0:
            out[_MORE] = _MORE
            break
        name = key if type(key) is str else str(key)
        budget.left -= len(name) + 4
        if item is not None and is_secret_key(name):  # None hides nothing: kept as null
            budget.left -= 12
            out[name] = REDACTED
        else:
            out[name] = _sanitize(item, budget, depth + 1)
    return out


def _sanitize_sequence(items: Any, budget: _Budget, depth: int) -> list[Any]:
    out: list[Any] = []
    budget.left -= 2
    for item in items:
        if budget.left <= 0:
            out.append(_MORE)
            break
        budget.left -= 1
        out.append(_sanitize(item, budget, depth + 1))
    return out


_FIELDS: dict[type, tuple[tuple[str, bool], ...]] = {}
_CAPPED_OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_NON_STR_KEYS


def _sorted(items: Any) -> list[Any]:
    """A set as a list in a stable order (by value, or by repr when values do not compare)."""
    try:
        return sorted(items)
    except TypeError:
        return sorted(items, key=repr)


def _native_default(value: Any) -> Any:
    """orjson's ``default`` for lists: dataclasses stay orjson's (in C), sets are sorted."""
    if isinstance(value, (set, frozenset)):
        return _sorted(value)
    if isinstance(value, Sanitized):
        return orjson.Fragment(value.json)
    return _sanitize(value, _Budget(sys.maxsize), 1)


_ITEM_SIZES: dict[type, int] = {}


def _list_fragment(items: Any, max_chars: int) -> orjson.Fragment:
    """A list encoded by orjson itself, cut to about what fills ``max_chars``, marked.

    The log keeps only ``max_chars`` characters anyway: a page of 100 links need not be
    encoded to log its first few (how many is judged by the first item). Dataclasses in
    the list are left to orjson, without redaction: ``capped``'s look at the encoded text
    sends any secret-named field among them to the careful path.
    """
    count = len(items)
    if count > 4:
        kind = type(items[0])
        size = _ITEM_SIZES.get(kind)
        if size is None:
            size = _ITEM_SIZES[kind] = len(orjson.dumps(items[0], default=_native_default))
        keep = max_chars // max(size, 1) + 2
        if count > keep:
            items = [*items[:keep], f"{_MORE}({count - keep} more)"]
            count = keep
    encoded = orjson.dumps(items, default=_native_default)
    if count > 4 and len(_ITEM_SIZES) < 1024:  # learn the typical size of such items
        _ITEM_SIZES[type(items[0])] = len(encoded) // (count + 1) + 1
    return orjson.Fragment(encoded)


@functools.lru_cache(maxsize=16)
def _encoder(max_chars: int) -> Any:
    """orjson's ``default`` for ``capped``: dataclasses (redacted, long lists cut), sets."""

    def default(value: Any) -> Any:
        kind = type(value)
        if kind is frozenset or kind is set:
            return _sorted(value)
        fields = _FIELDS.get(kind)
        if fields is None and dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = _FIELDS[kind] = tuple(
                (field.name, is_secret_key(field.name)) for field in dataclasses.fields(value)
            )
        if fields is not None:
            out = {}
            for name, secret in fields:
                item = getattr(value, name)
                if secret and item is not None:
                    item = REDACTED
                elif type(item) is frozenset:
                    item = _sorted(item)
                elif type(item) is list or type(item) is tuple:
                    item = _list_fragment(item, max_chars)
                out[name] = item
            return out
        if isinstance(value, (set, frozenset)):
            return _sorted(value)
        if isinstance(value, Sanitized):
            return orjson.Fragment(value.json)
        return _sanitize(value, _Budget(max_chars + 64), 1)

    return default


def capped(value: Any, max_chars: int) -> Sanitized:
    """``value`` as redacted JSON; longer than ``max_chars`` characters, cut there.

    A short value stays structured (an object in the log line); a long one becomes the
    first ``max_chars`` characters of its JSON followed by ``…(truncated)`` (long lists
    are cut first, with a ``…(N more)`` marker). Dataclasses and the top level of a dict
    have their secret-named fields redacted on the way (orjson, in C); only when the
    encoded text shows something more to redact is the value walked in Python.
    """
    default = _encoder(max_chars)
    try:
        if type(value) is dict:
            value = {
                key: (
                    REDACTED
                    if item is not None and type(key) is str and is_secret_key(key)
                    else _list_fragment(item, max_chars)
                    if type(item) is list or type(item) is tuple
                    else item
                )
                for key, item in value.items()
            }
        elif type(value) is list or type(value) is tuple:
            value = _list_fragment(value, max_chars)
        encoded = orjson.dumps(value, default=default, option=_CAPPED_OPTIONS)
        clean = _json_is_clean(encoded)
    except (TypeError, orjson.JSONEncodeError):
        clean = False
    if not clean:
        sanitized = _sanitize(value, _Budget(max_chars + 64), 0)
        try:
            encoded = orjson.dumps(sanitized, option=orjson.OPT_NON_STR_KEYS)
        except (TypeError, orjson.JSONEncodeError):  # e.g. an integer beyond 64 bits
            import json

            encoded = json.dumps(sanitized, default=str, ensure_ascii=False).encode()
    if len(encoded) <= max_chars:  # bytes >= characters: certainly short enough
        return Sanitized(encoded)
    text = encoded.decode()
    if len(text) <= max_chars:
        return Sanitized(encoded)
    return Sanitized(orjson.dumps(text[:max_chars] + TRUNCATED))


_NUMBERS = frozenset((int, float, bool))


def redact_processor(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Redact secret-looking keys and scrub strings in every field of the line."""
    for key, value in event_dict.items():
        kind = type(value)
        if value is None or kind is Sanitized or (kind is str and key in _TRUSTED):
            continue
        if is_secret_key(key):
            event_dict[key] = REDACTED
        elif kind is str:
            event_dict[key] = scrub(value)
        elif kind not in _NUMBERS:
            event_dict[key] = _sanitize(value, _Budget(sys.maxsize), 1)
    return event_dict


# --- other processors -------------------------------------------------------------------


_STAMP: tuple[int, str] = (-1, "")
_LEVEL_ALIASES = {"warn": "warning", "exception": "error", "err": "error", "fatal": "critical"}


def utc_timestamp() -> str:
    """Now, UTC, ISO 8601 with microseconds and ``Z`` (the seconds formatted once each)."""
    global _STAMP
    second, micro = divmod(time.time_ns() // 1000, 1_000_000)
    stamp = _STAMP
    if stamp[0] != second:
        stamp = _STAMP = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return "%s.%06dZ" % (stamp[1], micro)  # noqa: UP031 (faster than an f-string here)


# A processor that hands the event dict on rather than rendering it: another can follow.
_EventProcessor = Callable[[WrappedLogger, str, EventDict], EventDict]


def _common_fields(static: dict[str, str]) -> _EventProcessor:
    """``level``, ``timestamp``, ``service`` (and the like), ``trace_id`` and ``span_id``.

    One processor rather than five: it runs on every line.
    """
    items = tuple(static.items())

    def add_common_fields(_: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        event_dict["level"] = _LEVEL_ALIASES.get(method_name, method_name)
        event_dict["timestamp"] = utc_timestamp()
        for key, value in items:
            event_dict.setdefault(key, value)
        trace_id, span_id = trace_ids()
        event_dict.setdefault("trace_id", trace_id)
        event_dict.setdefault("span_id", span_id)
        return event_dict

    return add_common_fields


def trace_ids() -> tuple[str | None, str | None]:
    """``trace_id`` and ``span_id`` of the current span, in hex; ``None`` outside a trace."""
    context = current_span_context()
    if context is None or not context.is_valid:
        return None, None
    # bytes.hex: the same digits as format(id, "032x"), in a third of the time
    return context.trace_id.to_bytes(16, "big").hex(), context.span_id.to_bytes(8, "big").hex()


def _drop_missing_trace_ids(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Console lines: no ``trace_id=None span_id=None`` noise outside a trace."""
    if event_dict.get("trace_id", "") is None:
        del event_dict["trace_id"]
        event_dict.pop("span_id", None)
    return event_dict


def callsite(frame: FrameType | None, skip: tuple[str, ...] = CALLSITE_IGNORES) -> str:
    """``module:function:line`` of the first frame (going out) whose module is not skipped."""
    while frame is not None:
        module = frame.f_globals.get("__name__") or "?"
        if not module.startswith(skip):
            return f"{module}:{frame.f_code.co_name}:{frame.f_lineno}"
        frame = frame.f_back
    return "?"


@functools.lru_cache(maxsize=1024)
def _module_of(pathname: str) -> str | None:
    """The import name of the module at ``pathname`` (for stdlib records, which lack it)."""
    for name, module in list(sys.modules.items()):
        if getattr(module, "__file__", None) == pathname:
            return name
    return None


def _add_called_from(logger: WrappedLogger, name: str, event_dict: EventDict) -> EventDict:
    """``called_from``: ``module:function:line`` of the code that logged the line."""
    if "called_from" in event_dict:
        return event_dict
    record: logging.LogRecord | None = event_dict.get("_record")
    if record is not None and not event_dict.get("_from_structlog"):
        module = _module_of(record.pathname) or record.module
        event_dict["called_from"] = f"{module}:{record.funcName}:{record.lineno}"
        return event_dict
    event_dict["called_from"] = callsite(sys._getframe(1), _NATIVE_IGNORES)
    return event_dict


def _add_logger_name(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    record: logging.LogRecord | None = event_dict.get("_record")
    if record is not None:
        event_dict.setdefault("logger", record.name)
    return event_dict


def _json_default(value: Any) -> Any:
    if type(value) is Sanitized:
        return orjson.Fragment(value.json)
    return _sanitize(value, _Budget(sys.maxsize), 1)


def _plain_default(value: Any) -> Any:
    return value.value if type(value) is Sanitized else str(value)


def render_json(_: WrappedLogger, __: str, event_dict: EventDict) -> str:
    """The line as one JSON object, the common fields first."""
    line = {key: event_dict.pop(key) for key in _HEAD if key in event_dict}
    line.update(event_dict)
    try:
        return orjson.dumps(line, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):  # e.g. an integer beyond 64 bits: slower
        import json

        return json.dumps(line, default=_plain_default, ensure_ascii=False)


def _json_line(common_fields: _EventProcessor) -> Processor:
    """structlog's own lines in JSON, every processor inlined in one.

    They run on every call of every service: one function call per line rather than
    one per processor. Same steps as the chain ``logging``'s records go through.
    """
    merge_contextvars = structlog.contextvars.merge_contextvars
    format_exc_info = structlog.processors.format_exc_info

    def json_line(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> str:
        event_dict = merge_contextvars(logger, method_name, event_dict)
        event_dict = common_fields(logger, method_name, event_dict)
        if "called_from" not in event_dict:
            event_dict["called_from"] = callsite(sys._getframe(1), _NATIVE_IGNORES)
        if "exc_info" in event_dict:
            event_dict = format_exc_info(logger, method_name, event_dict)
        return render_json(logger, method_name, redact_processor(logger, method_name, event_dict))

    return json_line


def _unwrap_sanitized(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Console lines show the payloads as Python data."""
    for key, value in event_dict.items():
        if type(value) is Sanitized:
            event_dict[key] = value.value
    return event_dict


# --- output -----------------------------------------------------------------------------


class _LineWriter:
    """Where rendered lines go, in order, under one lock (``logging`` may write from threads).

    JSON lines to a stream with a file descriptor (stderr, a file) go out as UTF-8 with
    ``os.write``: no text layer to encode and flush. Lines of a hot path (``write_hot``,
    the access log) written from the event loop wait for the end of the loop's turn and
    go out together: under load one system call carries the lines of many requests (about
    20 with 32 connections on ``GET /v1/links``), and a line waits no longer than the
    turn. Every other line first writes out those waiting, so the order holds; so does
    exit. Console lines (for people, whose terminal has its own encoding) and streams
    without a descriptor (a StringIO) go through the stream's ``write`` and ``flush``.
    """

    def __init__(self, stream: TextIO, raw: bool) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._fd = _descriptor_of(stream) if raw else None
        self._waiting: list[bytes] = []
        self._flush_on: asyncio.AbstractEventLoop | None = None  # a flush is scheduled there

    def msg(self, line: str) -> None:
        if self._fd is None:
            with self._lock:
                try:
                    self._stream.write(line + "\n")
                    self._stream.flush()
                except (OSError, ValueError):  # stderr closed or gone: a log line never fails
                    pass
            return
        encoded = line.encode("utf-8", "backslashreplace") + b"\n"
        with self._lock:
            if self._waiting:
                self._waiting.append(encoded)
                self._write_waiting()
            else:
                self._write(encoded)

    def write_hot(self, line: bytes) -> None:
        """A line of a hot path (UTF-8, ending in a newline), batched per event-loop turn."""
        if self._fd is None:
            self.msg(line[:-1].decode())
            return
        with self._lock:
            self._waiting.append(line)
            scheduled = self._flush_on
            if scheduled is not None and not scheduled.is_closed():
                return  # the first line of the batch asked its loop for a flush
            # Looked up once per batch: asyncio checks getpid() on every lookup, a system
            # call that cost as much as the rest of the line.
            loop = asyncio._get_running_loop()
            if loop is None:
                self._write_waiting()
            else:
                self._flush_on = loop
                loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write out the lines waiting for the end of the loop's turn."""
        with self._lock:
            self._flush_on = None
            if self._waiting:
                self._write_waiting()

    def _write_waiting(self) -> None:
        data = b"".join(self._waiting)
        self._waiting.clear()
        self._write(data)

    def _write(self, data: bytes) -> None:
        fd = self._fd
        try:
            while data and fd is not None:  # a pipe may take part of it
                data = data[os.write(fd, data) :]
        except OSError:  # stderr closed or gone: a log line never fails a call
            pass

    log = debug = info = warn = warning = error = err = critical = fatal = exception = msg
    failure = msg


def _descriptor_of(stream: TextIO) -> int | None:
    """The file descriptor under ``stream``, its buffer flushed first; None when it has none."""
    try:
        fd = stream.fileno()
        stream.flush()  # what it holds goes out before our lines
    except (AttributeError, ValueError, OSError):  # io.UnsupportedOperation is an OSError
        return None
    return fd


class _LoggingHandler(logging.Handler):
    """The standard library's records, formatted by structlog, written by ``_LineWriter``."""

    def __init__(self, writer: _LineWriter, formatter: logging.Formatter) -> None:
        super().__init__()
        self._writer = writer
        self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._writer.msg(self.format(record))
        except Exception:
            self.handleError(record)


# --- setup ------------------------------------------------------------------------------


def parse_level(level: str | int) -> int:
    """``"info"`` → ``logging.INFO``; anything unknown is a ValueError saying what is valid."""
    if isinstance(level, int) and not isinstance(level, bool):
        if level in LEVELS.values():
            return level
    elif isinstance(level, str) and level.strip().upper() in LEVELS:
        return LEVELS[level.strip().upper()]
    raise ValueError(f"log level {level!r} is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL")


def parse_format(fmt: str | None) -> str | None:
    """``json`` or ``console`` (any case); ``None`` or empty means: choose by the terminal."""
    if fmt is None or not fmt.strip():
        return None
    if fmt.strip().lower() in FORMATS:
        return fmt.strip().lower()
    raise ValueError(f"log format {fmt!r} is not one of json, console")


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def setup_logging(
    service: str,
    level: str | int = "INFO",
    fmt: str | None = None,
    stream: TextIO | None = None,
    *,
    version: str | None = None,
) -> None:
    """Send every log line of this process to ``stream`` (default: stderr), one per line.

    ``fmt`` is ``json`` or ``console``; unset, it is console when ``stream`` is a terminal
    and JSON otherwise. ``service`` (and ``version`` when given) is on every line that does
    not name its own service. An unknown level or format is a ValueError, before anything
    is changed. Call it once, at start, before building the services; calling it again
    reconfigures everything (tests do).
    """
    min_level = parse_level(level)
    chosen = parse_format(fmt)
    out = stream if stream is not None else sys.stderr
    if chosen is None:
        chosen = "console" if _is_terminal(out) else "json"
    renderers: list[Processor] = (
        [
            _drop_missing_trace_ids,
            _unwrap_sanitized,
            structlog.dev.ConsoleRenderer(colors=_is_terminal(out), sort_keys=False),
        ]
        if chosen == "console"
        else [render_json]
    )
    static = {"service": service, **({"version": version} if version else {})}
    common_fields = _common_fields(static)
    common: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        common_fields,
        _add_called_from,
    ]
    tail: list[Processor] = [
        structlog.processors.format_exc_info,  # as text, so redaction sees it too
        redact_processor,
        *renderers,
    ]
    writer = _LineWriter(out, raw=chosen == "json")
    native = [_json_line(common_fields)] if chosen == "json" else [*common, *tail]

    global _generation, _json_output, _writer
    _generation += 1
    if _writer is not None:
        _writer.flush()
    _writer = writer
    _json_output = (
        _JsonOutput(writer, min_level, service, {k: v for k, v in static.items() if k != "service"})
        if chosen == "json"
        else None
    )
    structlog.reset_defaults()
    structlog.configure(
        processors=native,
        wrapper_class=structlog.make_filtering_bound_logger(min_level),
        logger_factory=lambda *_: writer,
        context_class=dict,
        cache_logger_on_first_use=True,
    )

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[_add_logger_name, *common],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
    )
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(_LoggingHandler(writer, formatter))
    root.setLevel(min_level)
    for name in TAKEN_OVER:
        taken = logging.getLogger(name)
        for handler in list(taken.handlers):
            taken.removeHandler(handler)
        taken.propagate = True
    for name, quiet in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(max(quiet, min_level))
    logging.captureWarnings(True)


_generation = 0  # how many times setup_logging has run
_writer: _LineWriter | None = None  # the one setup_logging made last


@atexit.register
def _flush_at_exit() -> None:
    if _writer is not None:
        _writer.flush()


@dataclasses.dataclass(frozen=True, slots=True)
class _JsonOutput:
    """Where ``setup_logging`` sends JSON lines, for ``HotLogger``."""

    writer: _LineWriter
    min_level: int
    service: str
    extra: dict[str, str]  # the other static fields (version)


_json_output: _JsonOutput | None = None  # None: console format, or not set up
_LEVEL_NAMES = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warning",
    logging.ERROR: "error",
    logging.CRITICAL: "critical",
}


class CachedLogger:
    """``structlog.get_logger(name)`` bound once per ``setup_logging``, for hot paths.

    structlog's lazy proxy re-resolves itself on every call; this binds once, and again
    only when ``setup_logging`` has run since (tests reconfigure; a process, once).
    """

    __slots__ = ("_enabled", "_generation", "_logger", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._logger: Any = None
        self._enabled: dict[int, bool] = {}
        self._generation = -1

    def get(self) -> Any:
        if self._generation != _generation:
            self._logger = structlog.get_logger(self._name).bind()
            self._enabled = {}
            self._generation = _generation
        return self._logger

    def enabled(self, level: int) -> bool:
        """Whether a line at ``level`` would be written: asked once per level and binding."""
        if self._generation != _generation:
            self.get()
        found = self._enabled.get(level)
        if found is None:
            found = self._enabled[level] = level_enabled(self._logger, level)
        return found


def level_enabled(logger: Any, level: int) -> bool:
    """Whether a structlog ``logger`` writes ``level`` (one without the filter writes all)."""
    check = getattr(logger, "is_enabled_for", None)
    return True if check is None else bool(check(level))


class HotLogger:
    """A logger for one call site on a hot path, whose fields are flat and safe as they are.

    The gateway's access log writes a line per HTTP request; through structlog's processors
    the line took 17 µs, here 6 µs (each with its write, timed in a loop), and at INFO it
    is most of what the observability chain costs a request. Its fields are few, flat and
    written by our own code (a route template, a validated
    username, an address, numbers), so in JSON it is rendered here by orjson in one step:
    no processor chain, no call-site walk (``called_from`` is given once), no redaction
    walk. The line has the same fields in the same order as structlog's. In the console
    format, or before ``setup_logging``, it goes through structlog like any other line.

    The caller vouches for its fields: ints, floats, None, and strings that hold no secret;
    none named like a field every line has (``service``, ``version``, ``trace_id``, ...).
    """

    __slots__ = ("_called_from", "_structlog")

    def __init__(self, name: str, called_from: str) -> None:
        self._called_from = called_from
        self._structlog = CachedLogger(name)

    def enabled(self, level: int) -> bool:
        """Whether a line at ``level`` would be written (check before gathering fields)."""
        out = _json_output
        if out is not None:
            return level >= out.min_level
        return self._structlog.enabled(level)

    def log(self, level: int, event: str, fields: dict[str, str | int | float | None]) -> None:
        out = _json_output
        if out is None:
            self._structlog.get().log(level, event, called_from=self._called_from, **fields)
            return
        trace_id, span_id = trace_ids()
        line = {
            "timestamp": utc_timestamp(),
            "level": _LEVEL_NAMES[level],
            "service": out.service,
            "event": event,
            "called_from": self._called_from,
            **fields,
            **out.extra,
            "trace_id": trace_id,
            "span_id": span_id,
        }
        out.writer.write_hot(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))
