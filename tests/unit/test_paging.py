"""Cursor paging: stable under inserts, ties on created_at, filters; signed page tokens."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from delinkcious.links import manager as manager_module
from delinkcious.links.manager import LinkService
from delinkcious.links.paging import PageTokens
from delinkcious.links.store import Cursor
from delinkcious.model import (
    AddLinkRequest,
    GetLinksRequest,
    InvalidArgument,
    Link,
    LinkFilter,
)
from tests.fakes import FakeLinkStore
from tests.unit.conftest import Clock

USER = "alice"
SECRET = b"unit-test-secret-0123456789abcdef"

Between = Callable[[list[list[Link]]], Awaitable[None]]


async def add_many(service: LinkService, count: int, start: int = 0, **kw: Any) -> list[Link]:
    return [
        await service.add_link(
            AddLinkRequest(username=USER, url=f"https://example.com/{i}", title=f"link {i}", **kw)
        )
        for i in range(start, start + count)
    ]


async def read_all(
    service: LinkService,
    limit: int,
    link_filter: LinkFilter | None = None,
    between: Between | None = None,
) -> list[list[Link]]:
    """Every page of the listing; ``between(pages_so_far)`` runs after each page read."""
    pages: list[list[Link]] = []
    token = None
    while True:
        result = await service.get_links(
            GetLinksRequest(
                username=USER, filter=link_filter or LinkFilter(), start_token=token, limit=limit
            )
        )
        pages.append(result.links)
        if between is not None:
            await between(pages)
        token = result.next_page_token
        if token is None:
            return pages
        assert len(pages) < 1_000, "paging does not terminate"


def urls(links: list[Link]) -> list[str]:
    return [link.url for link in links]


def flat(pages: list[list[Link]]) -> list[str]:
    return [link.url for page in pages for link in page]


# -- paging --------------------------------------------------------------------------------


async def test_pages_split_the_listing_and_the_last_has_no_token(links: LinkService) -> None:
    saved = await add_many(links, 10)  # the fixed clock gives all ten the same created_at
    assert len({link.created_at for link in saved}) == 1
    pages = await read_all(links, limit=3)
    assert [len(page) for page in pages] == [3, 3, 3, 1]
    assert flat(pages) == urls(saved[::-1])  # newest (highest id) first on a tie


async def test_an_exact_multiple_of_the_page_size_has_no_empty_last_page(
    links: LinkService,
) -> None:
    saved = await add_many(links, 9)
    pages = await read_all(links, limit=3)
    assert [len(page) for page in pages] == [3, 3, 3]
    assert flat(pages) == urls(saved[::-1])


async def test_an_empty_listing_is_one_empty_page(links: LinkService) -> None:
    assert await read_all(links, limit=5) == [[]]


async def test_inserts_with_the_same_timestamp_between_pages_never_repeat_or_skip(
    links: LinkService, link_store: FakeLinkStore
) -> None:
    saved = await add_many(links, 10)
    inserted = 0

    async def insert_more(pages_so_far: list[list[Link]]) -> None:
        nonlocal inserted
        await add_many(links, 4, start=100 + inserted)
        inserted += 4

    pages = await read_all(links, limit=3, between=insert_more)
    # The listing is the one that existed when paging started: rows added since are newer.
    assert flat(pages) == urls(saved[::-1])
    assert inserted == 16
    assert len(link_store.all_links(USER)) == 26


async def test_deletes_between_pages_never_skip_the_remaining_rows(links: LinkService) -> None:
    saved = await add_many(links, 10)
    newest_first = saved[::-1]
    deleted: list[str] = []

    async def delete_the_next_row(pages_so_far: list[list[Link]]) -> None:
        # Delete the row just past the page border, the one the next page would start with.
        gone = set(flat(pages_so_far)) | set(deleted)
        remaining = [url for url in urls(newest_first) if url not in gone]
        if remaining:
            await links.delete_link(USER, remaining[0])
            deleted.append(remaining[0])

    pages = await read_all(links, limit=3, between=delete_the_next_row)
    assert flat(pages) == [url for url in urls(newest_first) if url not in deleted]


async def test_paging_orders_by_time_then_id_across_ties(links: LinkService, clock: Clock) -> None:
    first = await add_many(links, 3)
    clock.advance(microseconds=1)
    second = await add_many(links, 3, start=3)
    clock.advance(seconds=-10)  # a clock that stepped back: order follows created_at, not id
    older = await add_many(links, 3, start=6)
    pages = await read_all(links, limit=2)
    assert flat(pages) == urls(second[::-1] + first[::-1] + older[::-1])


@pytest.mark.parametrize(
    ("link_filter", "selects"),
    [
        (LinkFilter(title_regex="[05]$"), lambda n: n % 5 == 0),
        (LinkFilter(url_regex=r"/\d*[05]$", description_regex="even"), lambda n: n % 10 == 0),
        (LinkFilter(tag="five"), lambda n: n % 5 == 0),
        (LinkFilter(tag="five", title_regex="0$"), lambda n: n % 10 == 0),
        (LinkFilter(description_regex="^odd$"), lambda n: n % 2 == 1),
    ],
)
async def test_filtered_paging_under_concurrent_inserts(
    links: LinkService,
    monkeypatch: pytest.MonkeyPatch,
    link_filter: LinkFilter,
    selects: Callable[[int], bool],
) -> None:
    # Small scan batches, so a page of matches spans several reads of the store.
    monkeypatch.setattr(manager_module, "_SCAN_BATCH", 4)

    async def add_numbered(numbers: Iterable[int]) -> list[Link]:
        return [
            await links.add_link(
                AddLinkRequest(
                    username=USER,
                    url=f"https://example.com/{n}",
                    title=f"link {n}",
                    description="even" if n % 2 == 0 else "odd",
                    tags=frozenset({"five"} if n % 5 == 0 else {"other"}),
                )
            )
            for n in numbers
        ]

    await add_numbered(range(60))
    counter = iter(range(1000, 10_000, 7))

    async def insert_more(pages_so_far: list[list[Link]]) -> None:
        # Same created_at as every row already listed (the clock stands still).
        await add_numbered([next(counter) for _ in range(6)])

    pages = await read_all(links, limit=2, link_filter=link_filter, between=insert_more)
    expected = [f"https://example.com/{n}" for n in reversed(range(60)) if selects(n)]
    assert flat(pages) == expected
    assert all(len(page) == 2 for page in pages[:-1])


async def test_next_page_token_is_none_when_the_filter_leaves_no_more(
    links: LinkService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(manager_module, "_SCAN_BATCH", 3)
    saved = await add_many(links, 20)
    result = await links.get_links(
        GetLinksRequest(username=USER, filter=LinkFilter(url_regex="/(0|1)$"), limit=2)
    )
    assert urls(result.links) == [saved[1].url, saved[0].url]
    assert result.next_page_token is None


# -- property ------------------------------------------------------------------------------

_TIMES = [dt.datetime(2026, 3, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=n) for n in range(4)]

link_specs = st.lists(
    st.tuples(
        st.sampled_from(_TIMES),  # few distinct times: many ties, times out of id order
        st.frozensets(st.sampled_from(["a", "b", "c"]), max_size=3),
        st.sampled_from(["x", "y", "xy"]),
    ),
    max_size=40,
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    specs=link_specs,
    limit=st.integers(min_value=1, max_value=12),
    tag=st.none() | st.sampled_from(["a", "b", "c"]),
    title_regex=st.none() | st.sampled_from(["x", "^y", "xy$"]),
    scan_batch=st.integers(min_value=1, max_value=9),
)
def test_concatenated_pages_equal_the_full_ordered_listing(
    specs: list[tuple[dt.datetime, frozenset[str], str]],
    limit: int,
    tag: str | None,
    title_regex: str | None,
    scan_batch: int,
) -> None:
    async def scenario() -> None:
        moments = iter(spec[0] for spec in specs)
        service = LinkService(
            FakeLinkStore(),
            PageTokens(SECRET),
            max_links_per_user=100,
            clock=lambda: next(moments),
        )
        added: list[tuple[dt.datetime, int, Link]] = []
        for i, (_moment, tags, title) in enumerate(specs):
            link = await service.add_link(
                AddLinkRequest(
                    username=USER, url=f"https://example.com/{i}", title=title, tags=tags
                )
            )
            added.append((link.created_at, i, link))
        expected = [
            link.url
            for _created, _i, link in sorted(added, key=lambda item: item[:2], reverse=True)
            if (tag is None or tag in link.tags)
            and (title_regex is None or _regex_matches(title_regex, link.title))
        ]
        pages = await read_all(service, limit, LinkFilter(tag=tag, title_regex=title_regex))
        assert flat(pages) == expected
        assert all(len(page) == limit for page in pages[:-1])
        assert len(pages[-1]) <= limit
        assert pages[-1] or len(pages) == 1  # no empty trailing page

    original = manager_module._SCAN_BATCH
    manager_module._SCAN_BATCH = scan_batch
    try:
        asyncio.run(scenario())
    finally:
        manager_module._SCAN_BATCH = original


def _regex_matches(pattern: str, title: str) -> bool:
    return {"x": "x" in title, "^y": title.startswith("y"), "xy$": title.endswith("xy")}[pattern]


# -- page tokens ---------------------------------------------------------------------------


@pytest.fixture
async def token(links: LinkService) -> str:
    await add_many(links, 5)
    result = await links.get_links(GetLinksRequest(username=USER, limit=2))
    assert result.next_page_token is not None
    return result.next_page_token


async def next_page(
    service: LinkService,
    start_token: str,
    *,
    username: str = USER,
    limit: int = 2,
    link_filter: LinkFilter | None = None,
) -> list[Link]:
    request = GetLinksRequest(
        username=username,
        filter=link_filter or LinkFilter(),
        start_token=start_token,
        limit=limit,
    )
    return (await service.get_links(request)).links


async def test_a_valid_token_continues(links: LinkService, token: str) -> None:
    assert urls(await next_page(links, token)) == [
        "https://example.com/2",
        "https://example.com/1",
    ]


def _reencode(payload: dict[str, Any]) -> bytes:
    return base64.urlsafe_b64encode(orjson.dumps(payload)).rstrip(b"=")


def _edited_tokens(token: str) -> dict[str, str]:
    body, signature = token.split(".")
    payload = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    cursor = payload["d"]
    moved = _reencode(payload | {"d": cursor | {"i": cursor["i"] + 2}}).decode()
    later = _reencode(payload | {"e": payload["e"] + 10**6}).decode()
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
    links: LinkService, token: str, kind: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await next_page(links, _edited_tokens(token)[kind])
    assert caught.value.code == "invalid_page_token"


async def test_a_token_signed_with_another_secret_is_invalid(
    link_store: FakeLinkStore, clock: Clock, token: str
) -> None:
    other = LinkService(link_store, PageTokens(b"another-secret-0123456789abcdef"), clock=clock)
    with pytest.raises(InvalidArgument):
        await next_page(other, token)


async def test_a_token_of_another_replica_with_the_same_secret_works(
    link_store: FakeLinkStore, page_tokens: PageTokens, clock: Clock, token: str
) -> None:
    replica = LinkService(link_store, PageTokens(SECRET), clock=clock)
    assert len(await next_page(replica, token)) == 2


async def test_a_token_for_another_user_is_invalid_argument(links: LinkService, token: str) -> None:
    await links.add_link(AddLinkRequest(username="bob", url="https://example.com/0", title="b"))
    with pytest.raises(InvalidArgument) as caught:
        await next_page(links, token, username="bob")
    assert caught.value.code == "invalid_page_token"


@pytest.mark.parametrize(
    "link_filter",
    [
        LinkFilter(url_regex="example"),
        LinkFilter(title_regex="link"),
        LinkFilter(tag="t"),
    ],
)
async def test_a_token_reused_for_another_query_is_invalid_argument(
    links: LinkService, token: str, link_filter: LinkFilter
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await next_page(links, token, link_filter=link_filter)
    assert caught.value.code == "invalid_page_token"


async def test_a_token_of_a_filtered_query_works_only_for_that_query(links: LinkService) -> None:
    await add_many(links, 6)
    link_filter = LinkFilter(url_regex="[0-9]", tag=None)
    first = await links.get_links(GetLinksRequest(username=USER, filter=link_filter, limit=2))
    assert first.next_page_token is not None
    assert len(await next_page(links, first.next_page_token, link_filter=link_filter)) == 2
    with pytest.raises(InvalidArgument):
        await next_page(links, first.next_page_token)


async def test_page_size_may_change_between_pages(links: LinkService, token: str) -> None:
    assert len(await next_page(links, token, limit=3)) == 3


async def test_an_expired_token_is_invalid_argument(
    link_store: FakeLinkStore, clock: Clock
) -> None:
    now = [1_000_000.0]
    service = LinkService(link_store, PageTokens(SECRET, clock=lambda: now[0]), clock=clock)
    await add_many(service, 5)
    token = (await service.get_links(GetLinksRequest(username=USER, limit=2))).next_page_token
    assert token is not None
    now[0] += 86_400 + 5
    with pytest.raises(InvalidArgument) as caught:
        await next_page(service, token)
    assert caught.value.code == "expired_page_token"


async def test_a_token_lives_until_its_ttl(link_store: FakeLinkStore, clock: Clock) -> None:
    now = [1_000_000.0]
    service = LinkService(
        link_store, PageTokens(SECRET, ttl_seconds=30, clock=lambda: now[0]), clock=clock
    )
    await add_many(service, 5)
    token = (await service.get_links(GetLinksRequest(username=USER, limit=2))).next_page_token
    assert token is not None
    now[0] += 29
    assert len(await next_page(service, token)) == 2
    now[0] += 2
    with pytest.raises(InvalidArgument) as caught:
        await next_page(service, token)
    assert caught.value.code == "expired_page_token"


async def test_a_token_with_a_tiny_ttl_expires(link_store: FakeLinkStore, clock: Clock) -> None:
    service = LinkService(link_store, PageTokens(SECRET, ttl_seconds=-1), clock=clock)
    await add_many(service, 3)
    token = (await service.get_links(GetLinksRequest(username=USER, limit=1))).next_page_token
    assert token is not None
    with pytest.raises(InvalidArgument):
        await next_page(service, token)


def test_token_roundtrip_keeps_the_cursor_to_the_microsecond() -> None:
    tokens = PageTokens(SECRET)
    cursor = Cursor(dt.datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC), 42)
    token = tokens.encode(USER, LinkFilter(tag="x"), cursor)
    assert tokens.decode(token, USER, LinkFilter(tag="x")) == cursor
    # Opaque: neither the user nor the raw filter is readable in it.
    assert USER not in token
    assert USER.encode() not in base64.urlsafe_b64decode(token.split(".")[0] + "==")
