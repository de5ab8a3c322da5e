"""Builds each service from its parts (store + manager + consumers) and the embedded system.

This is the only module that knows which adapter stands behind each port.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from delinkcious.gateway.app import create_app
from delinkcious.gateway.http_observability import HttpObservabilityMiddleware
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


@dataclass
class Assembly:
    """What every builder needs: the settings, the middleware chain every service goes
    through, and where to put cleanup and readiness checks."""

    settings: Settings
    stack: AsyncExitStack
    health: Readiness = field(default_factory=Readiness)
    chain: Chain = field(init=False)

    def __post_init__(self) -> None:
        faults = parse_faults(self.settings.faults)  # validated with the settings
        self.chain = Chain(self.settings.version, faults, enabled=self.settings.middleware)


async def migrated_engine(assembly: Assembly, service: str) -> AsyncEngine:
    """The service's own database, created if missing, waited for, and migrated to head."""
    url = assembly.settings.database_url(service)
    await wait_for(
        f"the {service} database",
        lambda: ensure_database(url),
        assembly.settings.startup_timeout_seconds,
    )
    engine = create_engine(url)
    assembly.stack.push_async_callback(engine.dispose)
    await upgrade(engine, f"delinkcious.{service}")
    assembly.health.add(f"{service} database", lambda: _select_one(engine))
    return engine


async def _select_one(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def build_links(assembly: Assembly, bus: Bus) -> LinkManager:
    """The links service, its outbox relay running and its link.checked consumer subscribed.

    Build it after the services that consume its events: the in-process bus delivers only
    to subscribers it already has.
    """
    stack, settings = assembly.stack, assembly.settings
    engine = await migrated_engine(assembly, "links")
    sql_outbox = SqlOutbox(engine, outbox)
    relay = OutboxRelay(sql_outbox, bus)
    store = SqlLinkStore(engine, on_event=relay.kick)
    stack.callback(store.close)
    statuses = LinkCheckedConsumer(store)
    await bus.subscribe("links", statuses.types, statuses.handle)
    relay.start()
    stack.push_async_callback(relay.stop)
    gauge = OutboxGauge(sql_outbox)
    gauge.start()
    stack.push_async_callback(gauge.stop)
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

        client = redis.from_url(settings.news_redis_url.get_secret_value())
        assembly.stack.push_async_callback(client.aclose)
        await wait_for("Redis", client.ping, settings.startup_timeout_seconds)
        assembly.health.add("redis", client.ping)
        return RedisNewsStore(client, key_prefix=settings.news_redis_prefix)
    return SqlNewsStore(await migrated_engine(assembly, "news"))


async def build_news(assembly: Assembly, bus: Bus, social: SocialGraphManager) -> NewsManager:
    """The news service, with its consumer filling feeds from link events."""
    settings = assembly.settings
    store = await build_news_store(assembly)
    consumer = NewsConsumer(store, social, feed_cap=settings.news_feed_cap)
    await bus.subscribe("news", consumer.types, consumer.handle)
    tokens = SignedTokens(settings.page_token_secret(), settings.page_token_ttl_seconds)
    return assembly.chain.apply(NewsManager, "news", NewsService(store, tokens))


async def build_link_checker(assembly: Assembly, bus: Bus) -> LinkChecker:
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
    checks = LinkCheckConsumer(checker, bus)
    await bus.subscribe(
        "link_checker",
        checks.types,
        checks.handle,
        concurrency=settings.link_checker_max_concurrency,
    )
    return checker


async def build_bus(assembly: Assembly) -> Bus:
    """NATS JetStream when ``DELINKCIOUS_NATS_URL`` is set, else the in-process bus."""
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
    bus = TracedBus(MeteredBus(bus))
    assembly.stack.push_async_callback(bus.close)
    return bus


def instrument_gateway(app: FastAPI, settings: Settings) -> None:
    """The gateway's own HTTP view (a server span, HTTP metrics and an access-log line per
    request) and ``/metrics`` for every service in the process."""
    if settings.middleware:
        app.add_middleware(HttpObservabilityMiddleware, service="gateway")
    install_metrics(app, settings.version)


@dataclass
class EmbeddedSystem:
    app: FastAPI
    bus: Bus


@asynccontextmanager
async def embedded(settings: Settings) -> AsyncIterator[EmbeddedSystem]:
    """Every service in this one process, on the backends the settings name.

    By default that is SQLite files and the in-process bus; PostgreSQL, Redis and NATS
    when their URLs are set. Shutdown runs in reverse: the relay stops before the bus.
    """
    async with AsyncExitStack() as stack:
        assembly = Assembly(settings, stack)
        bus = await build_bus(assembly)
        users = CachedUserManager(await build_users(assembly), ttl=settings.session_cache_seconds)
        social = await build_social_graph(assembly, users)
        news = await build_news(assembly, bus, social)
        await build_link_checker(assembly, bus)
        links = await build_links(assembly, bus)
        app = create_app(
            links,
            users,
            social,
            news,
            readiness=assembly.health,
            max_body_bytes=settings.max_body_bytes,
        )
        instrument_gateway(app, settings)
        yield EmbeddedSystem(app=app, bus=bus)


@asynccontextmanager
async def embedded_app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The embedded system's public app, for serving."""
    async with embedded(settings) as system:
        yield system.app
