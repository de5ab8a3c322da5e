"""``SqlLinkStore``: the links port on SQLAlchemy Core (SQLite or PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from sqlalchemy import Select, and_, bindparam, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from delinkcious.links.store import Cursor, StoredLink
from delinkcious.links.tables import link_owners, link_tags, links, outbox, processed_events
from delinkcious.model.errors import AlreadyExists, LimitExceeded
from delinkcious.model.events import Event
from delinkcious.model.links import Link, LinkStatus
from delinkcious.platform.sql_outbox import enqueue
from delinkcious.platform.sqlite_reader import SqliteReader

_PAGE_COLUMNS = (
    links.c.id,
    links.c.url,
    links.c.title,
    links.c.description,
    links.c.tags,
    links.c.status,
    links.c.created_at,
    links.c.updated_at,
)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def url_hash(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


def _utc(value: dt.datetime) -> dt.datetime:
    # SQLite hands datetimes back naive; every value we store is UTC.
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _to_link(row: Any) -> Link:
    return Link(
        url=row.url,
        title=row.title,
        description=row.description,
        tags=frozenset(row.tags),
        status=LinkStatus(row.status),
        created_at=_utc(row.created_at),
        updated_at=_utc(row.updated_at),
    )


def _row_values(link: Link) -> dict[str, Any]:
    return {
        "title": link.title,
        "description": link.description,
        "tags": sorted(link.tags),
        "status": link.status.value,
        "updated_at": link.updated_at,
    }


class SqlLinkStore:
    """Writes each change and its event (to the outbox) in one transaction.

    ``on_event`` runs after such a commit, to wake the outbox relay at once.
    """

    def __init__(self, engine: AsyncEngine, on_event: Callable[[], None] = lambda: None) -> None:
        self._engine = engine
        self._on_event = on_event
        database = engine.url.database
        self._reader = (
            SqliteReader(database)
            if engine.dialect.name == "sqlite" and database and database != ":memory:"
            else None
        )

    async def insert(self, username: str, link: Link, max_links: int, event: Event) -> None:
        async with self._engine.begin() as conn:
            if not await self._take_slot(conn, username, max_links):
                raise LimitExceeded(
                    f"a user can keep at most {max_links} links", code="link_limit_reached"
                )
            try:
                result = await conn.execute(
                    insert(links).values(
                        username=username,
                        url=link.url,
                        url_hash=url_hash(link.url),
                        created_at=link.created_at,
                        **_row_values(link),
                    )
                )
            except IntegrityError:
                raise AlreadyExists(
                    f"a link with url {link.url!r} is already saved", code="link_exists"
                ) from None
            primary_key = result.inserted_primary_key
            assert primary_key is not None  # a single-row insert always has one
            link_id = primary_key[0]
            await self._write_tags(conn, username, link_id, link.tags)
            await enqueue(conn, outbox, event)
        self._on_event()

    async def _take_slot(self, conn: AsyncConnection, username: str, max_links: int) -> bool:
        """Count the new link against the cap atomically: two racing adds cannot both pass.

        The conditional UPDATE decides. When it changes nothing, the user's row is missing
        or full: INSERT it; a unique violation means a concurrent first add created it
        (PostgreSQL raises it only once that add committed), so the UPDATE, tried again,
        now sees the row and its answer is final. (A SELECT in between would be wrong: the
        row can commit after the UPDATE and before the SELECT, a false "limit reached".)
        """
        if max_links < 1:
            return False
        for _ in range(2):
            taken = await conn.execute(
                update(link_owners)
                .where(link_owners.c.username == username, link_owners.c.link_count < max_links)
                .values(link_count=link_owners.c.link_count + 1)
            )
            if taken.rowcount:
                return True
            try:
                async with conn.begin_nested():
                    await conn.execute(insert(link_owners).values(username=username, link_count=1))
            except IntegrityError:
                continue
            return True
        return False

    @staticmethod
    async def _write_tags(
        conn: AsyncConnection, username: str, link_id: int, tags: Sequence[str] | frozenset[str]
    ) -> None:
        if tags:
            await conn.execute(
                insert(link_tags),
                [{"link_id": link_id, "tag": tag, "username": username} for tag in tags],
            )

    async def get(self, username: str, url: str) -> Link | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(*_PAGE_COLUMNS).where(
                        links.c.username == username, links.c.url_hash == url_hash(url)
                    )
                )
            ).first()
        return _to_link(row) if row is not None else None

    async def replace(
        self, username: str, expected_updated_at: dt.datetime, link: Link, event: Event
    ) -> bool:
        async with self._engine.begin() as conn:
            link_id = await conn.scalar(
                update(links)
                .where(
                    links.c.username == username,
                    links.c.url_hash == url_hash(link.url),
                    links.c.updated_at == expected_updated_at,
                )
                .values(**_row_values(link))
                .returning(links.c.id)
            )
            if link_id is None:
                return False
            await conn.execute(delete(link_tags).where(link_tags.c.link_id == link_id))
            await self._write_tags(conn, username, link_id, link.tags)
            await enqueue(conn, outbox, event)
        self._on_event()
        return True

    async def delete(self, username: str, url: str, event: Event) -> bool:
        async with self._engine.begin() as conn:
            link_id = await conn.scalar(
                delete(links)
                .where(links.c.username == username, links.c.url_hash == url_hash(url))
                .returning(links.c.id)
            )
            if link_id is None:
                return False
            await conn.execute(
                update(link_owners)
                .where(link_owners.c.username == username)
                .values(link_count=link_owners.c.link_count - 1)
            )
            await enqueue(conn, outbox, event)
        self._on_event()
        return True

    async def set_status(
        self, username: str, url: str, status: LinkStatus, consumer: str, event_id: str
    ) -> bool:
        async with self._engine.begin() as conn:
            try:
                async with conn.begin_nested():
                    await conn.execute(
                        insert(processed_events).values(
                            consumer=consumer, event_id=event_id, processed_at=_now()
                        )
                    )
            except IntegrityError:  # a redelivery of an event already applied
                return False
            result = await conn.execute(
                update(links)
                .where(links.c.username == username, links.c.url_hash == url_hash(url))
                .values(status=status.value)
            )
            return bool(result.rowcount)

    async def page(
        self, username: str, tag: str | None, after: Cursor | None, limit: int
    ) -> list[StoredLink]:
        query = _page_query(tag is not None, after is not None)
        params: dict[str, Any] = {"username": username, "tag": tag, "limit": limit}
        if self._reader is not None:
            if after is not None:
                params["after_time"] = _sqlite_time(after.created_at)
                params["after_id"] = after.id
            rows = self._reader.fetch(query, query, params)
            return [_stored_from_sqlite(row) for row in rows]
        if after is not None:
            params["after_time"] = after.created_at
            params["after_id"] = after.id
        async with self._engine.connect() as conn:
            result = await conn.execute(query, params)
            rows = result.all()
        return [
            StoredLink(cursor=Cursor(_utc(row.created_at), row.id), link=_to_link(row))
            for row in rows
        ]

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()


@functools.cache
def _page_query(with_tag: bool, with_after: bool) -> Select[Any]:
    """The page query, built once per shape; values are bound at execution."""
    query = select(*_PAGE_COLUMNS).where(links.c.username == bindparam("username"))
    if with_tag:
        query = query.where(
            links.c.id.in_(
                select(link_tags.c.link_id).where(
                    link_tags.c.username == bindparam("username"),
                    link_tags.c.tag == bindparam("tag"),
                )
            )
        )
    if with_after:
        after_time = bindparam("after_time", type_=links.c.created_at.type)
        query = query.where(
            or_(
                links.c.created_at < after_time,
                and_(links.c.created_at == after_time, links.c.id < bindparam("after_id")),
            )
        )
    return query.order_by(links.c.created_at.desc(), links.c.id.desc()).limit(bindparam("limit"))


_STATUSES = {status.value: status for status in LinkStatus}


def _sqlite_time(value: dt.datetime) -> str:
    """The text SQLAlchemy stores for a UTC datetime in SQLite."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _stored_from_sqlite(row: tuple[Any, ...]) -> StoredLink:
    link_id, url, title, description, tags, status, created_at, updated_at = row
    created = dt.datetime.fromisoformat(created_at + "+00:00")
    link = Link(
        url=url,
        title=title,
        description=description,
        tags=frozenset(orjson.loads(tags)),
        status=_STATUSES[status],
        created_at=created,
        updated_at=dt.datetime.fromisoformat(updated_at + "+00:00"),
    )
    return StoredLink(cursor=Cursor(created, link_id), link=link)
