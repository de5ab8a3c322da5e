"""The distributed shape: each service in its own process (``delinkcious serve SERVICE``).

A service process serves its Protocol on the internal HTTP API; the services it calls are
``remote`` clients of the same Protocols, so the managers and the gateway are the very
code of the embedded shape, built by the same registry entry with other callees.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, cast

import httpx
from fastapi import FastAPI

from delinkcious import __version__
from delinkcious.gateway.health import install_health
from delinkcious.gateway.responses import JsonResponse
from delinkcious.platform.config import Settings
from delinkcious.platform.health import Readiness
from delinkcious.platform.metrics import install_metrics
from delinkcious.platform.tracing import FASTAPI_TELEMETRY
from delinkcious.platform.transport import internal_router, make_client, remote
from delinkcious.registry import callers, check_configuration, protocols, service
from delinkcious.wiring import Assembly


def internal_app(
    name: str,
    protocol: type,
    implementation: object,
    tokens: dict[str, str],
    readiness: Readiness,
    version: str,
) -> FastAPI:
    app = FastAPI(
        title=f"Delinkcious {name} (internal)",
        version=__version__,
        default_response_class=JsonResponse,
        openapi_url=None,
        # The transport continues the caller's trace itself; a second server span is noise.
        telemetry=FASTAPI_TELEMETRY,
    )
    app.include_router(internal_router(name, protocol, implementation, tokens))
    install_health(app, readiness)
    install_metrics(app, version)
    return app


@asynccontextmanager
async def service_app(name: str, settings: Settings) -> AsyncIterator[FastAPI]:
    """The HTTP app of one service, its dependencies waited for, built and later closed."""
    tokens = check_configuration(name, settings)
    current = service(name)
    async with AsyncExitStack() as stack:
        assembly = Assembly(settings, stack)
        http = make_client()
        stack.push_async_callback(http.aclose)

        def client(callee: str) -> Any:
            url = getattr(settings, f"{callee}_url")
            assembly.health.add(f"{callee} service", lambda: _alive(http, url))
            return remote(protocols()[callee], callee, url, tokens[name], http)

        built = await current.build(assembly, {callee: client(callee) for callee in current.calls})
        assembly.start()
        if current.protocol is None:  # the gateway: its app is the public API
            yield cast(FastAPI, built)
            return
        # Only the services that call this one may: the call graph, enforced.
        accepted = {caller: tokens[caller] for caller in callers(name) if caller in tokens}
        yield internal_app(
            name, current.protocol, built, accepted, assembly.health, settings.version
        )


async def _alive(http: httpx.AsyncClient, url: str) -> None:
    response = await http.get(f"{url}/healthz", timeout=2)
    response.raise_for_status()
