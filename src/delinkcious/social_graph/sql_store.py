"""``SqlFollowStore``: the social graph port on SQLAlchemy Core (SQLite or PostgreSQL)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from delinkcious.social_graph.tables import follows


class SqlFollowStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def add(self, followed: str, follower: str) -> bool:
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    insert(follows).values(
                        followed=followed, follower=follower, created_at=dt.datetime.now(dt.UTC)
                    )
                )
        except IntegrityError:
            return False
        return True

    async def remove(self, followed: str, follower: str) -> bool:
        async with self._engine.begin() as conn:
            result = await conn.execute(
                delete(follows).where(
                    follows.c.followed == followed, follows.c.follower == follower
                )
            )
        return bool(result.rowcount)

    async def following(self, follower: str) -> list[str]:
        async with self._engine.connect() as conn:
            rows = await conn.scalars(
                select(follows.c.followed)
                .where(follows.c.follower == follower)
                .order_by(follows.c.followed)
            )
            return list(rows)

    async def followers(self, followed: str) -> list[str]:
        async with self._engine.connect() as conn:
            rows = await conn.scalars(
                select(follows.c.follower)
                .where(follows.c.followed == followed)
                .order_by(follows.c.follower)
            )
            return list(rows)
