"""Fresh PostgreSQL databases for a test session, on the server the suite is pointed at.

PostgreSQL being unreachable is a failure, never a skip: the suite exists to prove the
code works on it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import asyncpg
import pytest
from sqlalchemy.engine import make_url

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def postgres_url() -> str:
    return os.environ.get("DELINKCIOUS_TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL


async def _admin() -> asyncpg.Connection:
    url = make_url(postgres_url())
    try:
        return await asyncpg.connect(
            url.set(drivername="postgresql").render_as_string(hide_password=False), timeout=10
        )
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        problem = f"{type(exc).__name__}: {exc}"
    pytest.fail(
        f"PostgreSQL at {url.host or 'localhost'}:{url.port or 5432} is not reachable "
        f"({problem}): run `make test`, which starts it, or point "
        "DELINKCIOUS_TEST_POSTGRES_URL at a server",
        pytrace=False,
    )


@asynccontextmanager
async def fresh_databases(services: Iterable[str]) -> AsyncIterator[dict[str, str]]:
    """A new, uniquely named database per service; all dropped on exit."""
    suffix = f"{os.getpid()}_{secrets.token_hex(4)}"
    names = {service: f"delinkcious_test_{service}_{suffix}" for service in services}
    admin = await _admin()
    try:
        for name in names.values():
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = make_url(postgres_url())
    try:
        yield {
            service: base.set(database=name).render_as_string(hide_password=False)
            for service, name in names.items()
        }
    finally:
        admin = await _admin()
        try:
            for name in names.values():
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def drop_databases(urls: Iterable[str]) -> None:
    """Drop databases a test run made through the code under test (which creates them)."""
    admin = await _admin()
    try:
        for url in urls:
            await admin.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    finally:
        await admin.close()
