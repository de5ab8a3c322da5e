"""The public edge of the traffic shaper: a tester's override in, the versions that
served the request out.

``Delinkcious-Canary: always`` (or ``never``) sends this request's calls to the canary
pool of every route whose canary may serve them (or keeps them off it), whatever the
weight says. Every response carries ``Delinkcious-Served-By``, naming the version of
the gateway and of each service that took part (``gateway=0.1.0, links=0.2.0``).
"""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from delinkcious.gateway.responses import JsonResponse
from delinkcious.platform import served_by
from delinkcious.platform.build import Build
from delinkcious.platform.routing.router import ALWAYS, CANARY_OVERRIDE, NEVER, OVERRIDE_HEADER

_OVERRIDE = OVERRIDE_HEADER.encode()
_SERVED_BY = served_by.HEADER.encode()
_CHOICES = {ALWAYS.encode(): ALWAYS, NEVER.encode(): NEVER}


class ShapingMiddleware:
    def __init__(self, app: ASGIApp, build: Build) -> None:
        self.app = app
        self._edge = ("gateway", build.version)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        override = None
        for name, value in scope["headers"]:
            if name == _OVERRIDE:
                override = _CHOICES.get(value.strip().lower())
                if override is None:
                    await _refuse(scope, receive, send)
                    return
        served, collecting = served_by.collect(self._edge)
        overriding = CANARY_OVERRIDE.set(override) if override is not None else None

        def send_with_versions(message: Message) -> Awaitable[None]:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                headers.append((_SERVED_BY, served_by.render(served).encode()))
                message = {**message, "headers": headers}
            return send(message)

        try:
            await self.app(scope, receive, send_with_versions)
        finally:
            if overriding is not None:
                CANARY_OVERRIDE.reset(overriding)
            served_by.stop(collecting)


async def _refuse(scope: Scope, receive: Receive, send: Send) -> None:
    response = JsonResponse(
        {
            "error": {
                "code": "invalid_canary_override",
                "message": "the Delinkcious-Canary header must be `always` or `never`",
            }
        },
        status_code=400,
    )
    await response(scope, receive, send)
