"""Prometheus metrics: the metric objects, ``/metrics``, and the bus, outbox and checker meters.

Every metric lives in prometheus-client's default ``REGISTRY`` (which also carries the
``process_*`` and ``python_*`` collectors: RSS, CPU, open files, GC). In the embedded shape
all services share this one process and one registry, so the request metrics carry a
``service`` label; in the distributed shape each process serves only its own series.

Label values are all bounded: service and method names come from the Protocols, event
types from ``EventType``, outcomes and check results from the fixed sets below, routes from
route templates. Nothing from a request (url, username, raw path) ever becomes a label.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from prometheus_client import (
    REGISTRY,
    Counter,
    Gauge,
    disable_created_metrics,
    make_asgi_app,
)
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from delinkcious.model.checker import CheckResult, LinkChecker
from delinkcious.model.errors import DelinkciousError, Unavailable
from delinkcious.model.events import Event, EventType
from delinkcious.platform.build import Build
from delinkcious.platform.bus import Bus, Handler
from delinkcious.platform.middleware.base import Invocation, wrap
from delinkcious.platform.request_metrics import RequestMetrics

log = logging.getLogger("delinkcious.metrics")

# No `*_created` series next to every counter and histogram: they double what a scrape
# carries and no rule or dashboard reads them.
disable_created_metrics()

# Seconds, 5 ms to 10 s. 5.0 and 7.5 are boundaries so that a median above 5 s
# (histogram_quantile(0.5, ...) > 5, the SlowAddLink alert) is visible, not clamped.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0)

SUCCESS = "success"
CLIENT_ERROR = "client_error"  # a DelinkciousError the caller caused (4xx at the gateway)
ERROR = "error"  # everything else, Unavailable (and injected faults) included

SERVICE_REQUESTS = RequestMetrics(
    counter=(
        "delinkcious_requests_total",
        "Service calls, by service, method, outcome (success, client_error, error) and version.",
    ),
    histogram=(
        "delinkcious_request_duration_seconds",
        "Duration of service calls in seconds, by service, method and version.",
    ),
    labels=("service", "method", "version"),
    outcome_label="outcome",
    outcomes=(SUCCESS, CLIENT_ERROR, ERROR),
    buckets=DURATION_BUCKETS,
)
HTTP_REQUESTS = RequestMetrics(
    counter=(
        "delinkcious_http_requests_total",
        "HTTP requests to the gateway, by route template, method and status.",
    ),
    histogram=(
        "delinkcious_http_request_duration_seconds",
        "Duration of HTTP requests to the gateway in seconds, by route template and method.",
    ),
    labels=("route", "method"),
    outcome_label="status",
    buckets=DURATION_BUCKETS,
)
EVENTS_PUBLISHED = Counter(
    "delinkcious_events_published_total",
    "Events the bus accepted (publish returned), by type.",
    ("type",),
)
EVENTS_CONSUMED = Counter(
    "delinkcious_events_consumed_total",
    "Event deliveries to a consumer, by consumer, type and outcome (success, error).",
    ("consumer", "type", "outcome"),
)
OUTBOX_PENDING = Gauge(
    "delinkcious_outbox_pending",
    "Events in the outbox not yet accepted by the bus (sampled periodically).",
)
LINK_CHECKS = Counter(
    "delinkcious_link_checks_total",
    "Link checks, by result (valid, invalid, error).",
    ("result",),
)
BUILD_INFO = Gauge(
    "delinkcious_build_info",
    "Always 1; its labels say which release of which service runs, built from which commit.",
    ("service", "version", "revision"),
)


def outcome_of(exc: BaseException) -> str:
    """``client_error`` for a domain error the caller caused, else ``error``."""
    if isinstance(exc, DelinkciousError) and not isinstance(exc, Unavailable):
        return CLIENT_ERROR
    return ERROR


# --- /metrics ------------------------------------------------------------------------------


def metrics_app() -> ASGIApp:
    """An ASGI app answering any path with the default registry in Prometheus text format."""
    return make_asgi_app(REGISTRY)


class _Asgi:
    """Hides a function-shaped ASGI app from Starlette, which would take it for an endpoint."""

    __slots__ = ("_app",)

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)


def install_metrics(app: Any, build: Build) -> None:
    """Serve ``GET /metrics`` on a Starlette/FastAPI ``app`` and record ``build_info``.

    A route rather than ``app.mount``: a mount answers ``/metrics`` with a redirect to
    ``/metrics/``. Not in the OpenAPI schema.
    """
    BUILD_INFO.labels(build.service, build.version, build.revision).set(1)
    app.router.routes.append(
        Route("/metrics", _Asgi(metrics_app()), methods=["GET"], include_in_schema=False)
    )


# --- the bus ---------------------------------------------------------------------------------


class MeteredBus:
    """A ``Bus`` that counts what it publishes and what its subscribers consume.

    ``events_published_total{type}`` rises once ``publish`` returned (the bus took the
    event); ``events_consumed_total{consumer,type,outcome}`` once per delivery, ``error``
    when the handler raised (the event is then redelivered and counted again). Errors pass
    through unchanged, so the bus's redelivery works as before.
    """

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._published: dict[EventType, Any] = {}

    @property
    def inner(self) -> Bus:
        return self._bus

    async def publish(self, event: Event) -> None:
        await self._bus.publish(event)
        counter = self._published.get(event.type)
        if counter is None:
            counter = self._published[event.type] = EVENTS_PUBLISHED.labels(event.type.value)
        counter.inc()

    async def subscribe(
        self, consumer: str, types: Iterable[EventType], handler: Handler, concurrency: int = 8
    ) -> None:
        types = tuple(types)
        counted = {
            (kind, outcome): EVENTS_CONSUMED.labels(consumer, kind.value, outcome)
            for kind in types
            for outcome in (SUCCESS, ERROR)
        }

        async def metered(event: Event) -> None:
            try:
                await handler(event)
            except Exception:
                counted[event.type, ERROR].inc()
                raise
            counted[event.type, SUCCESS].inc()

        await self._bus.subscribe(consumer, types, metered, concurrency)

    async def close(self) -> None:
        await self._bus.close()


# --- the outbox --------------------------------------------------------------------------------


class SizedOutbox(Protocol):
    async def size(self) -> int: ...


class OutboxGauge:
    """Keeps ``delinkcious_outbox_pending`` at the outbox's row count, read every ``interval``.

    A count query every few seconds costs nothing next to the traffic, and unlike a hook in
    the relay it also sees rows the relay has not picked up (a stopped relay, a broker
    outage), which is exactly when the gauge matters. A failed read keeps the last value.
    """

    def __init__(self, outbox: SizedOutbox, interval: float = 5.0) -> None:
        self._outbox = outbox
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    async def refresh(self) -> None:
        try:
            size = await self._outbox.size()
        except Exception as exc:
            if not self._failing:
                log.warning("reading the outbox size failed (%s); keeping the last value", exc)
            self._failing = True
            return
        self._failing = False
        OUTBOX_PENDING.set(size)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-gauge")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self._interval)


# --- link checks -------------------------------------------------------------------------------


def count_link_check(result: str) -> None:
    """One more link check with ``result``: ``valid``, ``invalid`` or ``error``."""
    LINK_CHECKS.labels(result).inc()


async def link_checks(invocation: Invocation, proceed: Callable[[], Awaitable[Any]]) -> Any:
    """An ``Around`` for ``LinkChecker``: counts every check by its verdict."""
    try:
        result = await proceed()
    except Exception:
        count_link_check(ERROR)
        raise
    if isinstance(result, CheckResult):
        count_link_check(result.status.value)
    return result


def metered_link_checker(checker: LinkChecker) -> LinkChecker:
    """``checker``, counting ``delinkcious_link_checks_total{result}``."""
    return wrap(LinkChecker, "link_checker", checker, link_checks)
