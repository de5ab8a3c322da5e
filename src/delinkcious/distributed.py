"""The distributed shape: each service in its own process (``delinkcious serve SERVICE``).

A service process serves its Protocol on the internal HTTP API; the services it calls are
``remote`` clients of the same Protocols, so the managers and the gateway are the very
code of the embedded shape, built by the same registry entry with other callees. Its
calls go through the traffic shaper (``platform.routing``): the route table file when
``DELINKCIOUS_ROUTES_FILE`` names one, else one stable replica per ``DELINKCIOUS_*_URL``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, cast

import httpx
from fastapi import FastAPI

from delinkcious import __version__
from delinkcious.gateway.admin import install_admin
from delinkcious.gateway.health import install_health
from delinkcious.gateway.responses import JsonResponse
from delinkcious.platform.build import Build
from delinkcious.platform.config import Settings
from delinkcious.platform.health import Readiness
from delinkcious.platform.metrics import install_metrics
from delinkcious.platform.routing.reload import RouteFile
from delinkcious.platform.routing.router import Router
from delinkcious.platform.routing.table import RouteTable, RouteTableError
from delinkcious.platform.tracing import FASTAPI_TELEMETRY
from delinkcious.platform.transport import describe, internal_router, make_client, remote
from delinkcious.registry import (
    ConfigurationError,
    Service,
    callers,
    check_configuration,
    protocols,
    service,
)
from delinkcious.wiring import Assembly

log = logging.getLogger("delinkcious.distributed")


def internal_app(
    current: Service,
    implementation: object,
    tokens: dict[str, str],
    readiness: Readiness,
    build: Build,
) -> FastAPI:
    assert current.protocol is not None  # the gateway serves people, not a Protocol
    app = FastAPI(
        title=f"Delinkcious {current.name} (internal)",
        version=__version__,
        default_response_class=JsonResponse,
        openapi_url=None,
        # The transport continues the caller's trace itself; a second server span is noise.
        telemetry=FASTAPI_TELEMETRY,
    )
    app.include_router(
        internal_router(current.name, current.protocol, implementation, tokens, build.version)
    )
    install_health(app, readiness, build)
    install_metrics(app, build)
    return app


def routing(current: Service, settings: Settings) -> tuple[Router, RouteFile | None]:
    """The routes to the services ``current`` calls: the table file's, else the URLs."""
    defaults = {callee: getattr(settings, f"{callee}_url") for callee in current.calls}
    if settings.routes_file is None:
        return Router(RouteTable(), defaults), None
    methods = {name: frozenset(describe(protocol)) for name, protocol in protocols().items()}
    routes = RouteFile(settings.routes_file, methods)
    try:
        table = routes.load()
    except RouteTableError as exc:
        raise ConfigurationError(f"DELINKCIOUS_ROUTES_FILE: {exc}") from None
    return Router(table, defaults), routes


class _Watch:
    """The replicas' health, and the route table file, watched while the process runs."""

    def __init__(self, router: Router, routes: RouteFile | None, http: httpx.AsyncClient) -> None:
        self._router, self._routes, self._http = router, routes, http
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._router.watch_health(self._http)))
        if self._routes is not None:
            self._tasks.append(asyncio.create_task(self._routes.watch(self._router)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


@asynccontextmanager
async def service_app(name: str, settings: Settings) -> AsyncIterator[FastAPI]:
    """The HTTP app of one service, its dependencies waited for, built and later closed."""
    tokens = check_configuration(name, settings)
    current = service(name)
    router, routes = routing(current, settings)
    async with AsyncExitStack() as stack:
        assembly = Assembly(settings, stack, name)
        http = make_client()
        stack.push_async_callback(http.aclose)
        if current.calls:
            assembly.in_background(_Watch(router, routes, http))

        def client(callee: str) -> Any:
            assembly.health.add(f"{callee} service", lambda: router.ready(callee), local=False)
            route = router.route(callee)
            return remote(protocols()[callee], callee, route, tokens[name], http)

        built = await current.build(assembly, {callee: client(callee) for callee in current.calls})
        assembly.start()
        if current.protocol is None:  # the gateway: its app is the public API
            app = cast(FastAPI, built)
            install_admin(app, router, routes, tokens)
            yield app
            return
        # Only the services that call this one may: the call graph, enforced.
        accepted = {caller: tokens[caller] for caller in callers(name) if caller in tokens}
        for missing in sorted(set(callers(name)) - set(accepted)):
            log.warning("no internal token for %s: its calls to %s will be refused", missing, name)
        yield internal_app(current, built, accepted, assembly.health, assembly.build)
