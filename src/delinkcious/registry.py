"""The services of Delinkcious, each described once: what it is, what it needs, how it is built.

Everything that needs the list of services derives it from here: both shapes' wiring, the
``serve`` / ``migrate`` commands and their configuration checks, ``up --processes``, the
secrets of a Kubernetes environment, and the contract tests of the manifests (one
Deployment per service, NetworkPolicy edges equal to ``calls``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from delinkcious.model.checker import LinkChecker
from delinkcious.model.links import LinkManager
from delinkcious.model.news import NewsManager
from delinkcious.model.social import SocialGraphManager
from delinkcious.model.users import UserManager
from delinkcious.platform.config import Settings
from delinkcious.platform.middleware.faults import parse_faults, validate_faults
from delinkcious.platform.transport.auth import parse_tokens

if TYPE_CHECKING:
    from delinkcious.wiring import Assembly

Callees = Mapping[str, Any]
"""The services one calls, by name: in-process managers or remote clients of them."""


def _wiring() -> Any:
    """The builders, imported at the first build: naming the services stays cheap (the
    supervisor of ``up --processes`` needs only the names, not the whole application)."""
    import delinkcious.wiring

    return delinkcious.wiring


class ConfigurationError(ValueError):
    """The settings cannot run this service; the message says which one and why."""


@dataclass(frozen=True)
class Service:
    name: str
    # The model Protocol it serves internally; None for the gateway, which serves the
    # public API to people instead.
    protocol: type | None
    build: Callable[[Assembly, Callees], Awaitable[object]]
    calls: tuple[str, ...] = ()
    uses_bus: bool = False
    # Owns a SQL database with its own migrations (``delinkcious.<name>.migrations``).
    database: bool = False
    # Keeps its data in Redis instead when DELINKCIOUS_<NAME>_REDIS_URL is set.
    redis: bool = False
    # Signs page tokens: every replica must share DELINKCIOUS_SECRET_KEY.
    page_tokens: bool = False

    @property
    def env_prefix(self) -> str:
        return f"DELINKCIOUS_{self.name.upper()}"


SERVICES: tuple[Service, ...] = (
    Service(
        "gateway",
        None,
        lambda assembly, c: _wiring().build_gateway(
            assembly, c["links"], c["users"], c["social_graph"], c["news"]
        ),
        calls=("links", "users", "social_graph", "news"),
    ),
    Service(
        "links",
        LinkManager,
        lambda assembly, _: _wiring().build_links(assembly),
        uses_bus=True,
        database=True,
        page_tokens=True,
    ),
    Service(
        "users", UserManager, lambda assembly, _: _wiring().build_users(assembly), database=True
    ),
    Service(
        "social_graph",
        SocialGraphManager,
        lambda assembly, c: _wiring().build_social_graph(assembly, c["users"]),
        calls=("users",),
        database=True,
    ),
    Service(
        "news",
        NewsManager,
        lambda assembly, c: _wiring().build_news(assembly, c["social_graph"]),
        calls=("social_graph",),
        uses_bus=True,
        database=True,
        redis=True,
        page_tokens=True,
    ),
    Service(
        "link_checker",
        LinkChecker,
        lambda assembly, _: _wiring().build_link_checker(assembly),
        uses_bus=True,
    ),
)
NAMES: tuple[str, ...] = tuple(service.name for service in SERVICES)
_BY_NAME = {service.name: service for service in SERVICES}


def service(name: str) -> Service:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ConfigurationError(f"unknown service {name!r}; one of {', '.join(NAMES)}") from None


def protocols() -> dict[str, type]:
    """The internal services by name, with the Protocol each serves."""
    return {s.name: s.protocol for s in SERVICES if s.protocol is not None}


def callers(name: str) -> tuple[str, ...]:
    """The services that call ``name``: the only ones its internal API accepts."""
    return tuple(s.name for s in SERVICES if name in s.calls)


def build_order() -> tuple[Service, ...]:
    """Every service after the ones it calls (registry order otherwise)."""
    ordered: list[Service] = []
    placed: set[str] = set()

    def place(current: Service, path: tuple[str, ...]) -> None:
        if current.name in placed:
            return
        if current.name in path:
            raise RuntimeError(f"the services call each other in a cycle: {path}")
        for callee in current.calls:
            place(service(callee), (*path, current.name))
        placed.add(current.name)
        ordered.append(current)

    for each in SERVICES:
        place(each, ())
    return tuple(ordered)


def check_faults(settings: Settings) -> None:
    """Faults may only name services and methods that exist: a typo fails at start."""
    try:
        validate_faults(parse_faults(settings.faults), protocols())
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None


def check_configuration(name: str, settings: Settings) -> dict[str, str]:
    """Everything a process of service ``name`` needs is set; returns the internal tokens.

    This is what ``serve`` refuses to start without, and what every Kubernetes manifest
    must set (a contract test runs it on the rendered environment of each container).
    """
    current = service(name)
    check_faults(settings)
    if settings.internal_tokens is None:
        raise ConfigurationError(
            "DELINKCIOUS_INTERNAL_TOKENS is required (caller=secret,...): "
            "internal APIs never run open"
        )
    try:
        tokens = parse_tokens(settings.internal_tokens.get_secret_value())
    except ValueError as exc:
        raise ConfigurationError(f"DELINKCIOUS_INTERNAL_TOKENS: {exc}") from None
    if name not in tokens:
        raise ConfigurationError(f"DELINKCIOUS_INTERNAL_TOKENS has no entry for {name}")
    for callee in current.calls:
        if getattr(settings, f"{callee}_url") is None:
            raise ConfigurationError(
                f"{service(callee).env_prefix}_URL is required: {name} calls {callee}"
            )
    if current.uses_bus and settings.nats_url is None:
        raise ConfigurationError(
            f"DELINKCIOUS_NATS_URL is required: {name} exchanges events with other processes"
        )
    in_redis = current.redis and getattr(settings, f"{name}_redis_url") is not None
    if current.database and not in_redis and getattr(settings, f"{name}_database_url") is None:
        where = f" (or {current.env_prefix}_REDIS_URL)" if current.redis else ""
        raise ConfigurationError(
            f"{current.env_prefix}_DATABASE_URL{where} is required: {name} keeps its data "
            "in a database of its own, not in a file of this process"
        )
    if current.page_tokens and settings.secret_key is None:
        raise ConfigurationError(
            f"DELINKCIOUS_SECRET_KEY is required: {name} signs page tokens, and every "
            "replica must accept the tokens of the others"
        )
    return tokens
