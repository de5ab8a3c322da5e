"""``SqlNewsStore``: the news port on SQLAlchemy Core (SQLite embedded, or PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Table, and_, bindparam, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from delinkcious.model.events import Event
from delinkcious.news.store import FeedItem, NewsCursor, cursor_of
from delinkcious.news.tables import news_feeds, news_items

# Either dialect's insert: both have the ON CONFLICT clauses used here.
_INSERTS: dict[str, Callable[[Table], sqlite.Insert | postgresql.Insert]] = {
    "sqlite": sqlite.insert,
    "postgresql": postgresql.insert,
}

# Executed once per full feed, with that feed's excess: its oldest events go.
_DROP_OLDEST = delete(news_items).where(
    news_items.c.username == bindparam("feed"),
    news_items.c.event_id.in_(
        select(news_items.c.event_id)
        .where(news_items.c.username == bindparam("feed"))
        .order_by(news_items.c.time, news_items.c.event_id)
        .limit(bindparam("excess"))
    ),
)


def _utc(value: dt.datetime) -> dt.datetime:
    # SQLite hands datetimes back naive; every value we store is UTC.
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


class SqlNewsStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._insert = _INSERTS[engine.dialect.name]

    async def append(self, usernames: Sequence[str], event: Event, cap: int) -> None:
        cursor = cursor_of(event)
        fields = {
            "event_id": event.id,
            "type": event.type.value,
            "author": event.author,
            "url": event.url,
            "title": event.title,
            "tags": list(event.tags),
            "time": cursor.time,
            "payload": event.to_json().decode(),
        }
        # Sorted: concurrent fan-outs lock feeds in the same order, so they never deadlock.
        rows = [{"username": username, **fields} for username in sorted(set(usernames))]
        if not rows:
            return
        async with self._engine.begin() as conn:
            inserted = await conn.execute(
                self._insert(news_items)
                .on_conflict_do_nothing(index_elements=["username", "event_id"])
                .returning(news_items.c.username),
                rows,
            )
            # A redelivered event inserted nothing: no feed grows, nothing is trimmed.
            if grown := sorted(inserted.scalars()):
                await self._count_and_trim(conn, grown, cap)

    async def _count_and_trim(
        self, conn: AsyncConnection, usernames: Sequence[str], cap: int
    ) -> None:
        upsert = self._insert(news_feeds)
        sizes = await conn.execute(
            upsert.on_conflict_do_update(
                index_elements=["username"], set_={"size": news_feeds.c.size + 1}
            ).returning(news_feeds.c.username, news_feeds.c.size),
            [{"username": username, "size": 1} for username in usernames],
        )
        # The counter is exact (rows and counter only ever change together, here), so the
        # excess is known without counting and every full feed is trimmed in one batch.
        full = {username: size - cap for username, size in sizes if size > cap}
        if full:
            await conn.execute(
                _DROP_OLDEST, [{"feed": feed, "excess": excess} for feed, excess in full.items()]
            )
            await conn.execute(
                update(news_feeds).where(news_feeds.c.username.in_(full)).values(size=cap)
            )

    async def page(self, username: str, after: NewsCursor | None, limit: int) -> list[FeedItem]:
        query = select(news_items.c.time, news_items.c.event_id, news_items.c.payload).where(
            news_items.c.username == username
        )
        if after is not None:
            query = query.where(
                or_(
                    news_items.c.time < after.time,
                    and_(news_items.c.time == after.time, news_items.c.event_id < after.event_id),
                )
            )
        query = query.order_by(news_items.c.time.desc(), news_items.c.event_id.desc()).limit(limit)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_item(row) for row in rows]


def _item(row: Any) -> FeedItem:
    return FeedItem(NewsCursor(_utc(row.time), row.event_id), Event.from_json(row.payload))
