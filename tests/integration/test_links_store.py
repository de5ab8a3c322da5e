"""Contract of SqlLinkStore (and LinkService on top of it) on real SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Awaitable, Callable, Iterable
from typing import TypedDict, Unpack

import pytest
from sqlalchemy import Table, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from delinkcious.links.manager import LinkService
from delinkcious.links.paging import PageTokens
from delinkcious.links.sql_store import SqlLinkStore
from delinkcious.links.store import Cursor
from delinkcious.links.tables import link_owners, link_tags, links
from delinkcious.model import (
    AddLinkRequest,
    AlreadyExists,
    GetLinksRequest,
    InvalidArgument,
    LimitExceeded,
    Link,
    LinkFilter,
    LinkStatus,
    NotFound,
    UpdateLinkRequest,
)
from delinkcious.model.events import Event, EventType
from delinkcious.platform.db import create_engine
from delinkcious.platform.migrations import upgrade
from tests.support.postgres import fresh_databases

USER = "alice"
T0 = dt.datetime(2026, 2, 3, 4, 5, 6, 789012, tzinfo=dt.UTC)


def _event(kind: EventType) -> Event:
    return Event(type=kind, author=USER, url="https://example.com/")


def added() -> Event:
    return _event(EventType.LINK_ADDED)


def updated() -> Event:
    return _event(EventType.LINK_UPDATED)


def deleted() -> Event:
    return _event(EventType.LINK_DELETED)


class LinkChanges(TypedDict, total=False):
    """``Link`` fields a test may set (passed to ``dataclasses.replace``)."""

    url: str
    title: str
    description: str
    status: LinkStatus
    created_at: dt.datetime
    updated_at: dt.datetime


def make_link(
    n: int | str,
    *,
    at: dt.datetime = T0,
    tags: Iterable[str] = (),
    **changes: Unpack[LinkChanges],
) -> Link:
    link = Link(
        url=f"https://example.com/{n}",
        title=f"link {n}",
        description=f"about {n}",
        tags=frozenset(tags),
        status=LinkStatus.PENDING,
        created_at=at,
        updated_at=at,
    )
    return dataclasses.replace(link, **changes)


async def get_link(store: SqlLinkStore, url: str, username: str = USER) -> Link:
    """The stored link the test expects to exist."""
    link = await store.get(username, url)
    assert link is not None
    return link


@pytest.fixture
def store(links_engine: AsyncEngine) -> SqlLinkStore:
    return SqlLinkStore(links_engine)


@pytest.fixture
def service(store: SqlLinkStore) -> LinkService:
    return LinkService(
        store,
        PageTokens(b"integration-secret-0123456789abcdef"),
        max_links_per_user=1000,
        clock=lambda: T0,  # every link gets the same created_at: paging must still be exact
    )


async def count(engine: AsyncEngine, table: Table, **where: object) -> int:
    query = select(func.count()).select_from(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    async with engine.connect() as conn:
        rows = await conn.scalar(query)
    assert rows is not None
    return rows


async def all_pages(
    service: LinkService,
    limit: int,
    link_filter: LinkFilter | None = None,
    between: Callable[[], Awaitable[None]] | None = None,
) -> list[str]:
    seen: list[str] = []
    token = None
    while True:
        result = await service.get_links(
            GetLinksRequest(
                username=USER, filter=link_filter or LinkFilter(), start_token=token, limit=limit
            )
        )
        seen.extend(link.url for link in result.links)
        token = result.next_page_token
        if token is None:
            return seen
        if between is not None:
            await between()


# -- the store -----------------------------------------------------------------------------


async def test_insert_get_roundtrip(store: SqlLinkStore) -> None:
    link = make_link(
        1,
        tags={"python", "db", "ünïcode ✓"},
        description="d" * 8192,
        title="t" * 512,
        url="https://example.com/" + "u" * 2028,
    )
    await store.insert(USER, link, max_links=10, event=added())
    assert await store.get(USER, link.url) == link
    assert await store.get("bob", link.url) is None
    assert await store.get(USER, "https://example.com/other") is None


async def test_tags_are_loaded_from_the_database_by_a_new_engine(
    service: LinkService, links_url: str
) -> None:
    """The Go original never loaded tags back: read them through a fresh engine and store."""
    added = await service.add_link(
        AddLinkRequest(
            username=USER,
            url="https://example.com/tagged",
            title="tagged",
            tags=frozenset({"python", "databases", "x" * 64}),
        )
    )
    await service.add_link(
        AddLinkRequest(username=USER, url="https://example.com/untagged", title="untagged")
    )
    engine = create_engine(links_url)
    try:
        fresh_store = SqlLinkStore(engine)
        fresh = LinkService(fresh_store, PageTokens(b"another-secret-0123456789abcdef"))
        assert (await get_link(fresh_store, added.url)).tags == added.tags
        page = await fresh.get_links(GetLinksRequest(username=USER))
        assert {link.url: link.tags for link in page.links} == {
            "https://example.com/tagged": added.tags,
            "https://example.com/untagged": frozenset(),
        }
        tagged = await fresh.get_links(
            GetLinksRequest(username=USER, filter=LinkFilter(tag="databases"))
        )
        assert [link for link in tagged.links] == [added]
        updated = await fresh.update_link(
            UpdateLinkRequest(
                username=USER,
                url=added.url,
                add_tags=frozenset({"new"}),
                remove_tags=frozenset({"python"}),
            )
        )
        assert (await get_link(fresh_store, added.url)).tags == updated.tags
        assert updated.tags == {"databases", "new", "x" * 64}
    finally:
        await engine.dispose()


async def test_timestamps_roundtrip_to_the_microsecond_in_utc(store: SqlLinkStore) -> None:
    at = dt.datetime(2026, 7, 8, 9, 10, 11, 123456, tzinfo=dt.UTC)
    await store.insert(USER, make_link(1, at=at), max_links=10, event=added())
    link = await get_link(store, "https://example.com/1")
    assert link.created_at == at
    assert link.created_at.utcoffset() == dt.timedelta(0)
    [stored] = await store.page(USER, None, None, 10)
    assert stored.cursor.created_at == at


async def test_unique_user_and_url_is_already_exists(
    store: SqlLinkStore, links_engine: AsyncEngine
) -> None:
    await store.insert(USER, make_link(1, tags={"a"}), max_links=10, event=added())
    with pytest.raises(AlreadyExists):
        await store.insert(
            USER, make_link(1, title="again", tags={"b"}), max_links=10, event=added()
        )
    assert (await get_link(store, "https://example.com/1")).title == "link 1"
    await store.insert("bob", make_link(1), max_links=10, event=added())  # another user may save it
    assert await count(links_engine, links) == 2
    assert await count(links_engine, link_tags) == 1
    # The failed insert did not use up a slot of the cap.
    assert await count(links_engine, link_owners) == 2
    async with links_engine.connect() as conn:
        assert (
            await conn.scalar(
                select(link_owners.c.link_count).where(link_owners.c.username == USER)
            )
            == 1
        )


async def test_unique_url_holds_for_long_urls(store: SqlLinkStore) -> None:
    long_url = "https://example.com/" + "x" * 2028
    await store.insert(USER, make_link(1, url=long_url), max_links=10, event=added())
    with pytest.raises(AlreadyExists):
        await store.insert(USER, make_link(2, url=long_url), max_links=10, event=added())
    await store.insert(USER, make_link(3, url=long_url[:-1] + "y"), max_links=10, event=added())


async def test_cap_is_enforced_and_delete_frees_a_slot(store: SqlLinkStore) -> None:
    for n in range(3):
        await store.insert(USER, make_link(n), max_links=3, event=added())
    with pytest.raises(LimitExceeded):
        await store.insert(USER, make_link(3), max_links=3, event=added())
    assert await store.get(USER, "https://example.com/3") is None
    await store.insert("bob", make_link(3), max_links=3, event=added())  # per user
    assert await store.delete(USER, "https://example.com/0", deleted())
    await store.insert(USER, make_link(3), max_links=3, event=added())
    with pytest.raises(LimitExceeded):
        await store.insert(USER, make_link(4), max_links=3, event=added())
    with pytest.raises(LimitExceeded):
        await store.insert("carol", make_link(0), max_links=0, event=added())


@pytest.mark.parametrize("existing", [0, 2])
async def test_cap_is_atomic_under_concurrent_adds(
    store: SqlLinkStore, links_engine: AsyncEngine, existing: int
) -> None:
    cap = 5
    for n in range(existing):
        await store.insert(USER, make_link(f"old{n}"), max_links=cap, event=added())

    async def attempt(n: int) -> bool:
        try:
            await store.insert(
                USER, make_link(n, tags={"t", f"n{n}"}), max_links=cap, event=added()
            )
        except LimitExceeded:
            return False
        return True

    outcomes = await asyncio.gather(*(attempt(n) for n in range(20)))
    assert sum(outcomes) == cap - existing
    assert await count(links_engine, links, username=USER) == cap
    async with links_engine.connect() as conn:
        assert (
            await conn.scalar(
                select(link_owners.c.link_count).where(link_owners.c.username == USER)
            )
            == cap
        )
    # Only the links that made it have tags.
    assert await count(links_engine, link_tags, tag="t") == cap - existing


async def test_replace_is_optimistic_on_updated_at(store: SqlLinkStore) -> None:
    original = make_link(1, tags={"a", "b"})
    await store.insert(USER, original, max_links=10, event=added())
    later = T0 + dt.timedelta(microseconds=1)
    changed = dataclasses.replace(
        original,
        title="changed",
        tags=frozenset({"b", "c"}),
        status=LinkStatus.VALID,
        updated_at=later,
    )
    assert await store.replace(USER, original.updated_at, changed, updated())
    assert await store.get(USER, original.url) == changed
    # A writer that read the old version loses.
    stale = dataclasses.replace(original, title="stale", updated_at=later)
    assert not await store.replace(USER, original.updated_at, stale, updated())
    assert await store.get(USER, original.url) == changed
    assert not await store.replace("bob", later, changed, updated())
    assert not await store.replace(USER, later, make_link(2), updated())
    assert [row.link for row in await store.page(USER, "c", None, 10)] == [changed]
    assert await store.page(USER, "a", None, 10) == []


async def test_delete_cascades_to_tags(store: SqlLinkStore, links_engine: AsyncEngine) -> None:
    await store.insert(USER, make_link(1, tags={"a", "b", "c"}), max_links=10, event=added())
    await store.insert(USER, make_link(2, tags={"a"}), max_links=10, event=added())
    async with links_engine.connect() as conn:
        link_id = await conn.scalar(
            select(links.c.id).where(links.c.url == "https://example.com/1")
        )
    assert await count(links_engine, link_tags, link_id=link_id) == 3
    assert await store.delete(USER, "https://example.com/1", deleted())
    assert await count(links_engine, link_tags, link_id=link_id) == 0
    assert await count(links_engine, link_tags) == 1
    assert [row.link.url for row in await store.page(USER, "a", None, 10)] == [
        "https://example.com/2"
    ]
    assert not await store.delete(USER, "https://example.com/1", deleted())
    assert not await store.delete("bob", "https://example.com/2", deleted())


async def test_database_enforces_the_cascade_itself(
    store: SqlLinkStore, links_engine: AsyncEngine
) -> None:
    """Even a delete that bypasses the store leaves no orphan tags (foreign keys are on)."""
    await store.insert(USER, make_link(1, tags={"a", "b"}), max_links=10, event=added())
    async with links_engine.begin() as conn:
        await conn.execute(links.delete())
    assert await count(links_engine, link_tags) == 0


async def test_page_orders_newest_first_by_time_then_id(store: SqlLinkStore) -> None:
    times = [T0, T0 + dt.timedelta(microseconds=1), T0, T0 - dt.timedelta(days=1), T0]
    for n, at in enumerate(times):
        await store.insert(USER, make_link(n, at=at), max_links=10, event=added())
    rows = await store.page(USER, None, None, 10)
    assert [row.link.url[-1] for row in rows] == ["1", "4", "2", "0", "3"]
    cursors = [row.cursor for row in rows]
    assert cursors == sorted(cursors, reverse=True)
    # Keyset: strictly after a cursor, however many rows share its created_at.
    after = await store.page(USER, None, cursors[1], 10)
    assert [row.link.url[-1] for row in after] == ["2", "0", "3"]
    assert await store.page(USER, None, cursors[-1], 10) == []
    assert len(await store.page(USER, None, None, 2)) == 2
    assert [row.link.url[-1] for row in await store.page(USER, None, cursors[0], 2)] == [
        "4",
        "2",
    ]
    assert await store.page("bob", None, None, 10) == []


async def test_page_cursor_from_before_a_timestamp(store: SqlLinkStore) -> None:
    for n in range(3):
        await store.insert(
            USER, make_link(n, at=T0 + dt.timedelta(seconds=n)), max_links=10, event=added()
        )
    cursor = Cursor(T0 + dt.timedelta(seconds=1, microseconds=1), 0)
    assert [row.link.url[-1] for row in await store.page(USER, None, cursor, 10)] == ["1", "0"]


async def test_tag_filter_is_exact_and_per_user(store: SqlLinkStore) -> None:
    await store.insert(USER, make_link(1, tags={"python"}), max_links=10, event=added())
    await store.insert(USER, make_link(2, tags={"py", "python"}), max_links=10, event=added())
    await store.insert(USER, make_link(3, tags={"Python"}), max_links=10, event=added())
    await store.insert("bob", make_link(4, tags={"python"}), max_links=10, event=added())

    async def tagged(tag: str, username: str = USER) -> list[str]:
        return [row.link.url[-1] for row in await store.page(username, tag, None, 10)]

    assert await tagged("python") == ["2", "1"]
    assert await tagged("py") == ["2"]
    assert await tagged("Python") == ["3"]
    assert await tagged("pyth") == []
    assert await tagged("python", "bob") == ["4"]


# -- LinkService on the store ---------------------------------------------------------------


async def test_service_add_update_delete(service: LinkService, store: SqlLinkStore) -> None:
    added = await service.add_link(
        AddLinkRequest(username=USER, url="https://example.com/a", title="A", tags=frozenset({"x"}))
    )
    with pytest.raises(AlreadyExists):
        await service.add_link(
            AddLinkRequest(username=USER, url="https://example.com/a", title="again")
        )
    updated = await service.update_link(
        UpdateLinkRequest(
            username=USER,
            url=added.url,
            title="B",
            description="desc",
            add_tags=frozenset({"y"}),
            remove_tags=frozenset({"x"}),
        )
    )
    assert await store.get(USER, added.url) == updated
    assert updated.tags == {"y"}
    assert updated.updated_at > added.updated_at
    assert updated.created_at == added.created_at
    await service.delete_link(USER, added.url)
    with pytest.raises(NotFound):
        await service.delete_link(USER, added.url)
    with pytest.raises(NotFound):
        await service.update_link(UpdateLinkRequest(username=USER, url=added.url, title="C"))


async def test_concurrent_tag_edits_do_not_lose_each_other(
    service: LinkService, store: SqlLinkStore
) -> None:
    url = "https://example.com/shared"
    await service.add_link(
        AddLinkRequest(username=USER, url=url, title="shared", tags=frozenset({"base", "gone"}))
    )
    # Five writers (the manager retries five times, so each is guaranteed to land).
    edits = [
        UpdateLinkRequest(username=USER, url=url, add_tags=frozenset({f"tag{n}"})) for n in range(4)
    ] + [UpdateLinkRequest(username=USER, url=url, remove_tags=frozenset({"gone"}))]
    await asyncio.gather(*(service.update_link(edit) for edit in edits))
    expected = {"base", "tag0", "tag1", "tag2", "tag3"}
    assert (await get_link(store, url)).tags == expected
    assert [row.link.url for row in await store.page(USER, "tag3", None, 10)] == [url]
    assert await store.page(USER, "gone", None, 10) == []


async def test_concurrent_edits_of_many_links(service: LinkService, store: SqlLinkStore) -> None:
    for n in range(6):
        await service.add_link(
            AddLinkRequest(username=USER, url=f"https://example.com/{n}", title=f"{n}")
        )
    edits = [
        UpdateLinkRequest(
            username=USER, url=f"https://example.com/{n}", add_tags=frozenset({f"t{k}"})
        )
        for n in range(6)
        for k in range(3)
    ]
    await asyncio.gather(*(service.update_link(edit) for edit in edits))
    for n in range(6):
        assert (await get_link(store, f"https://example.com/{n}")).tags == {"t0", "t1", "t2"}


async def test_service_cap_under_concurrency(store: SqlLinkStore) -> None:
    service = LinkService(
        store, PageTokens(b"integration-secret-0123456789abcdef"), max_links_per_user=7
    )
    results = await asyncio.gather(
        *(
            service.add_link(
                AddLinkRequest(username="dora", url=f"https://example.com/{n}", title="t")
            )
            for n in range(25)
        ),
        return_exceptions=True,
    )
    assert sum(isinstance(result, Link) for result in results) == 7
    assert all(isinstance(result, (Link, LimitExceeded)) for result in results)
    page = await service.get_links(GetLinksRequest(username="dora", limit=100))
    assert len(page.links) == 7


async def test_paging_under_inserts_with_equal_timestamps(service: LinkService) -> None:
    for n in range(12):
        await service.add_link(
            AddLinkRequest(username=USER, url=f"https://example.com/{n}", title=f"{n}")
        )
    extra = iter(range(100, 1000))

    async def insert_more() -> None:
        await asyncio.gather(
            *(
                service.add_link(
                    AddLinkRequest(
                        username=USER, url=f"https://example.com/{next(extra)}", title="new"
                    )
                )
                for _ in range(3)
            )
        )

    seen = await all_pages(service, limit=5, between=insert_more)
    assert seen == [f"https://example.com/{n}" for n in reversed(range(12))]


async def test_paging_while_writers_run_concurrently(service: LinkService) -> None:
    for n in range(30):
        await service.add_link(
            AddLinkRequest(username=USER, url=f"https://example.com/{n}", title=f"{n}")
        )
    before = [f"https://example.com/{n}" for n in reversed(range(30))]

    async def writer(start: int) -> None:
        for n in range(start, start + 10):
            await service.add_link(
                AddLinkRequest(username=USER, url=f"https://example.com/{n}", title="w")
            )
            await asyncio.sleep(0)

    async def reader() -> list[str]:
        return await all_pages(service, limit=4, between=lambda: asyncio.sleep(0))

    seen, *_ = await asyncio.gather(reader(), writer(1000), writer(2000))
    assert len(seen) == len(set(seen)), "a row was repeated"
    assert seen == before


async def test_filtered_paging_on_the_database(service: LinkService) -> None:
    for n in range(40):
        await service.add_link(
            AddLinkRequest(
                username=USER,
                url=f"https://example.com/{n}",
                title=f"title {n}",
                description="even" if n % 2 == 0 else "odd",
                tags=frozenset({"three"} if n % 3 == 0 else {"other"}),
            )
        )
    extra = iter(range(100, 1000, 3))

    async def insert_more() -> None:
        n = next(extra)
        await service.add_link(
            AddLinkRequest(
                username=USER,
                url=f"https://example.com/{n}",
                title=f"title {n}",
                description="even",
                tags=frozenset({"three"}),
            )
        )

    seen = await all_pages(
        service,
        limit=3,
        link_filter=LinkFilter(tag="three", description_regex="^even$", url_regex=r"/\d+$"),
        between=insert_more,
    )
    assert seen == [f"https://example.com/{n}" for n in reversed(range(40)) if n % 6 == 0]


async def test_a_page_token_is_bound_to_its_user_and_query(service: LinkService) -> None:
    for n in range(4):
        await service.add_link(
            AddLinkRequest(username=USER, url=f"https://example.com/{n}", title=f"{n}")
        )
    first = await service.get_links(GetLinksRequest(username=USER, limit=2))
    assert first.next_page_token is not None
    with pytest.raises(InvalidArgument):
        await service.get_links(
            GetLinksRequest(username="bob", start_token=first.next_page_token, limit=2)
        )
    with pytest.raises(InvalidArgument):
        await service.get_links(
            GetLinksRequest(
                username=USER,
                filter=LinkFilter(tag="x"),
                start_token=first.next_page_token,
                limit=2,
            )
        )
    second = await service.get_links(
        GetLinksRequest(username=USER, start_token=first.next_page_token, limit=2)
    )
    assert [link.url for link in second.links] == [
        "https://example.com/1",
        "https://example.com/0",
    ]
    assert second.next_page_token is None


# -- migrations ------------------------------------------------------------------------------


async def test_migrations_are_idempotent(
    store: SqlLinkStore, links_engine: AsyncEngine, head_revisions: dict[str, str]
) -> None:
    await store.insert(USER, make_link(1, tags={"kept"}), max_links=10, event=added())
    await upgrade(links_engine, "delinkcious.links")  # the session already ran it once
    await upgrade(links_engine, "delinkcious.links")
    async with links_engine.connect() as conn:
        versions = (
            (await conn.execute(text("SELECT version_num FROM links_alembic_version")))
            .scalars()
            .all()
        )
    assert versions == [head_revisions["links"]]
    assert (await get_link(store, "https://example.com/1")).tags == {"kept"}


async def test_migrations_build_a_fresh_database(
    fresh_database_url: str, head_revisions: dict[str, str]
) -> None:
    """upgrade() on an empty database creates everything the store needs; twice is harmless."""
    engine = create_engine(fresh_database_url)
    try:
        await upgrade(engine, "delinkcious.links")
        await upgrade(engine, "delinkcious.links")
        fresh = SqlLinkStore(engine)
        await fresh.insert("zed", make_link(1, tags={"a"}), max_links=1, event=added())
        assert (await get_link(fresh, "https://example.com/1", "zed")).tags == {"a"}
        with pytest.raises(LimitExceeded):
            await fresh.insert("zed", make_link(2), max_links=1, event=added())
        async with engine.connect() as conn:
            versions = (
                (await conn.execute(text("SELECT version_num FROM links_alembic_version")))
                .scalars()
                .all()
            )
        assert versions == [head_revisions["links"]]
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_replicas_starting_together_migrate_one_at_a_time(
    head_revisions: dict[str, str],
) -> None:
    """Several replicas of a new release on PostgreSQL run their migrations at one moment
    (the embedded shape has one process per SQLite file, so only PostgreSQL meets this)."""
    async with fresh_databases(["replicas"]) as urls:
        engines = [create_engine(urls["replicas"]) for _ in range(4)]
        try:
            await asyncio.gather(*(upgrade(engine, "delinkcious.links") for engine in engines))
            async with engines[0].connect() as conn:
                versions = (
                    (await conn.execute(text("SELECT version_num FROM links_alembic_version")))
                    .scalars()
                    .all()
                )
            assert versions == [head_revisions["links"]]
        finally:
            for engine in engines:
                await engine.dispose()
