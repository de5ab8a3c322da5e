"""The metrics middleware: a request counter and a latency histogram per service method.

``delinkcious_requests_total{service,method,outcome,version}`` and
``delinkcious_request_duration_seconds{service,method,version}``. Outcome is ``success``,
``client_error`` (a domain error the caller caused) or ``error`` (anything else, including
``Unavailable`` and a cancelled call). Errors pass through unchanged.

Cheap on purpose: each (service, method)'s series is looked up once and kept, and a call
is one ``record`` (``platform.request_metrics``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from delinkcious.platform.metrics import SERVICE_REQUESTS, SUCCESS, outcome_of
from delinkcious.platform.middleware.base import Around, Invocation
from delinkcious.platform.request_metrics import RequestSeries
from delinkcious.platform.served_by import note


def metrics_middleware(version: str) -> Around:
    """An ``Around`` counting and timing every call, labelled with the running ``version``."""
    series: dict[tuple[str, str], RequestSeries] = {}
    clock = time.perf_counter

    async def metrics(invocation: Invocation, proceed: Callable[[], Awaitable[Any]]) -> Any:
        note(invocation.service, version)  # which version served: the public response says
        key = (invocation.service, invocation.method.name)
        found = series.get(key)
        if found is None:
            found = series[key] = SERVICE_REQUESTS.series(key[0], key[1], version)
        start = clock()
        try:
            result = await proceed()
        except BaseException as exc:  # cancellation too: the caller saw no answer
            found.record(outcome_of(exc), clock() - start)
            raise
        found.record(SUCCESS, clock() - start)
        return result

    return metrics
