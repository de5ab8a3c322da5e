"""NewsService and NewsConsumer on an in-memory feed store and social graph (no I/O)."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from delinkcious.links.paging import PageTokens
from delinkcious.links.store import Cursor
from delinkcious.model import InvalidArgument, LinkFilter, Unavailable
from delinkcious.model.events import Event, EventType
from delinkcious.model.news import GetNewsRequest, NewsManager
from delinkcious.news.manager import DEFAULT_FEED_CAP, NewsConsumer, NewsService
from delinkcious.news.store import FeedItem, NewsCursor, cursor_of
from delinkcious.platform.page_tokens import SignedTokens
from tests.fakes import FakeSocialGraph

SECRET = b"unit-test-secret-0123456789abcdef"
T0 = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)
AUTHOR = "bob"
READER = "alice"


class FakeNewsStore:
    """The ``NewsStore`` contract in memory: idempotent by id per feed, capped, keyset pages."""

    def __init__(self) -> None:
        self.feeds: dict[str, dict[str, FeedItem]] = defaultdict(dict)
        self.calls: Counter[str] = Counter()

    def events(self, username: str) -> list[Event]:
        """The whole feed, newest first."""
        return [item.event for item in self._ordered(username)]

    def _ordered(self, username: str) -> list[FeedItem]:
        return sorted(self.feeds[username].values(), key=lambda item: item.cursor, reverse=True)

    async def append(self, usernames: Sequence[str], event: Event, cap: int) -> None:
        self.calls["append"] += 1
        for username in usernames:
            feed = self.feeds[username]
            feed.setdefault(event.id, FeedItem(cursor_of(event), event))
            for item in self._ordered(username)[cap:]:
                del feed[item.cursor.event_id]

    async def page(self, username: str, after: NewsCursor | None, limit: int) -> list[FeedItem]:
        items = self._ordered(username)
        return [item for item in items if after is None or item.cursor < after][:limit]


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store() -> FakeNewsStore:
    return FakeNewsStore()


@pytest.fixture
def graph() -> FakeSocialGraph:
    graph = FakeSocialGraph()
    graph.add_follower(AUTHOR, READER)
    return graph


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def news(store: FakeNewsStore, clock: Clock) -> NewsService:
    return NewsService(store, SignedTokens(SECRET, ttl_seconds=3600, clock=clock))


@pytest.fixture
def consumer(store: FakeNewsStore, graph: FakeSocialGraph) -> NewsConsumer:
    return NewsConsumer(store, graph)


def event(
    n: int,
    type: EventType = EventType.LINK_ADDED,
    *,
    at: dt.datetime | None = None,
    author: str = AUTHOR,
    event_id: str | None = None,
) -> Event:
    return Event(
        type=type,
        author=author,
        url=f"https://example.com/{n}",
        title=f"link {n}",
        tags=("news", f"t{n}"),
        id=event_id or f"{n:08d}",
        time=at or T0 + dt.timedelta(seconds=n),
    )


async def read_all(
    news: NewsService,
    limit: int,
    username: str = READER,
    between: Callable[[], Awaitable[None]] | None = None,
) -> list[list[Event]]:
    """Every page of the feed; ``between()`` runs after each page that has a successor."""
    pages: list[list[Event]] = []
    token = None
    while True:
        result = await news.get_news(
            GetNewsRequest(username=username, start_token=token, limit=limit)
        )
        pages.append(result.events)
        token = result.next_page_token
        if token is None:
            return pages
        if between is not None:
            await between()


def flat(pages: list[list[Event]]) -> list[Event]:
    return [item for page in pages for item in page]


# -- the consumer ---------------------------------------------------------------------------


async def test_news_service_is_a_news_manager(news: NewsService) -> None:
    assert isinstance(news, NewsManager)


async def test_consumer_subscribes_to_link_changes_only() -> None:
    assert NewsConsumer.types == {
        EventType.LINK_ADDED,
        EventType.LINK_UPDATED,
        EventType.LINK_DELETED,
    }


async def test_a_link_change_reaches_every_follower_and_no_one_else(
    consumer: NewsConsumer, store: FakeNewsStore, graph: FakeSocialGraph
) -> None:
    graph.add_follower(AUTHOR, "carol")
    graph.add_follower("dave", "erin")
    added = event(1)
    await consumer.handle(added)
    assert store.events(READER) == [added]
    assert store.events("carol") == [added]
    assert store.events("erin") == []
    assert store.events(AUTHOR) == []  # the author's own feed is unaffected
    assert graph.calls["get_followers"] == 1


async def test_an_author_without_followers_touches_no_feed(
    consumer: NewsConsumer, store: FakeNewsStore
) -> None:
    await consumer.handle(event(1, author="loner"))
    assert store.calls["append"] == 0


async def test_other_event_types_are_ignored(
    consumer: NewsConsumer, store: FakeNewsStore, graph: FakeSocialGraph
) -> None:
    await consumer.handle(event(1, EventType.LINK_CHECKED))
    assert store.events(READER) == []
    assert graph.calls["get_followers"] == 0


async def test_a_redelivered_event_changes_nothing(
    consumer: NewsConsumer, store: FakeNewsStore
) -> None:
    first, second = event(1), event(2)
    for delivery in (first, second, first, second, first):
        await consumer.handle(delivery)
    assert store.events(READER) == [second, first]


async def test_social_graph_errors_propagate_so_the_bus_redelivers(
    consumer: NewsConsumer, store: FakeNewsStore, graph: FakeSocialGraph
) -> None:
    graph.error = Unavailable("social graph is down")
    with pytest.raises(Unavailable):
        await consumer.handle(event(1))
    assert store.calls["append"] == 0
    graph.error = None
    await consumer.handle(event(1))  # the redelivery
    assert store.events(READER) == [event(1)]


async def test_feeds_are_capped_and_drop_the_oldest(
    store: FakeNewsStore, graph: FakeSocialGraph
) -> None:
    consumer = NewsConsumer(store, graph, feed_cap=3)
    events = [event(n) for n in range(6)]
    for shuffled in (events[2], events[5], events[0], events[4], events[1], events[3]):
        await consumer.handle(shuffled)
    assert store.events(READER) == [events[5], events[4], events[3]]
    await consumer.handle(events[0])  # redelivery of a trimmed event: still nothing changes
    assert store.events(READER) == [events[5], events[4], events[3]]


def test_the_default_feed_cap_is_1000_and_must_be_positive(
    store: FakeNewsStore, graph: FakeSocialGraph
) -> None:
    assert DEFAULT_FEED_CAP == 1000
    with pytest.raises(ValueError):
        NewsConsumer(store, graph, feed_cap=0)


# -- the original's defects -----------------------------------------------------------------


async def test_the_author_is_kept(consumer: NewsConsumer, news: NewsService) -> None:
    await consumer.handle(event(1))
    [got] = (await news.get_news(GetNewsRequest(username=READER))).events
    assert got.author == AUTHOR
    assert (got.url, got.title, got.type, got.time) == (
        "https://example.com/1",
        "link 1",
        EventType.LINK_ADDED,
        T0 + dt.timedelta(seconds=1),
    )


async def test_updates_and_deletes_are_kept_with_their_type(
    consumer: NewsConsumer, news: NewsService
) -> None:
    added = event(1, EventType.LINK_ADDED)
    updated = event(2, EventType.LINK_UPDATED)
    deleted = event(3, EventType.LINK_DELETED)
    for change in (added, updated, deleted):
        await consumer.handle(change)
    got = (await news.get_news(GetNewsRequest(username=READER))).events
    assert [item.type for item in got] == [
        EventType.LINK_DELETED,
        EventType.LINK_UPDATED,
        EventType.LINK_ADDED,
    ]
    assert got == [deleted, updated, added]


async def test_paging_moves_on_instead_of_returning_page_zero(
    consumer: NewsConsumer, news: NewsService
) -> None:
    for n in range(5):
        await consumer.handle(event(n))
    first = await news.get_news(GetNewsRequest(username=READER, limit=2))
    second = await news.get_news(
        GetNewsRequest(username=READER, start_token=first.next_page_token, limit=2)
    )
    assert [e.id for e in first.events] == ["00000004", "00000003"]
    assert [e.id for e in second.events] == ["00000002", "00000001"]


# -- paging ---------------------------------------------------------------------------------


async def test_pages_are_newest_first_and_the_last_has_no_token(
    consumer: NewsConsumer, news: NewsService
) -> None:
    events = [event(n) for n in range(7)]
    for change in events:
        await consumer.handle(change)
    pages = await read_all(news, limit=3)
    assert [len(page) for page in pages] == [3, 3, 1]
    assert flat(pages) == events[::-1]


async def test_an_exact_multiple_has_no_empty_last_page(
    consumer: NewsConsumer, news: NewsService
) -> None:
    for n in range(6):
        await consumer.handle(event(n))
    assert [len(page) for page in await read_all(news, limit=3)] == [3, 3]


async def test_an_empty_feed_is_one_empty_page(news: NewsService) -> None:
    result = await news.get_news(GetNewsRequest(username=READER))
    assert result.events == []
    assert result.next_page_token is None


async def test_the_default_page_is_ten_events(consumer: NewsConsumer, news: NewsService) -> None:
    for n in range(12):
        await consumer.handle(event(n))
    result = await news.get_news(GetNewsRequest(username=READER))
    assert len(result.events) == 10
    assert result.next_page_token is not None


async def test_equal_times_and_inserts_between_pages_never_repeat_or_skip(
    consumer: NewsConsumer, news: NewsService
) -> None:
    """Ties on time are broken by id; new events land before or after the cursor."""
    initial = [event(n, at=T0, event_id=f"id{n:02d}") for n in range(12)]
    for change in initial:
        await consumer.handle(change)
    fresh = iter(range(100, 200))

    async def insert_around_the_cursor() -> None:
        n = next(fresh)
        await consumer.handle(event(n, at=T0 + dt.timedelta(hours=1)))  # newer: not seen
        await consumer.handle(event(n, at=T0, event_id=f"id{n - 100:02d}x"))  # tie, ahead

    seen = flat(await read_all(news, limit=4, between=insert_around_the_cursor))
    cursors = [cursor_of(item) for item in seen]
    assert cursors == sorted(cursors, reverse=True)
    assert len(set(cursors)) == len(cursors)
    assert {item.id for item in initial} <= {item.id for item in seen}
    assert all(item.time == T0 for item in seen)


async def test_a_page_size_may_change_between_pages(
    consumer: NewsConsumer, news: NewsService
) -> None:
    for n in range(5):
        await consumer.handle(event(n))
    first = await news.get_news(GetNewsRequest(username=READER, limit=1))
    rest = await news.get_news(
        GetNewsRequest(username=READER, start_token=first.next_page_token, limit=100)
    )
    assert [e.id for e in first.events + rest.events] == [f"{n:08d}" for n in range(4, -1, -1)]


@pytest.mark.parametrize("limit", [0, -1, 101, 10_000])
async def test_limits_outside_1_to_100_are_invalid(news: NewsService, limit: int) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await news.get_news(GetNewsRequest(username=READER, limit=limit))
    assert caught.value.code == "invalid_limit"


@pytest.mark.parametrize("limit", [1, 100])
async def test_limits_1_and_100_are_accepted(
    consumer: NewsConsumer, news: NewsService, limit: int
) -> None:
    for n in range(101):
        await consumer.handle(event(n))
    result = await news.get_news(GetNewsRequest(username=READER, limit=limit))
    assert len(result.events) == limit


async def test_a_username_is_required(news: NewsService) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await news.get_news(GetNewsRequest(username=""))
    assert caught.value.code == "invalid_username"


_TIMES = [T0 + dt.timedelta(microseconds=n) for n in range(3)]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    specs=st.lists(
        st.tuples(st.sampled_from(_TIMES), st.text("aBz9_", min_size=1, max_size=3)),
        max_size=30,
        unique_by=lambda spec: spec[1],
    ),
    limit=st.integers(min_value=1, max_value=7),
    cap=st.integers(min_value=1, max_value=40),
)
def test_concatenated_pages_are_the_newest_cap_events_in_order(
    specs: list[tuple[dt.datetime, str]], limit: int, cap: int
) -> None:
    async def scenario() -> None:
        store, graph = FakeNewsStore(), FakeSocialGraph()
        graph.add_follower(AUTHOR, READER)
        consumer = NewsConsumer(store, graph, feed_cap=cap)
        news = NewsService(store, SignedTokens(SECRET))
        events = [event(i, at=at, event_id=event_id) for i, (at, event_id) in enumerate(specs)]
        for change in events:
            await consumer.handle(change)
        expected = sorted(events, key=cursor_of, reverse=True)[:cap]
        pages = await read_all(news, limit)
        assert flat(pages) == expected
        assert all(len(page) == limit for page in pages[:-1])
        assert pages[-1] or len(pages) == 1

    asyncio.run(scenario())


# -- page tokens ----------------------------------------------------------------------------


@pytest.fixture
async def token(consumer: NewsConsumer, news: NewsService) -> str:
    for n in range(5):
        await consumer.handle(event(n))
    result = await news.get_news(GetNewsRequest(username=READER, limit=2))
    assert result.next_page_token is not None
    return result.next_page_token


async def next_page(news: NewsService, start_token: str, username: str = READER) -> list[Event]:
    request = GetNewsRequest(username=username, start_token=start_token, limit=2)
    return (await news.get_news(request)).events


def _reencode(payload: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(payload)).rstrip(b"=").decode()


def _edited_tokens(token: str) -> dict[str, str]:
    body, signature = token.split(".")
    payload = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    moved = _reencode(payload | {"d": payload["d"] | {"i": "00000001"}})
    later = _reencode(payload | {"e": payload["e"] + 10**6})
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    return {
        "random": "not-a-token",
        "empty-signature": f"{body}.",
        "empty-body": f".{signature}",
        "no-dot": body + signature,
        "two-dots": f"{body}.{signature}.{signature}",
        "moved-cursor": f"{moved}.{signature}",
        "extended-expiry": f"{later}.{signature}",
        "flipped-signature": f"{body}.{flipped}",
        "truncated-body": f"{body[:-1]}.{signature}",
        "junk-in-body": f"{body[:10]}!!{body[10:]}.{signature}",
        "non-ascii-signature": f"{body}.{'é' * len(signature)}",
        "non-ascii-body": f"é{body}.{signature}",
        "huge": "A" * 5_000 + "." + signature,
        "bad-base64": f"@@@.{signature}",
    }


async def test_a_valid_token_continues(news: NewsService, token: str) -> None:
    assert [e.id for e in await next_page(news, token)] == ["00000002", "00000001"]


@pytest.mark.parametrize(
    "kind",
    [
        "random",
        "empty-signature",
        "empty-body",
        "no-dot",
        "two-dots",
        "moved-cursor",
        "extended-expiry",
        "flipped-signature",
        "truncated-body",
        "junk-in-body",
        "non-ascii-signature",
        "non-ascii-body",
        "huge",
        "bad-base64",
    ],
)
async def test_forged_or_edited_tokens_are_invalid_argument(
    news: NewsService, token: str, kind: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await next_page(news, _edited_tokens(token)[kind])
    assert caught.value.code == "invalid_page_token"


async def test_a_token_for_another_user_is_invalid_argument(
    news: NewsService, consumer: NewsConsumer, graph: FakeSocialGraph, token: str
) -> None:
    graph.add_follower(AUTHOR, "carol")
    await consumer.handle(event(9))
    with pytest.raises(InvalidArgument) as caught:
        await next_page(news, token, username="carol")
    assert caught.value.code == "invalid_page_token"


async def test_a_token_signed_with_another_secret_is_invalid(
    store: FakeNewsStore, token: str
) -> None:
    other = NewsService(store, SignedTokens(b"another-secret-0123456789abcdef"))
    with pytest.raises(InvalidArgument):
        await next_page(other, token)


async def test_a_token_of_another_replica_with_the_same_secret_works(
    store: FakeNewsStore, token: str
) -> None:
    assert len(await next_page(NewsService(store, SignedTokens(SECRET)), token)) == 2


async def test_a_links_page_token_with_the_same_secret_is_refused(
    news: NewsService, token: str
) -> None:
    links_token = PageTokens(SECRET).encode(READER, LinkFilter(), Cursor(T0, 1))
    with pytest.raises(InvalidArgument) as caught:
        await next_page(news, links_token)
    assert caught.value.code == "invalid_page_token"


async def test_an_expired_token_is_invalid_argument(
    news: NewsService, clock: Clock, token: str
) -> None:
    clock.now += 3599
    assert len(await next_page(news, token)) == 2
    clock.now += 2
    with pytest.raises(InvalidArgument) as caught:
        await next_page(news, token)
    assert caught.value.code == "expired_page_token"


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        SignedTokens(b"too-short")
