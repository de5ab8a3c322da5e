"""The distributed shape: each service in its own process (``delinkcious serve SERVICE``).

A service process serves its Protocol on the internal HTTP API; the services it calls are
``remote`` clients of the same Protocols, so the managers and the gateway are the very
code of the embedded shape, wired differently.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI

from delinkcious import __version__
from delinkcious.gateway.app import create_app
from delinkcious.gateway.health import install_health
from delinkcious.gateway.responses import JsonResponse
from delinkcious.model.services import PROTOCOLS
from delinkcious.platform.config import Settings
from delinkcious.platform.health import Readiness
from delinkcious.platform.metrics import install_metrics
from delinkcious.platform.tracing import FASTAPI_TELEMETRY
from delinkcious.platform.transport import internal_router, make_client, parse_tokens, remote
from delinkcious.users.session_cache import CachedUserManager
from delinkcious.wiring import (
    Assembly,
    build_bus,
    build_link_checker,
    build_links,
    build_news,
    build_social_graph,
    build_users,
    instrument_gateway,
)

SERVICES = ("gateway", "links", "users", "social_graph", "news", "link_checker")
# The other services each one calls, by the setting that says where they answer.
CALLS = {
    "gateway": ("links", "users", "social_graph", "news"),
    "social_graph": ("users",),
    "news": ("social_graph",),
}
_USES_BUS = frozenset({"links", "news", "link_checker"})


class ConfigurationError(ValueError):
    """The settings cannot run this service; the message says which one and why."""


def check_configuration(service: str, settings: Settings) -> dict[str, str]:
    """Everything ``service`` needs is set; returns the internal tokens."""
    if service not in SERVICES:
        raise ConfigurationError(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
    if settings.internal_tokens is None:
        raise ConfigurationError(
            "DELINKCIOUS_INTERNAL_TOKENS is required (caller=secret,...): "
            "internal APIs never run open"
        )
    try:
        tokens = parse_tokens(settings.internal_tokens.get_secret_value())
    except ValueError as exc:
        raise ConfigurationError(f"DELINKCIOUS_INTERNAL_TOKENS: {exc}") from None
    if service not in tokens:
        raise ConfigurationError(f"DELINKCIOUS_INTERNAL_TOKENS has no entry for {service}")
    for callee in CALLS.get(service, ()):
        if getattr(settings, f"{callee}_url") is None:
            raise ConfigurationError(
                f"DELINKCIOUS_{callee.upper()}_URL is required: {service} calls {callee}"
            )
    if service in _USES_BUS and settings.nats_url is None:
        raise ConfigurationError(
            f"DELINKCIOUS_NATS_URL is required: {service} exchanges events with other processes"
        )
    return tokens


def internal_app(
    service: str,
    protocol: type,
    implementation: object,
    tokens: dict[str, str],
    readiness: Readiness,
    version: str,
) -> FastAPI:
    app = FastAPI(
        title=f"Delinkcious {service} (internal)",
        version=__version__,
        default_response_class=JsonResponse,
        openapi_url=None,
        # The transport continues the caller's trace itself; a second server span is noise.
        telemetry=FASTAPI_TELEMETRY,
    )
    app.include_router(internal_router(service, protocol, implementation, tokens))
    install_health(app, readiness)
    install_metrics(app, version)
    return app


Client = Callable[[str], Any]
Builder = Callable[[Assembly, Client], Awaitable[object]]


async def _links(assembly: Assembly, _: Client) -> object:
    return await build_links(assembly, await build_bus(assembly))


async def _users(assembly: Assembly, _: Client) -> object:
    return await build_users(assembly)


async def _social_graph(assembly: Assembly, client: Client) -> object:
    return await build_social_graph(assembly, client("users"))


async def _news(assembly: Assembly, client: Client) -> object:
    return await build_news(assembly, await build_bus(assembly), client("social_graph"))


async def _link_checker(assembly: Assembly, _: Client) -> object:
    return await build_link_checker(assembly, await build_bus(assembly))


BUILDERS: dict[str, Builder] = {
    "links": _links,
    "users": _users,
    "social_graph": _social_graph,
    "news": _news,
    "link_checker": _link_checker,
}


@asynccontextmanager
async def service_app(service: str, settings: Settings) -> AsyncIterator[FastAPI]:
    """The HTTP app of one service, its dependencies waited for, built and later closed."""
    tokens = check_configuration(service, settings)
    async with AsyncExitStack() as stack:
        assembly = Assembly(settings, stack)
        http = make_client()
        stack.push_async_callback(http.aclose)

        def client(callee: str) -> Any:
            url = getattr(settings, f"{callee}_url")
            assembly.health.add(f"{callee} service", lambda: _alive(http, url))
            return remote(PROTOCOLS[callee], callee, url, tokens[service], http)

        if service == "gateway":
            users = CachedUserManager(client("users"), ttl=settings.session_cache_seconds)
            app = create_app(
                client("links"),
                users,
                client("social_graph"),
                client("news"),
                readiness=assembly.health,
                max_body_bytes=settings.max_body_bytes,
            )
            instrument_gateway(app, settings)
            yield app
            return
        implementation = await BUILDERS[service](assembly, client)
        yield internal_app(
            service, PROTOCOLS[service], implementation, tokens, assembly.health, settings.version
        )


async def _alive(http: httpx.AsyncClient, url: str) -> None:
    response = await http.get(f"{url}/healthz", timeout=2)
    response.raise_for_status()
