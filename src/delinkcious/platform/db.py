"""Async SQLAlchemy engines for SQLite (embedded) and PostgreSQL (distributed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


def async_url(url: str) -> str:
    """Give a plain ``sqlite://`` or ``postgresql://`` URL its asyncio driver."""
    parsed = make_url(url)
    driver = _DRIVERS.get(parsed.drivername)
    if driver is None and parsed.drivername not in _DRIVERS.values():
        raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}")
    return parsed.set(drivername=driver).render_as_string(hide_password=False) if driver else url


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run while one writer writes; the busy timeout queues writers
    # instead of failing them; foreign keys make ON DELETE CASCADE real.
    cursor = dbapi_connection.cursor()
    for pragma in (
        "PRAGMA journal_mode=WAL",
        "PRAGMA synchronous=NORMAL",
        "PRAGMA busy_timeout=10000",
        "PRAGMA foreign_keys=ON",
    ):
        cursor.execute(pragma)
    cursor.close()


def create_engine(url: str, *, pool_size: int = 10, max_overflow: int = 10) -> AsyncEngine:
    """An engine for the URL; the pool sizes apply to PostgreSQL, where every replica's
    pool counts against the server's max_connections."""
    url = async_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, pool_size=4, max_overflow=4)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        url, pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True
    )


async def ensure_database(url: str) -> None:
    """Create the service's PostgreSQL database if it is missing (SQLite creates its own).

    Each service owns its database; creating it at first start spares an operator step
    when the role may create databases. Connection errors propagate (callers retry).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return
    import asyncpg  # only the PostgreSQL shape needs it

    # Query options (`?ssl=require`) are the engine's connect arguments; in asyncpg's own
    # URL they would be sent to the server as settings, which it refuses.
    options = dict(parsed.query)
    plain = parsed.set(drivername="postgresql", query={})
    try:
        connection = await asyncpg.connect(
            plain.render_as_string(hide_password=False), timeout=5, **options
        )
    except asyncpg.InvalidCatalogNameError:
        admin = await asyncpg.connect(
            plain.set(database="postgres").render_as_string(hide_password=False),
            timeout=5,
            **options,
        )
        try:
            await admin.execute(f'CREATE DATABASE "{parsed.database}"')
        except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
            pass  # another replica created it meanwhile (PostgreSQL says one or the other)
        finally:
            await admin.close()
    else:
        await connection.close()
