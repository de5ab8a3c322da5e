"""One access-log line per HTTP request: route template, status, duration, user.

A pure ASGI middleware (no ``BaseHTTPMiddleware``: it would copy every body). It logs
``event="request"`` with ``http_method``, ``route`` (the template, like ``/v1/links``, read
from ``scope["route"]``, which Starlette's router sets on the matched route; ``unmatched``
when none did), ``status``, ``duration_ms``, ``user`` (``scope["state"]["user"]``, which
``auth.authenticate`` sets; null when anonymous) and ``client``. Never the raw path, the
query string or a header: they may hold ids, page tokens or access tokens.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from delinkcious.platform.logs import CachedLogger

UNMATCHED = "unmatched"
# Status logged when the client went away before an answer (nginx's convention).
CLIENT_CLOSED = 499


def route_of(scope: Scope) -> str:
    """The template of the route that handled the request, or ``unmatched``."""
    route = scope.get("route")
    if route is None:
        return UNMATCHED
    return getattr(route, "path_format", None) or getattr(route, "path", None) or UNMATCHED


def user_of(scope: Scope) -> str | None:
    state = scope.get("state")
    user = state.get("user") if isinstance(state, dict) else None
    return user if isinstance(user, str) else None


class AccessLogMiddleware:
    """Logs each HTTP request once it has been answered (or has failed)."""

    def __init__(self, app: ASGIApp, logger: Any = None) -> None:
        self.app = app
        self._logger = logger
        self._cached = CachedLogger("delinkcious.access") if logger is None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        except asyncio.CancelledError:
            self._log(scope, status or CLIENT_CLOSED, started)
            raise
        except Exception:
            self._log(scope, status or 500, started)
            raise
        self._log(scope, status or 500, started)

    def _log(self, scope: Scope, status: int, started: float) -> None:
        log = self._cached.get() if self._cached is not None else self._logger
        level = logging.ERROR if status >= 500 else logging.INFO
        check = getattr(log, "is_enabled_for", None)
        if check is not None and not check(level):
            return
        client = scope.get("client")
        (log.error if status >= 500 else log.info)(
            "request",
            http_method=scope["method"],
            route=route_of(scope),
            status=status,
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
            user=user_of(scope),
            client=client[0] if client else None,
        )
