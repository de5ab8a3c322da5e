"""Builds each service from its parts (store + manager) and the embedded system from them.

This is the only module that knows which adapter stands behind each port.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from delinkcious.gateway.app import create_app
from delinkcious.links.manager import LinkService
from delinkcious.links.paging import PageTokens
from delinkcious.links.sql_store import SqlLinkStore
from delinkcious.platform.config import Settings
from delinkcious.platform.db import create_engine
from delinkcious.platform.migrations import upgrade
from delinkcious.users.manager import UserService
from delinkcious.users.session_cache import CachedUserManager
from delinkcious.users.sql_store import SqlUserStore


async def migrated_engine(settings: Settings, service: str) -> AsyncEngine:
    engine = create_engine(settings.database_url(service))
    await upgrade(engine, f"delinkcious.{service}")
    return engine


def build_links(settings: Settings, engine: AsyncEngine) -> LinkService:
    return LinkService(
        SqlLinkStore(engine),
        PageTokens(settings.page_token_secret(), settings.page_token_ttl_seconds),
        max_links_per_user=settings.max_links_per_user,
    )


def build_users(settings: Settings, engine: AsyncEngine) -> UserService:
    return UserService(
        SqlUserStore(engine), session_ttl=dt.timedelta(seconds=settings.session_ttl_seconds)
    )


@dataclass
class EmbeddedSystem:
    app: FastAPI
    engines: list[AsyncEngine]


@asynccontextmanager
async def embedded(settings: Settings) -> AsyncIterator[EmbeddedSystem]:
    """Every service in this process, on SQLite files, wired through their Protocols."""
    engines: list[AsyncEngine] = []
    try:
        links_engine = await migrated_engine(settings, "links")
        engines.append(links_engine)
        users_engine = await migrated_engine(settings, "users")
        engines.append(users_engine)
        users = CachedUserManager(
            build_users(settings, users_engine), ttl=settings.session_cache_seconds
        )
        app = create_app(
            build_links(settings, links_engine), users, max_body_bytes=settings.max_body_bytes
        )
        yield EmbeddedSystem(app=app, engines=engines)
    finally:
        for engine in engines:
            await engine.dispose()
