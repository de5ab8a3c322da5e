"""The gateway's view of each HTTP request: a server span, HTTP metrics, an access-log line.

One pure ASGI middleware does all three (no ``BaseHTTPMiddleware``: it would copy every
body). They observe the same thing, the request as answered, and as three layers they
cost three coroutine frames and three wrappers around every ``send``: measured on
``GET /v1/links``, more than the span, the counting and the line themselves.

- **Span** (when tracing is set up): a SERVER span continuing the caller's W3C context,
  named ``GET /v1/links`` once routed. Ours rather than FastAPI's built-in telemetry,
  which builds every attribute before the sampler speaks: an unsampled request here costs
  one ``start_span``, and none when the sampler is sure to drop it (``worth_a_span``).
- **Metrics**: ``delinkcious_http_requests_total{route,method,status}`` and
  ``delinkcious_http_request_duration_seconds{route,method}``.
- **Access log**: ``event="request"`` with ``http_method``, ``route``, ``status``,
  ``duration_ms``, ``user`` (``scope["state"]["user"]``, set by ``auth.authenticate``;
  null when anonymous) and ``client``; ERROR for a 5xx, else INFO. Never the raw path,
  the query string or a header: they may hold ids, page tokens or access tokens.

``route`` is the template of the route that answered (``/v1/links``,
``/items/{item_id}``), read from ``scope["route"]``, which Starlette's router sets on
the shared scope once it has matched; ``unmatched`` when none did (404s, slash
redirects). Raw paths never become labels: a scanner probing a thousand urls must not
create a thousand series. Methods outside the standard set are ``other`` in the metrics.
A request whose app raised before answering is a 500 (what the server error middleware
sends); one whose client went away first is a 499 (nginx's convention).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from contextvars import Token

from opentelemetry import context, propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from delinkcious.platform.logs import HotLogger, scrub
from delinkcious.platform.metrics import HTTP_REQUESTS
from delinkcious.platform.request_metrics import RequestSeries
from delinkcious.platform.tracing import active_tracer, worth_a_span

UNMATCHED = "unmatched"
CLIENT_CLOSED = 499
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_CARRIER_HEADERS = frozenset({b"traceparent", b"tracestate"})
_STATUS_TEXT = {status: str(status) for status in range(100, 600)}  # label values, made once


def route_template(scope: Scope, root_path: str = "") -> str:
    """The template of the route that handled ``scope``, mount prefixes included.

    ``root_path`` is the scope's root path before routing: a mount appends its prefix to
    the scope's root path, and the inner route then names only the rest.
    """
    route = scope.get("route")
    if route is None:
        return UNMATCHED
    prefix: str = scope.get("root_path", "")[len(root_path) :]
    if isinstance(route, Mount):  # an ASGI app mounted as a whole: its own paths stay out
        return prefix + "/{path}"
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return prefix + template if isinstance(template, str) else UNMATCHED


def user_of(scope: Scope) -> str | None:
    state = scope.get("state")
    user = state.get("user") if isinstance(state, dict) else None
    return user if isinstance(user, str) else None


def _enter_trace(
    tracer: trace.Tracer, scope: Scope
) -> tuple[trace.Span | None, Token[context.Context] | None]:
    """Make this request's SERVER span current, continuing the caller's context if any.

    When the sampler is sure to drop the span (``worth_a_span``), no span is made: the
    caller's context, if it sent one, is made current as it came, so the trace carries on.
    Returns the span (or None) and the token to detach (or None).
    """
    carrier = {}
    for name, value in scope["headers"]:  # a loop: a comprehension is a call more (3.11)
        if name in _CARRIER_HEADERS:
            carrier[name.decode("latin-1")] = value.decode("latin-1")
    if not carrier:
        if not worth_a_span(tracer, None):
            return None, None
        parent = context.Context()
    else:
        parent = propagate.extract(carrier)
        if not worth_a_span(tracer, trace.get_current_span(parent).get_span_context()):
            return None, context.attach(parent)
    span = tracer.start_span(scope["method"], context=parent, kind=SpanKind.SERVER)
    return span, context.attach(trace.set_span_in_context(span, parent))


def _describe_span(
    span: trace.Span, service: str, method: str, route: str, status: int, error: Exception | None
) -> None:
    if route != UNMATCHED:
        span.update_name(f"{method} {route}")
        span.set_attribute("http.route", route)
    span.set_attribute("http.request.method", method)
    span.set_attribute("http.response.status_code", status)
    span.set_attribute("delinkcious.service", service)
    if error is not None:
        span.record_exception(error)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))


class HttpObservabilityMiddleware:
    """Traces, counts, times and logs every HTTP request.

    Add it last (``app.add_middleware(HttpObservabilityMiddleware)``) so that it is the
    outermost user middleware and sees the 413s of the body limit too.
    """

    def __init__(
        self, app: ASGIApp, service: str = "gateway", tracer: trace.Tracer | None = None
    ) -> None:
        """``tracer`` defaults to the one ``setup_tracing`` installed, looked up per request."""
        self.app = app
        self.service = service
        self._tracer = tracer
        self._series: dict[tuple[str, str], RequestSeries] = {}
        where = self._log_request.__code__
        self._log = HotLogger(
            "delinkcious.access", f"{__name__}:{where.co_name}:{where.co_firstlineno}"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        root_path = scope.get("root_path", "")
        tracer = self._tracer or active_tracer()
        span, token = _enter_trace(tracer, scope) if tracer is not None else (None, None)
        status = 0

        def send_and_note(message: Message) -> Awaitable[None]:
            # Hands back send's own awaitable: no frame of ours for each message.
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            return send(message)

        started = time.perf_counter()
        error: Exception | None = None
        try:
            await self.app(scope, receive, send_and_note)
        except asyncio.CancelledError:
            status = status or CLIENT_CLOSED
            raise
        except Exception as exc:
            error = exc
            raise
        finally:
            seconds = time.perf_counter() - started
            status = status or 500
            route = route_template(scope, root_path)
            self._count(route, scope["method"], status, seconds)
            self._log_request(scope, route, status, seconds)
            if span is not None:
                if span.is_recording():
                    _describe_span(span, self.service, scope["method"], route, status, error)
                span.end()
            if token is not None:
                context.detach(token)

    def _count(self, route: str, method: str, status: int, seconds: float) -> None:
        if method not in METHODS:
            method = "other"
        key = (route, method)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = HTTP_REQUESTS.series(route, method)
        series.record(_STATUS_TEXT.get(status) or str(status), seconds)

    def _log_request(self, scope: Scope, route: str, status: int, seconds: float) -> None:
        level = logging.ERROR if status >= 500 else logging.INFO
        if not self._log.enabled(level):
            return
        method = scope["method"]
        client = scope.get("client")
        self._log.log(
            level,
            "request",
            {
                # A non-standard method is whatever the client sent: untrusted text.
                "http_method": method if method in METHODS else scrub(method),
                "route": route,
                "status": status,
                "duration_ms": int(seconds * 1_000_000) / 1000,  # µs precision; round() is slow
                "user": user_of(scope),
                "client": client[0] if client else None,
            },
        )
