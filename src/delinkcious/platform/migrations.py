"""Alembic, driven from code: each service keeps its own migration history and version table."""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, MetaData
from sqlalchemy.ext.asyncio import AsyncEngine


def _config(package: str, connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", f"{package}:migrations")
    config.attributes["connection"] = connection
    return config


async def upgrade(engine: AsyncEngine, package: str, revision: str = "head") -> None:
    """Bring the service's schema (``package``, e.g. ``delinkcious.links``) up to ``revision``."""
    async with engine.begin() as connection:
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
