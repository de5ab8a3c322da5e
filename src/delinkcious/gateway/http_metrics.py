"""HTTP metrics for the gateway, as pure ASGI middleware.

``delinkcious_http_requests_total{route,method,status}`` and
``delinkcious_http_request_duration_seconds{route,method}``. ``route`` is the template of
the route that answered (``/v1/links``, ``/items/{item_id}``), read from ``scope["route"]``,
which Starlette's router sets on the shared scope once it has matched; a request no route
matched (404, slash redirects) is ``unmatched``. Raw paths never become labels: a scanner
probing a thousand urls must not create a thousand series. Methods outside the standard
set are ``other`` for the same reason.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from delinkcious.platform.metrics import HTTP_REQUEST_DURATION, HTTP_REQUESTS

UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_template(scope: Scope, root_path: str = "") -> str:
    """The template of the route that handled ``scope``, mount prefixes included.

    ``root_path`` is the scope's root path before routing: a mount appends its prefix to
    the scope's root path, and the inner route then names only the rest.
    """
    route = scope.get("route")
    if route is None:
        return UNMATCHED
    prefix = scope.get("root_path", "")[len(root_path) :]
    if isinstance(route, Mount):  # an ASGI app mounted as a whole: its own paths stay out
        return prefix + "/{path}"
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return prefix + template if isinstance(template, str) else UNMATCHED


class HttpMetricsMiddleware:
    """Counts and times every HTTP request by route template, method and status.

    Add it last (``app.add_middleware(HttpMetricsMiddleware)``) so that it is the outermost
    user middleware and sees the 413s of the body limit too. A request whose app raised
    before answering counts as 500 (what the server error middleware will send).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._durations: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        root_path = scope.get("root_path", "")
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        start = time.perf_counter()
        try:
            await self.app(scope, receive, recording_send)
        finally:
            self._record(scope, root_path, status, time.perf_counter() - start)

    def _record(self, scope: Scope, root_path: str, status: int, seconds: float) -> None:
        route = route_template(scope, root_path)
        method = scope["method"] if scope["method"] in _METHODS else "other"
        key = (route, method)
        duration = self._durations.get(key)
        if duration is None:
            duration = self._durations[key] = HTTP_REQUEST_DURATION.labels(route, method)
        duration.observe(seconds)
        counter_key = (route, method, status)
        counter = self._counters.get(counter_key)
        if counter is None:
            counter = self._counters[counter_key] = HTTP_REQUESTS.labels(route, method, str(status))
        counter.inc()
