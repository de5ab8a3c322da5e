"""The metrics middleware: a request counter and a latency histogram per service method.

``delinkcious_requests_total{service,method,outcome,version}`` and
``delinkcious_request_duration_seconds{service,method,version}``. Outcome is ``success``,
``client_error`` (a domain error the caller caused) or ``error`` (anything else, including
``Unavailable`` and a cancelled call). Errors pass through unchanged.

Cheap on purpose: the labelled children are looked up once per (service, method) and kept,
since ``.labels()`` costs more than the counting itself.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from delinkcious.platform.metrics import (
    CLIENT_ERROR,
    ERROR,
    REQUEST_DURATION,
    REQUESTS,
    SUCCESS,
    outcome_of,
)
from delinkcious.platform.middleware.base import Around, Invocation


class _Series:
    """The labelled children of one (service, method): one counter per outcome, one histogram."""

    __slots__ = ("counters", "duration")

    def __init__(self, service: str, method: str, version: str) -> None:
        self.counters: dict[str, Any] = {}
        for outcome in (SUCCESS, CLIENT_ERROR, ERROR):
            self.counters[outcome] = REQUESTS.labels(service, method, outcome, version)
        self.duration = REQUEST_DURATION.labels(service, method, version)


def metrics_middleware(version: str) -> Around:
    """An ``Around`` counting and timing every call, labelled with the running ``version``."""
    series: dict[tuple[str, str], _Series] = {}
    clock = time.perf_counter

    async def metrics(invocation: Invocation, proceed: Callable[[], Awaitable[Any]]) -> Any:
        key = (invocation.service, invocation.method.name)
        found = series.get(key)
        if found is None:
            found = series[key] = _Series(key[0], key[1], version)
        start = clock()
        try:
            result = await proceed()
        except BaseException as exc:  # cancellation too: the caller saw no answer
            found.duration.observe(clock() - start)
            found.counters[outcome_of(exc)].inc()
            raise
        found.duration.observe(clock() - start)
        found.counters[SUCCESS].inc()
        return result

    return metrics
