"""Real databases for the store contract tests: a SQLite file and the local PostgreSQL.

Every test that asks for ``links_engine`` / ``users_engine`` runs twice: on SQLite (a temp
file) and on PostgreSQL (a fresh, uniquely named database per service, created once per
test session on the server at ``DELINKCIOUS_TEST_POSTGRES_URL`` and dropped at the end).
PostgreSQL being unreachable is a failure, never a skip: the suite is meant to prove the
code works on both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine

from delinkcious.links.tables import link_owners, link_tags, links
from delinkcious.platform.db import create_engine
from delinkcious.platform.migrations import upgrade
from delinkcious.users.tables import sessions, users
from tests.support.postgres import fresh_databases

SERVICES = {"links": "delinkcious.links", "users": "delinkcious.users"}

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="session")
async def database_urls(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, str]]:
    """One database URL per service, for the session, on the backend under test."""
    if backend == "sqlite":
        directory: Path = tmp_path_factory.mktemp("sqlite")
        yield {service: f"sqlite:///{directory / f'{service}.db'}" for service in SERVICES}
        return
    async with fresh_databases(SERVICES) as urls:
        yield urls


async def _migrated_engine(url: str, service: str) -> AsyncEngine:
    engine = create_engine(url)
    await upgrade(engine, SERVICES[service])
    return engine


@pytest.fixture(scope="session")
async def _links_engine(database_urls: dict[str, str]) -> AsyncIterator[AsyncEngine]:
    engine = await _migrated_engine(database_urls["links"], "links")
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def _users_engine(database_urls: dict[str, str]) -> AsyncIterator[AsyncEngine]:
    engine = await _migrated_engine(database_urls["users"], "users")
    yield engine
    await engine.dispose()


@pytest.fixture
async def links_engine(_links_engine: AsyncEngine) -> AsyncEngine:
    """The links database, migrated and empty."""
    async with _links_engine.begin() as conn:
        for table in (link_tags, links, link_owners):
            await conn.execute(delete(table))
    return _links_engine


@pytest.fixture
async def users_engine(_users_engine: AsyncEngine) -> AsyncEngine:
    """The users database, migrated and empty."""
    async with _users_engine.begin() as conn:
        for table in (sessions, users):
            await conn.execute(delete(table))
    return _users_engine


@pytest.fixture
def links_url(database_urls: dict[str, str]) -> str:
    return database_urls["links"]


@pytest.fixture
def users_url(database_urls: dict[str, str]) -> str:
    return database_urls["users"]


@pytest.fixture
async def fresh_database_url(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """A brand-new, empty database of the backend under test, dropped after the test."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    async with fresh_databases(["fresh"]) as urls:
        yield urls["fresh"]


@pytest.fixture(scope="session")
def head_revisions() -> dict[str, str]:
    """The newest migration each service ships: what ``upgrade`` must leave recorded."""
    heads: dict[str, str] = {}
    for service, package in SERVICES.items():
        config = Config()
        config.set_main_option("script_location", f"{package}:migrations")
        head = ScriptDirectory.from_config(config).get_current_head()
        assert head is not None, f"{package} ships no migration"
        heads[service] = head
    return heads
