"""Logging middleware: one line per service call, with what went in and what came out.

``wrap(LinkManager, "links", core, logging_middleware())`` logs every call as
``event="call"`` with ``method``, ``request`` (the arguments by name), ``result`` or
``error`` (and ``code``), ``duration_ms`` and ``called_from`` (the code that made the
call, past the middleware layers). Arguments and results are made JSON-safe, redacted
(passwords, tokens, secrets; the result of ``login``, a session token) and capped at
``max_field`` characters. Errors pass through unchanged: the same exception object.
"""

from __future__ import annotations

import functools
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import orjson

from delinkcious.model.errors import DelinkciousError
from delinkcious.platform.logs import (
    CALLSITE_IGNORES,
    REDACTED,
    CachedLogger,
    Sanitized,
    callsite,
    capped,
    is_secret_key,
    level_enabled,
)
from delinkcious.platform.middleware.base import Around, Invocation

# Methods whose result is a credential although nothing in their name says so.
SECRET_RESULTS = frozenset({"login"})
_REDACTED = Sanitized(orjson.dumps(REDACTED))
# Frames skipped when looking for who made the call: the middleware chain itself, and the
# tracing / metrics / faults layers wherever they live.
_NOT_CALLERS = (
    *CALLSITE_IGNORES,
    "delinkcious.platform.faults",
    "delinkcious.platform.metrics",
    "delinkcious.platform.tracing",
    "opentelemetry",
    "asyncio",
)


def _error(exc: BaseException) -> str:
    message = exc.message if isinstance(exc, DelinkciousError) else str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def logging_middleware(
    logger: Any = None,
    max_field: int = 1024,
    *,
    secret_results: Collection[str] = SECRET_RESULTS,
) -> Around:
    """An ``Around`` that logs each call: WARNING for domain errors, ERROR for others;
    INFO for a change that succeeded, DEBUG for a read that succeeded.

    Successful reads (``@idempotent`` methods) are the bulk of the traffic and carry the
    largest results; at DEBUG they cost nothing at the usual INFO level, where the gateway's
    access log still records every request.

    ``logger`` is a structlog logger (default: ``delinkcious.calls``, as ``setup_logging``
    configured it). Nothing is converted when the level filters the line out.
    ``secret_results`` names methods whose result is never logged (besides methods whose
    name looks secret).
    """
    cached = CachedLogger("delinkcious.calls") if logger is None else None
    secret = frozenset(secret_results)
    hidden_results: dict[str, bool] = {}

    def current() -> Any:
        return cached.get() if cached is not None else logger

    # Whether a line at a level would be written: the one question of the usual call.
    enabled: Callable[[int], bool] = (
        cached.enabled if cached is not None else functools.partial(level_enabled, logger)
    )

    def request_of(invocation: Invocation) -> Sanitized:
        # The arguments by name, as ``Invocation.arguments`` gives them, without binding
        # the signature on every call (zip is what binding comes to for these methods).
        names = invocation.method.parameters
        if len(invocation.args) <= len(names):
            arguments = dict(zip(names, invocation.args, strict=False))
            arguments.update(invocation.kwargs)
        else:  # more than the Protocol takes: the call fails anyway; log what was passed
            arguments = {"args": invocation.args, "kwargs": invocation.kwargs}
        return capped(arguments, max_field)

    def result_of(name: str, result: Any) -> Sanitized:
        hide = hidden_results.get(name)
        if hide is None:
            hide = hidden_results[name] = name in secret or is_secret_key(name)
        return _REDACTED if hide else capped(result, max_field)

    def failed(
        log: Any, invocation: Invocation, exc: Exception, started: float, caller: str | None
    ) -> None:
        domain = isinstance(exc, DelinkciousError)
        level = logging.WARNING if domain else logging.ERROR
        if not enabled(level):
            return
        fields: dict[str, Any] = {
            "service": invocation.service,
            "method": invocation.method.name,
            "request": request_of(invocation),
            "error": _error(exc),
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        }
        if isinstance(exc, DelinkciousError):
            fields["code"] = exc.code
        if caller is None:
            caller = callsite(sys._getframe(1), _NOT_CALLERS)
        fields["called_from"] = caller
        (log.warning if domain else log.error)("call", **fields)

    async def around(invocation: Invocation, proceed: Callable[[], Awaitable[Any]]) -> Any:
        started = time.perf_counter()
        level = logging.DEBUG if invocation.method.idempotent else logging.INFO
        if not enabled(level):  # the fast path: nothing built unless it fails
            try:
                return await proceed()
            except Exception as exc:
                failed(current(), invocation, exc, started, None)
                raise
        log = current()
        caller = callsite(sys._getframe(1), _NOT_CALLERS)
        try:
            result = await proceed()
        except Exception as exc:
            failed(log, invocation, exc, started, caller)
            raise
        duration_ms = round((time.perf_counter() - started) * 1000, 3)
        (log.debug if level == logging.DEBUG else log.info)(
            "call",
            service=invocation.service,
            method=invocation.method.name,
            request=request_of(invocation),
            result=result_of(invocation.method.name, result),
            duration_ms=duration_ms,
            called_from=caller,
        )
        return result

    # ``wrap`` names the generated class and its repr after this: LinkManagerViaLogging.
    around.__name__ = around.__qualname__ = "logging"
    return around
