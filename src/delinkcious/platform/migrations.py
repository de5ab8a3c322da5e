"""Alembic, driven from code: each service keeps its own migration history and version table."""

from __future__ import annotations

import hashlib
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, MetaData, text
from sqlalchemy.ext.asyncio import AsyncEngine


def _config(package: str, connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", f"{package}:migrations")
    config.attributes["connection"] = connection
    return config


async def upgrade(engine: AsyncEngine, package: str, revision: str = "head") -> None:
    """Bring the service's schema (``package``, e.g. ``delinkcious.links``) up to ``revision``.

    On PostgreSQL, replicas that start together (a new Deployment, a scale-up) migrate one
    at a time under an advisory lock held until the commit; the next finds the schema at
    head and does nothing.
    """
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            key = int.from_bytes(hashlib.sha256(package.encode()).digest()[:8], "big", signed=True)
            await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
        await connection.run_sync(lambda sync: command.upgrade(_config(package, sync), revision))


def run_env(context: Any, metadata: MetaData, version_table: str) -> None:
    """Body of every service's ``migrations/env.py``: run online on the connection handed in."""
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations with `delinkcious migrate SERVICE`, not the alembic CLI")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=version_table,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
