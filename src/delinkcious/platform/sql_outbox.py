"""The outbox on SQL: write an event inside the caller's transaction, read it back to relay."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

from sqlalchemy import Table, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from delinkcious.model.events import Event


async def enqueue(conn: AsyncConnection, table: Table, event: Event) -> None:
    """Add ``event`` to the outbox in the transaction of ``conn``: both commit or neither."""
    await conn.execute(
        insert(table).values(
            event_id=event.id,
            payload=event.to_json().decode(),
            created_at=dt.datetime.now(dt.UTC),
        )
    )


class SqlOutbox:
    """Implements the relay's ``Outbox`` port over an outbox table (id, event_id, payload)."""

    def __init__(self, engine: AsyncEngine, table: Table) -> None:
        self._engine = engine
        self._table = table

    async def pending(self, limit: int, exclude: Collection[int]) -> list[tuple[int, Event]]:
        table = self._table
        query = select(table.c.id, table.c.payload).order_by(table.c.id).limit(limit)
        if exclude:
            query = query.where(table.c.id.not_in(list(exclude)))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [(row.id, Event.from_json(row.payload)) for row in rows]

    async def mark_sent(self, row_id: int) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(delete(self._table).where(self._table.c.id == row_id))

    async def size(self) -> int:
        async with self._engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(self._table)) or 0)
