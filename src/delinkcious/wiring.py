"""Builds each service from its parts (store + manager + consumers) and the embedded system.

This is the only module that knows which adapter stands behind each port.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from delinkcious.gateway.app import create_app
from delinkcious.link_checker.checker import CheckerSettings, HttpLinkChecker
from delinkcious.link_checker.consumer import LinkCheckConsumer
from delinkcious.link_checker.guard import parse_networks
from delinkcious.links.consumer import LinkCheckedConsumer
from delinkcious.links.manager import LinkService
from delinkcious.links.paging import PageTokens
from delinkcious.links.sql_store import SqlLinkStore
from delinkcious.links.tables import outbox
from delinkcious.model.errors import NotFound
from delinkcious.model.events import LINK_CHANGES
from delinkcious.model.social import SocialGraphManager
from delinkcious.model.users import UserManager
from delinkcious.news.manager import NewsConsumer, NewsService
from delinkcious.news.sql_store import SqlNewsStore
from delinkcious.news.store import NewsStore
from delinkcious.platform.bus import Bus, MemoryBus
from delinkcious.platform.config import Settings
from delinkcious.platform.db import create_engine
from delinkcious.platform.migrations import upgrade
from delinkcious.platform.outbox import OutboxRelay
from delinkcious.platform.page_tokens import SignedTokens
from delinkcious.platform.sql_outbox import SqlOutbox
from delinkcious.platform.trace_context import current_trace_context
from delinkcious.social_graph.manager import SocialGraphService
from delinkcious.social_graph.sql_store import SqlFollowStore
from delinkcious.users.manager import UserService
from delinkcious.users.session_cache import CachedUserManager
from delinkcious.users.sql_store import SqlUserStore


async def migrated_engine(stack: AsyncExitStack, settings: Settings, service: str) -> AsyncEngine:
    engine = create_engine(settings.database_url(service))
    stack.push_async_callback(engine.dispose)
    await upgrade(engine, f"delinkcious.{service}")
    return engine


async def build_links(
    stack: AsyncExitStack, settings: Settings, bus: Bus
) -> tuple[LinkService, SqlLinkStore]:
    """The links service with its outbox relay running, and its store (for its consumer)."""
    engine = await migrated_engine(stack, settings, "links")
    relay = OutboxRelay(SqlOutbox(engine, outbox), bus)
    store = SqlLinkStore(engine, on_event=relay.kick)
    stack.callback(store.close)
    relay.start()
    stack.push_async_callback(relay.stop)
    service = LinkService(
        store,
        PageTokens(settings.page_token_secret(), settings.page_token_ttl_seconds),
        max_links_per_user=settings.max_links_per_user,
        trace_context=current_trace_context,
    )
    return service, store


async def build_users(stack: AsyncExitStack, settings: Settings) -> UserService:
    engine = await migrated_engine(stack, settings, "users")
    return UserService(
        SqlUserStore(engine), session_ttl=dt.timedelta(seconds=settings.session_ttl_seconds)
    )


async def build_social_graph(
    stack: AsyncExitStack, settings: Settings, users: UserManager
) -> SocialGraphService:
    async def user_exists(username: str) -> bool:
        try:
            await users.get_user(username)
        except NotFound:
            return False
        return True

    engine = await migrated_engine(stack, settings, "social_graph")
    return SocialGraphService(SqlFollowStore(engine), user_exists)


async def build_news_store(stack: AsyncExitStack, settings: Settings) -> NewsStore:
    if settings.news_redis_url is not None:
        import redis.asyncio as redis  # only when configured: it costs a fifth of start-up

        from delinkcious.news.redis_store import RedisNewsStore

        client = redis.from_url(settings.news_redis_url.get_secret_value())
        stack.push_async_callback(client.aclose)
        return RedisNewsStore(client)
    return SqlNewsStore(await migrated_engine(stack, settings, "news"))


def build_news(settings: Settings, store: NewsStore) -> NewsService:
    tokens = SignedTokens(settings.page_token_secret(), settings.page_token_ttl_seconds)
    return NewsService(store, tokens)


def build_link_checker(stack: AsyncExitStack, settings: Settings) -> HttpLinkChecker:
    checker = HttpLinkChecker(
        CheckerSettings(
            allowed_networks=parse_networks(settings.link_checker_allowed_networks),
            connect_timeout=settings.link_checker_connect_timeout,
            total_timeout=settings.link_checker_total_timeout,
            max_concurrency=settings.link_checker_max_concurrency,
            retries=settings.link_checker_retries,
            backoff=settings.link_checker_backoff_seconds,
        )
    )
    stack.push_async_callback(checker.aclose)
    return checker


async def subscribe_consumers(
    bus: Bus,
    settings: Settings,
    *,
    link_store: SqlLinkStore,
    news_store: NewsStore,
    social: SocialGraphManager,
    checker: HttpLinkChecker,
) -> None:
    """The event flow of DESIGN.md: links → news and link_checker; link_checker → links."""
    news = NewsConsumer(news_store, social, feed_cap=settings.news_feed_cap)
    await bus.subscribe("news", LINK_CHANGES, news.handle)
    checks = LinkCheckConsumer(checker, bus)
    await bus.subscribe(
        "link_checker", checks.types, checks.handle,
        concurrency=settings.link_checker_max_concurrency,
    )
    statuses = LinkCheckedConsumer(link_store)
    await bus.subscribe("links", statuses.types, statuses.handle)


async def build_bus(stack: AsyncExitStack, settings: Settings) -> Bus:
    """NATS JetStream when ``DELINKCIOUS_NATS_URL`` is set, else the in-process bus."""
    bus: Bus
    if settings.nats_url is not None:
        from delinkcious.platform.nats_bus import NatsBus  # only when configured

        bus = await NatsBus.connect(settings.nats_url.get_secret_value())
    else:
        bus = MemoryBus()
    stack.push_async_callback(bus.close)
    return bus


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
        bus = await build_bus(stack, settings)
        users = CachedUserManager(
            await build_users(stack, settings), ttl=settings.session_cache_seconds
        )
        social = await build_social_graph(stack, settings, users)
        news_store = await build_news_store(stack, settings)
        checker = build_link_checker(stack, settings)
        links, link_store = await build_links(stack, settings, bus)
        await subscribe_consumers(
            bus, settings, link_store=link_store, news_store=news_store, social=social,
            checker=checker,
        )
        app = create_app(
            links, users, social, build_news(settings, news_store),
            max_body_bytes=settings.max_body_bytes,
        )
        yield EmbeddedSystem(app=app, bus=bus)
