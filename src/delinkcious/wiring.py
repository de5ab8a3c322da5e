"""How each service is built from its parts: store + manager + consumers + middleware chain.

This is the only module that knows which adapter stands behind each port. Which services
exist, what each calls and in which order they are built is the registry's business
(``delinkcious.registry``); both shapes build through it.
"""

from __future__ import annotations

import datetime as dt
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Protocol

from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from delinkcious.gateway.app import create_app
from delinkcious.gateway.http_observability import HttpObservabilityMiddleware
from delinkcious.gateway.shaping import ShapingMiddleware
from delinkcious.link_checker.checker import CheckerSettings, HttpLinkChecker
from delinkcious.link_checker.consumer import LinkCheckConsumer
from delinkcious.link_checker.guard import parse_networks
from delinkcious.links.consumer import LinkCheckedConsumer
from delinkcious.links.manager import LinkService
from delinkcious.links.paging import PageTokens
from delinkcious.links.sql_store import SqlLinkStore
from delinkcious.links.tables import outbox
from delinkcious.model.checker import LinkChecker
from delinkcious.model.errors import NotFound
from delinkcious.model.links import LinkManager
from delinkcious.model.news import NewsManager
from delinkcious.model.social import SocialGraphManager
from delinkcious.model.users import UserManager
from delinkcious.news.manager import NewsConsumer, NewsService
from delinkcious.news.sql_store import SqlNewsStore
from delinkcious.news.store import NewsStore
from delinkcious.platform.build import Build, build_of
from delinkcious.platform.bus import Bus, MemoryBus
from delinkcious.platform.config import Settings
from delinkcious.platform.db import create_engine, ensure_database
from delinkcious.platform.health import Readiness
from delinkcious.platform.metrics import (
    MeteredBus,
    OutboxGauge,
    install_metrics,
    metered_link_checker,
)
from delinkcious.platform.middleware.chain import Chain
from delinkcious.platform.middleware.faults import parse_faults
from delinkcious.platform.migrations import upgrade
from delinkcious.platform.outbox import OutboxRelay
from delinkcious.platform.page_tokens import SignedTokens
from delinkcious.platform.sql_outbox import SqlOutbox
from delinkcious.platform.startup import wait_for
from delinkcious.platform.trace_context import current_trace_context
from delinkcious.platform.traced_bus import TracedBus
from delinkcious.social_graph.manager import SocialGraphService
from delinkcious.social_graph.sql_store import SqlFollowStore
from delinkcious.users.manager import UserService
from delinkcious.users.session_cache import CachedUserManager
from delinkcious.users.sql_store import SqlUserStore


class Background(Protocol):
    """Work a service runs beside its requests: an outbox relay, a gauge."""

    def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class Assembly:
    """What every builder needs: the settings, the middleware chain every service goes
    through, the process's bus, and where to put cleanup, readiness checks and background
    work."""

    settings: Settings
    stack: AsyncExitStack
    # Who this process is: a service's name, or "delinkcious" when it runs them all.
    name: str = "delinkcious"
    health: Readiness = field(default_factory=Readiness)
    build: Build = field(init=False)
    chain: Chain = field(init=False)
    _bus: Bus | None = field(default=None, init=False)
    _background: list[Background] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.build = build_of(self.name, self.settings.version, self.settings.revision)
        faults = parse_faults(self.settings.faults)  # validated with the settings
        self.chain = Chain(self.settings.version, faults, enabled=self.settings.middleware)

    async def bus(self) -> Bus:
        """The process's one bus, connected on first use: services in one process share it.

        NATS JetStream when ``DELINKCIOUS_NATS_URL`` is set, else the in-process bus. It is
        closed last, after every relay that publishes on it has stopped.
        """
        if self._bus is None:
            self._bus = await _connect_bus(self)
            self.stack.push_async_callback(self._bus.close)
        return self._bus

    def in_background(self, work: Background) -> None:
        """Run ``work`` once every service of the process is built (``start``).

        So no event is relayed before its consumers have subscribed: the in-process bus
        delivers only to the subscribers it already has.
        """
        self._background.append(work)

    def start(self) -> None:
        """Start the background work; it stops before anything built earlier is closed."""
        for work in self._background:
            work.start()
            self.stack.push_async_callback(work.stop)
        self._background.clear()


async def migrated_engine(assembly: Assembly, service: str) -> AsyncEngine:
    """The service's own database, created if missing, waited for, and migrated to head."""
    url = assembly.settings.database_url(service)
    await wait_for(
        f"the {service} database",
        lambda: ensure_database(url),
        assembly.settings.startup_timeout_seconds,
    )
    engine = create_engine(
        url,
        pool_size=assembly.settings.database_pool_size,
        max_overflow=assembly.settings.database_max_overflow,
    )
    assembly.stack.push_async_callback(engine.dispose)
    await upgrade(engine, f"delinkcious.{service}")
    assembly.health.add(f"{service} database", lambda: _select_one(engine))
    return engine


