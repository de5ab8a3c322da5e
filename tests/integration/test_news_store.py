"""The ``NewsStore`` contract on real Redis, SQLite and PostgreSQL, and the news service on top.

Every contract test runs three times: on Redis (``DELINKCIOUS_TEST_REDIS_URL``, default the
local server; keys under a prefix unique to this run, deleted after each test), on a SQLite
file, and on a fresh PostgreSQL database created for this run and dropped at the end
(``DELINKCIOUS_TEST_POSTGRES_URL``). An unreachable server is a failure, never a skip.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from delinkcious.model.events import Event, EventType
from delinkcious.model.news import GetNewsRequest
from delinkcious.news.manager import NewsConsumer, NewsService
from delinkcious.news.redis_store import RedisNewsStore
from delinkcious.news.sql_store import SqlNewsStore
from delinkcious.news.store import FeedItem, NewsCursor, NewsStore, cursor_of
from delinkcious.news.tables import news_feeds, news_items
from delinkcious.platform.db import create_engine
from delinkcious.platform.migrations import upgrade
from delinkcious.platform.page_tokens import SignedTokens
from tests.fakes import FakeSocialGraph
from tests.support.postgres import fresh_databases

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
BACKENDS = ["redis", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]

T0 = dt.datetime(2026, 2, 3, 4, 5, 6, 789012, tzinfo=dt.UTC)
USER = "alice"


class EventChanges(TypedDict, total=False):
    """``Event`` fields a test may set (passed to ``dataclasses.replace``)."""

    type: EventType
    author: str
    url: str
    title: str
    tags: tuple[str, ...]
    id: str
    time: dt.datetime
    trace: dict[str, str]
    data: dict[str, Any]


def event(
    n: int,
    *,
    at: dt.datetime | None = None,
    event_id: str | None = None,
    **changes: Unpack[EventChanges],
) -> Event:
    made = Event(
        type=EventType.LINK_ADDED,
        author="bob",
        url=f"https://example.com/{n}",
        title=f"link {n}",
        tags=("news",),
        id=event_id or f"{n:08d}",
        time=at or T0 + dt.timedelta(seconds=n),
    )
    return dataclasses.replace(made, **changes)


# -- servers --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
async def news_redis() -> AsyncIterator[Redis]:
    url = os.environ.get("DELINKCIOUS_TEST_REDIS_URL") or DEFAULT_REDIS_URL
    client = Redis.from_url(url, socket_connect_timeout=5)
    problem: str | None = None
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        problem = f"{type(exc).__name__}: {exc}"
    if problem is not None:
        await client.aclose()
        where = client.connection_pool.connection_kwargs
        pytest.fail(
            f"Redis at {where.get('host')}:{where.get('port')} is not reachable ({problem}): "
            "run `make test`, which starts it, or point DELINKCIOUS_TEST_REDIS_URL at a server",
            pytrace=False,
        )
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def redis_prefix() -> str:
    return f"delinkcious-test:{os.getpid()}:{secrets.token_hex(4)}:"


@pytest.fixture(scope="session")
async def news_postgres_engine() -> AsyncIterator[AsyncEngine]:
    async with fresh_databases(["news"]) as urls:
        engine = create_engine(urls["news"])
        try:
            await upgrade(engine, "delinkcious.news")
            yield engine
        finally:
            await engine.dispose()


@pytest.fixture(scope="session")
async def news_sqlite_engine(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite:///{tmp_path_factory.mktemp('news') / 'news.db'}")
    await upgrade(engine, "delinkcious.news")
    yield engine
    await engine.dispose()


# -- the store under test -------------------------------------------------------------------


@dataclass
class Feeds:
    store: NewsStore
    # How many events the backend really holds for a user; it checks that the ordering
    # structure and the payloads (or the size counter) agree, so a trim leaves no orphans.
    stored: Callable[[str], Awaitable[int]]


def _redis_feeds(client: Redis, prefix: str) -> Feeds:
    async def stored(username: str) -> int:
        ids = await client.zcard(f"{prefix}{username}:feed")
        assert await client.hlen(f"{prefix}{username}:events") == ids
        return ids

    return Feeds(RedisNewsStore(client, key_prefix=prefix), stored)


async def _sql_feeds(engine: AsyncEngine) -> Feeds:
    async with engine.begin() as conn:
        await conn.execute(delete(news_items))
        await conn.execute(delete(news_feeds))

    async def stored(username: str) -> int:
        async with engine.connect() as conn:
            rows = await conn.scalar(select(func.count()).where(news_items.c.username == username))
            size = await conn.scalar(
                select(news_feeds.c.size).where(news_feeds.c.username == username)
            )
        assert rows is not None
        assert (size or 0) == rows
        return rows

    return Feeds(SqlNewsStore(engine), stored)


@pytest.fixture
async def redis_feeds(news_redis: Redis, redis_prefix: str) -> AsyncIterator[Feeds]:
    try:
        yield _redis_feeds(news_redis, redis_prefix)
    finally:
        keys = [key async for key in news_redis.scan_iter(match=f"{redis_prefix}*", count=1000)]
        if keys:
            await news_redis.delete(*keys)


@pytest.fixture
async def sqlite_feeds(news_sqlite_engine: AsyncEngine) -> Feeds:
    return await _sql_feeds(news_sqlite_engine)


@pytest.fixture
async def postgres_feeds(news_postgres_engine: AsyncEngine) -> Feeds:
    return await _sql_feeds(news_postgres_engine)


@pytest.fixture(params=BACKENDS)
def feeds(request: pytest.FixtureRequest) -> Feeds:
    """The store on each backend in turn; only the servers a test runs on are set up."""
    feeds: Feeds = request.getfixturevalue(f"{request.param}_feeds")
    return feeds


async def whole_feed(store: NewsStore, username: str = USER, limit: int = 1000) -> list[FeedItem]:
    return await store.page(username, None, limit)


async def all_pages(
    store: NewsStore, limit: int, between: Callable[[], Awaitable[None]] | None = None
) -> list[FeedItem]:
    """Walks the feed page by page; ``between()`` runs after every non-empty page."""
    seen: list[FeedItem] = []
    after: NewsCursor | None = None
    while page := await store.page(USER, after, limit):
        seen.extend(page)
        after = page[-1].cursor
        if between is not None:
            await between()
    return seen


def ids(items: list[FeedItem]) -> list[str]:
    return [item.event.id for item in items]


# -- the contract ---------------------------------------------------------------------------


async def test_an_event_comes_back_whole_in_every_follower_feed(feeds: Feeds) -> None:
    original = event(
        1,
        type=EventType.LINK_DELETED,
        title="ünïcode ✓ " + "t" * 500,
        url="https://example.com/" + "u" * 2000,
        tags=("b", "a", "ü"),
        time=dt.datetime(2026, 2, 3, 6, 5, 6, 789012, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        trace={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
        data={"url_changed": True},
    )
    await feeds.store.append([USER, "carol"], original, cap=10)
    for username in (USER, "carol"):
        [item] = await whole_feed(feeds.store, username)
        assert item.event == original
        assert item.event.author == "bob"
        assert item.cursor == NewsCursor(T0, original.id)
        assert item.cursor.time.tzinfo is not None
    assert await whole_feed(feeds.store, "bob") == []
    assert await whole_feed(feeds.store, "dave") == []


async def test_appending_to_no_one_is_a_no_op(feeds: Feeds) -> None:
    await feeds.store.append([], event(1), cap=10)
    assert await whole_feed(feeds.store) == []


async def test_a_redelivered_event_leaves_every_feed_unchanged(feeds: Feeds) -> None:
    events = [event(n) for n in range(4)]
    for item in events:
        await feeds.store.append([USER, "carol"], item, cap=10)
    before = await whole_feed(feeds.store)
    for item in (events[2], events[0], events[2]):
        await feeds.store.append([USER, "carol", USER], item, cap=10)
    assert await whole_feed(feeds.store) == before
    assert ids(before) == ["00000003", "00000002", "00000001", "00000000"]
    assert await feeds.stored(USER) == await feeds.stored("carol") == 4


async def test_feeds_are_trimmed_to_the_cap_oldest_first_payloads_too(feeds: Feeds) -> None:
    events = [event(n) for n in range(8)]
    for n in (3, 7, 0, 5, 1, 6, 2, 4):
        await feeds.store.append([USER], events[n], cap=3)
    assert ids(await whole_feed(feeds.store)) == ["00000007", "00000006", "00000005"]
    assert await feeds.stored(USER) == 3
    # Redelivering a trimmed event: it is older than everything kept, so it goes again.
    await feeds.store.append([USER], events[0], cap=3)
    assert ids(await whole_feed(feeds.store)) == ["00000007", "00000006", "00000005"]
    assert await feeds.stored(USER) == 3


async def test_a_lower_cap_trims_a_feed_at_its_next_append(feeds: Feeds) -> None:
    for n in range(10):
        await feeds.store.append([USER], event(n), cap=100)
    await feeds.store.append([USER], event(10), cap=4)
    assert ids(await whole_feed(feeds.store)) == [f"{n:08d}" for n in (10, 9, 8, 7)]
    assert await feeds.stored(USER) == 4


async def test_concurrent_appends_lose_nothing_and_respect_the_cap(feeds: Feeds) -> None:
    events = [event(n) for n in range(30)]
    followers = [USER, "carol", "dave"]
    await asyncio.gather(
        *(feeds.store.append(followers[n % 2 :], item, cap=20) for n, item in enumerate(events))
    )
    newest = [item.id for item in events[::-1]]
    assert ids(await whole_feed(feeds.store, "carol")) == newest[:20]
    assert ids(await whole_feed(feeds.store, "dave")) == newest[:20]
    # alice gets only the even events: 15, under the cap
    assert ids(await whole_feed(feeds.store, USER)) == newest[1::2]
    for username, size in ((USER, 15), ("carol", 20), ("dave", 20)):
        assert await feeds.stored(username) == size


async def test_concurrent_redeliveries_append_once(feeds: Feeds) -> None:
    await feeds.store.append([USER], event(0), cap=5)
    await asyncio.gather(*(feeds.store.append([USER, "carol"], event(1), cap=5) for _ in range(8)))
    assert ids(await whole_feed(feeds.store)) == ["00000001", "00000000"]
    assert ids(await whole_feed(feeds.store, "carol")) == ["00000001"]
    assert await feeds.stored(USER) == 2


# Ids that sort differently bytewise than under a natural-language collation.
TIE_IDS = ["B", "a", "b", "A", "_", "9", "Z", "é", "aa", "a-", "0f", "ff"]


async def test_paging_through_equal_times_never_repeats_or_skips(feeds: Feeds) -> None:
    events = [event(n, at=T0, event_id=event_id) for n, event_id in enumerate(TIE_IDS)]
    events += [event(n, at=T0 - dt.timedelta(microseconds=1), event_id=f"z{n}") for n in range(3)]
    for item in events:
        await feeds.store.append([USER], item, cap=100)
    expected = sorted(events, key=cursor_of, reverse=True)
    for limit in (1, 2, 3, 5, 100):
        assert ids(await all_pages(feeds.store, limit)) == [item.id for item in expected]
    assert ids(await whole_feed(feeds.store)) == [item.id for item in expected]


async def test_inserts_between_pages_never_repeat_or_skip(feeds: Feeds) -> None:
    initial = [event(n, at=T0, event_id=f"m{n:02d}") for n in range(10)]
    for item in initial:
        await feeds.store.append([USER], item, cap=100)
    fresh = iter(range(100, 200))

    async def insert_around_the_cursor() -> None:
        n = next(fresh)
        await feeds.store.append([USER], event(n, at=T0 + dt.timedelta(minutes=1)), cap=100)
        await feeds.store.append([USER], event(n, at=T0, event_id=f"a{n}"), cap=100)  # ahead
        await feeds.store.append([USER], event(n, at=T0, event_id=f"z{n}"), cap=100)  # behind

    seen = await all_pages(feeds.store, 3, between=insert_around_the_cursor)
    cursors = [item.cursor for item in seen]
    assert cursors == sorted(set(cursors), reverse=True)  # strictly newest first: no repeats
    assert {item.id for item in initial} <= set(ids(seen))
    assert all(item.event.time == T0 for item in seen)
    assert not any(event_id.startswith("z") for event_id in ids(seen))


async def test_a_cursor_whose_event_is_gone_still_pages_exactly(feeds: Feeds) -> None:
    for n, event_id in enumerate(["a", "c", "e"]):
        await feeds.store.append([USER], event(n, at=T0, event_id=event_id), cap=100)
    await feeds.store.append([USER], event(9, at=T0 - dt.timedelta(seconds=1)), cap=100)
    assert ids(await feeds.store.page(USER, NewsCursor(T0, "d"), 10)) == ["c", "a", "00000009"]
    assert ids(await feeds.store.page(USER, NewsCursor(T0, "d"), 1)) == ["c"]
    assert ids(await feeds.store.page(USER, NewsCursor(T0, "0"), 10)) == ["00000009"]
    assert await feeds.store.page(USER, NewsCursor(T0 - dt.timedelta(days=1), "z"), 10) == []


async def test_the_news_service_pages_a_fanned_out_feed(feeds: Feeds) -> None:
    graph = FakeSocialGraph()
    graph.add_follower("bob", USER)
    graph.add_follower("bob", "carol")
    consumer = NewsConsumer(feeds.store, graph, feed_cap=6)
    news = NewsService(feeds.store, SignedTokens(b"integration-secret-0123456789abcdef"))
    kinds = [EventType.LINK_ADDED, EventType.LINK_UPDATED, EventType.LINK_DELETED]
    for n in range(8):
        await consumer.handle(event(n, at=T0, event_id=f"e{n}", type=kinds[n % 3]))
        await consumer.handle(event(n, author="carol", type=EventType.LINK_CHECKED))
    pages, token = [], None
    while True:
        result = await news.get_news(GetNewsRequest(username=USER, start_token=token, limit=4))
        pages.append([(item.id, item.type, item.author) for item in result.events])
        if (token := result.next_page_token) is None:
            break
    assert pages == [
        [(f"e{n}", kinds[n % 3], "bob") for n in (7, 6, 5, 4)],
        [(f"e{n}", kinds[n % 3], "bob") for n in (3, 2)],
    ]


# -- the SQL schema -------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sql_engine(request: pytest.FixtureRequest) -> AsyncEngine:
    engine: AsyncEngine = request.getfixturevalue(f"news_{request.param}_engine")
    return engine


async def test_migrations_are_idempotent_in_their_own_version_table(
    sql_engine: AsyncEngine,
) -> None:
    await upgrade(sql_engine, "delinkcious.news")
    async with sql_engine.connect() as conn:
        versions = (await conn.execute(text("SELECT version_num FROM news_alembic_version"))).all()
    assert versions == [("0001",)]