async def _select_one(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def build_links(assembly: Assembly) -> LinkManager:
    """The links service, its link.checked consumer subscribed and its outbox relayed."""
    stack, settings = assembly.stack, assembly.settings
    engine = await migrated_engine(assembly, "links")
    bus = await assembly.bus()
    sql_outbox = SqlOutbox(engine, outbox)
    relay = OutboxRelay(sql_outbox, bus)
    store = SqlLinkStore(engine, on_event=relay.kick)
    stack.callback(store.close)
    statuses = LinkCheckedConsumer(store)
    await bus.subscribe("links", statuses.types, statuses.handle)
    assembly.in_background(relay)
    assembly.in_background(OutboxGauge(sql_outbox))
    core = LinkService(
        store,
        PageTokens(settings.page_token_secret(), settings.page_token_ttl_seconds),
        max_links_per_user=settings.max_links_per_user,
        trace_context=current_trace_context,
    )
    return assembly.chain.apply(LinkManager, "links", core)


async def build_users(assembly: Assembly) -> UserManager:
    engine = await migrated_engine(assembly, "users")
    ttl = dt.timedelta(seconds=assembly.settings.session_ttl_seconds)
    core = UserService(SqlUserStore(engine), session_ttl=ttl)
    return assembly.chain.apply(UserManager, "users", core)


async def build_social_graph(assembly: Assembly, users: UserManager) -> SocialGraphManager:
    async def user_exists(username: str) -> bool:
        try:
            await users.get_user(username)
        except NotFound:
            return False
        return True

    engine = await migrated_engine(assembly, "social_graph")
    core = SocialGraphService(SqlFollowStore(engine), user_exists)
    return assembly.chain.apply(SocialGraphManager, "social_graph", core)


async def build_news_store(assembly: Assembly) -> NewsStore:
    settings = assembly.settings
    if settings.news_redis_url is not None:
        import redis.asyncio as redis  # only when configured: it costs a fifth of start-up

        from delinkcious.news.redis_store import RedisNewsStore

        password = settings.news_redis_password
        client = redis.from_url(
            settings.news_redis_url.get_secret_value(),
            **({} if password is None else {"password": password.get_secret_value()}),
        )
        assembly.stack.push_async_callback(client.aclose)
        await wait_for("Redis", client.ping, settings.startup_timeout_seconds)
        assembly.health.add("redis", client.ping)
        return RedisNewsStore(client, key_prefix=settings.news_redis_prefix)
    return SqlNewsStore(await migrated_engine(assembly, "news"))


async def build_news(assembly: Assembly, social: SocialGraphManager) -> NewsManager:
    """The news service, with its consumer filling feeds from link events."""
    settings = assembly.settings
    store = await build_news_store(assembly)
    consumer = NewsConsumer(store, social, feed_cap=settings.news_feed_cap)
    await (await assembly.bus()).subscribe("news", consumer.types, consumer.handle)
    tokens = SignedTokens(settings.page_token_secret(), settings.page_token_ttl_seconds)
    return assembly.chain.apply(NewsManager, "news", NewsService(store, tokens))


async def build_link_checker(assembly: Assembly) -> LinkChecker:
    """The link checker, checking every link.added it is handed and publishing the verdict."""
    settings = assembly.settings
    http_checker = HttpLinkChecker(
        CheckerSettings(
            allowed_networks=parse_networks(settings.link_checker_allowed_networks),
            connect_timeout=settings.link_checker_connect_timeout,
            total_timeout=settings.link_checker_total_timeout,
            max_concurrency=settings.link_checker_max_concurrency,
            retries=settings.link_checker_retries,
            backoff=settings.link_checker_backoff_seconds,
        )
    )
    assembly.stack.push_async_callback(http_checker.aclose)
    # Counted innermost, so an injected fault is not taken for a check result.
    checker = assembly.chain.apply(LinkChecker, "link_checker", metered_link_checker(http_checker))
    bus = await assembly.bus()
    checks = LinkCheckConsumer(checker, bus)
    await bus.subscribe(
        "link_checker",
        checks.types,
        checks.handle,
        concurrency=settings.link_checker_max_concurrency,
    )
    return checker


async def build_gateway(
    assembly: Assembly,
    links: LinkManager,
    users: UserManager,
    social: SocialGraphManager,
    news: NewsManager,
) -> FastAPI:
    """The public ``/v1`` API over the other services, with its own HTTP view (a server
    span, HTTP metrics and an access-log line per request) and ``/metrics`` for every
    service in the process.

    Sessions are resolved through a short cache: every authenticated request needs one.
    """
    settings = assembly.settings
    app = create_app(
        links,
        CachedUserManager(users, ttl=settings.session_cache_seconds),
        social,
        news,
        build=assembly.build,
        readiness=assembly.health,
        max_body_bytes=settings.max_body_bytes,
    )
    app.add_middleware(ShapingMiddleware, build=assembly.build)
    if settings.middleware:
        app.add_middleware(HttpObservabilityMiddleware, service="gateway")
    install_metrics(app, assembly.build)
    return app


async def _connect_bus(assembly: Assembly) -> Bus:
    settings = assembly.settings
    bus: Bus
    if settings.nats_url is not None:
        from delinkcious.platform.nats_bus import NatsBus  # only when configured

        nats_bus = await NatsBus.connect(
            settings.nats_url.get_secret_value(),
            stream=settings.nats_stream,
            subject_prefix=settings.nats_subject_prefix,
            connect_timeout=settings.startup_timeout_seconds,
        )
        assembly.health.add("nats", nats_bus.ping)
        bus = nats_bus
    else:
        bus = MemoryBus()
    return TracedBus(MeteredBus(bus))
