"""LinkService on the in-memory store: validation, add / update / delete, filters."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from typing import Any

import pytest

from delinkcious.links.manager import LinkService
from delinkcious.links.paging import PageTokens
from delinkcious.model import (
    AddLinkRequest,
    AlreadyExists,
    GetLinksRequest,
    InvalidArgument,
    LimitExceeded,
    Link,
    LinkFilter,
    LinkManager,
    LinkStatus,
    NotFound,
    Unavailable,
    UpdateLinkRequest,
)
from delinkcious.model.validation import (
    MAX_DESCRIPTION,
    MAX_REGEX,
    MAX_TAG,
    MAX_TAGS,
    MAX_TITLE,
    MAX_URL,
)
from tests.fakes import FakeLinkStore
from tests.unit.conftest import Clock

USER = "alice"
URL = "https://example.com/a"


def add(
    url: str = URL,
    title: str = "A title",
    username: str = USER,
    description: str = "",
    tags: frozenset[str] = frozenset(),
) -> AddLinkRequest:
    return AddLinkRequest(
        username=username, url=url, title=title, description=description, tags=tags
    )


def long_url(length: int) -> str:
    prefix = "https://example.com/"
    return prefix + "p" * (length - len(prefix))


async def test_link_service_is_a_link_manager(links: LinkService) -> None:
    assert isinstance(links, LinkManager)


async def test_add_link_stores_a_pending_link(
    links: LinkService, link_store: FakeLinkStore, clock: Clock
) -> None:
    link = await links.add_link(
        add(
            url="  https://example.com/a  ",
            title="  Example  ",
            description="about it",
            tags=frozenset({" python ", "web", "python"}),
        )
    )
    assert link.url == URL
    assert link.title == "Example"
    assert link.description == "about it"
    assert link.tags == frozenset({"python", "web"})
    assert link.status is LinkStatus.PENDING
    assert link.created_at == link.updated_at == clock.now
    assert link_store.all_links(USER) == [link]


async def test_add_link_accepts_the_limits_exactly(
    links: LinkService, link_store: FakeLinkStore
) -> None:
    link = await links.add_link(
        add(
            url=long_url(MAX_URL),
            title="t" * MAX_TITLE,
            description="d" * MAX_DESCRIPTION,
            tags=frozenset({f"{i:02d}" + "x" * (MAX_TAG - 2) for i in range(MAX_TAGS)}),
        )
    )
    assert len(link.url) == MAX_URL
    assert len(link.tags) == MAX_TAGS
    assert link_store.count(USER) == 1


@pytest.mark.parametrize(
    "request_",
    [
        pytest.param(add(url="ftp://example.com/file"), id="ftp-url"),
        pytest.param(add(url="javascript:alert(1)"), id="javascript-url"),
        pytest.param(add(url="file:///etc/passwd"), id="file-url"),
        pytest.param(add(url="example.com/no-scheme"), id="no-scheme"),
        pytest.param(add(url="http://"), id="no-host"),
        pytest.param(add(url=""), id="empty-url"),
        pytest.param(add(url="https://exa mple.com/"), id="space-in-url"),
        pytest.param(add(url="https://example.com/\x00"), id="control-char-url"),
        pytest.param(add(url="https://example.com:99999/"), id="bad-port"),
        pytest.param(add(url=long_url(MAX_URL + 1)), id="url-too-long"),
        pytest.param(add(title=""), id="empty-title"),
        pytest.param(add(title="   "), id="blank-title"),
        pytest.param(add(title="t" * (MAX_TITLE + 1)), id="title-too-long"),
        pytest.param(add(description="d" * (MAX_DESCRIPTION + 1)), id="description-too-long"),
        pytest.param(
            add(tags=frozenset(f"tag{i}" for i in range(MAX_TAGS + 1))), id="too-many-tags"
        ),
        pytest.param(add(tags=frozenset({"x" * (MAX_TAG + 1)})), id="tag-too-long"),
        pytest.param(add(tags=frozenset({""})), id="empty-tag"),
        pytest.param(add(tags=frozenset({"   "})), id="blank-tag"),
        pytest.param(add(tags=frozenset({"a\nb"})), id="control-char-tag"),
        pytest.param(add(username=""), id="no-username"),
    ],
)
async def test_add_link_rejects_bad_input_and_stores_nothing(
    links: LinkService, link_store: FakeLinkStore, request_: AddLinkRequest
) -> None:
    with pytest.raises(InvalidArgument):
        await links.add_link(request_)
    assert link_store.calls["insert"] == 0
    assert link_store.count(request_.username) == 0


async def test_duplicate_url_is_already_exists(
    links: LinkService, link_store: FakeLinkStore
) -> None:
    first = await links.add_link(add(title="first"))
    with pytest.raises(AlreadyExists):
        await links.add_link(add(title="second"))
    assert link_store.all_links(USER) == [first]
    # Another user may save the same url.
    await links.add_link(add(username="bob"))
    assert link_store.count("bob") == 1


async def test_link_cap_is_limit_exceeded(
    link_store: FakeLinkStore, page_tokens: PageTokens, clock: Clock
) -> None:
    service = LinkService(link_store, page_tokens, max_links_per_user=3, clock=clock)
    for i in range(3):
        await service.add_link(add(url=f"https://example.com/{i}"))
    with pytest.raises(LimitExceeded):
        await service.add_link(add(url="https://example.com/3"))
    assert link_store.count(USER) == 3
    # The cap is per user.
    await service.add_link(add(url="https://example.com/3", username="bob"))
    # Deleting frees a slot.
    await service.delete_link(USER, "https://example.com/0")
    await service.add_link(add(url="https://example.com/3"))
    assert link_store.count(USER) == 3


# -- update ------------------------------------------------------------------------------


async def test_update_link_changes_tags_title_and_description(
    links: LinkService, link_store: FakeLinkStore, clock: Clock
) -> None:
    original = await links.add_link(
        add(description="old", tags=frozenset({"keep", "drop", "also-drop"}))
    )
    clock.advance(seconds=5)
    updated = await links.update_link(
        UpdateLinkRequest(
            username=USER,
            url=URL,
            title=" New title ",
            description="new",
            add_tags=frozenset({"new", " keep "}),
            remove_tags=frozenset({"drop", "also-drop", "never-there"}),
        )
    )
    assert updated.title == "New title"
    assert updated.description == "new"
    assert updated.tags == frozenset({"keep", "new"})
    assert updated.created_at == original.created_at
    assert updated.updated_at == clock.now
    assert updated.status is original.status
    assert link_store.all_links(USER) == [updated]


async def test_update_link_leaves_fields_that_are_none(links: LinkService) -> None:
    original = await links.add_link(add(description="desc", tags=frozenset({"t"})))
    updated = await links.update_link(UpdateLinkRequest(username=USER, url=URL))
    assert (updated.title, updated.description, updated.tags) == (
        original.title,
        original.description,
        original.tags,
    )
    # Even with a clock that stands still, every change moves updated_at forward.
    assert updated.updated_at > original.updated_at
    again = await links.update_link(UpdateLinkRequest(username=USER, url=URL, description=""))
    assert again.description == ""
    assert again.updated_at > updated.updated_at


async def test_update_missing_link_is_not_found(links: LinkService) -> None:
    await links.add_link(add())
    with pytest.raises(NotFound):
        await links.update_link(UpdateLinkRequest(username=USER, url="https://example.com/b"))
    with pytest.raises(NotFound):  # another user's link is not yours to change
        await links.update_link(UpdateLinkRequest(username="bob", url=URL, title="mine"))


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"title": ""}, id="empty-title"),
        pytest.param({"title": "t" * (MAX_TITLE + 1)}, id="title-too-long"),
        pytest.param({"description": "d" * (MAX_DESCRIPTION + 1)}, id="description-too-long"),
        pytest.param({"add_tags": frozenset({""})}, id="empty-tag"),
        pytest.param({"add_tags": frozenset({"x" * (MAX_TAG + 1)})}, id="tag-too-long"),
        pytest.param({"remove_tags": frozenset({"x" * (MAX_TAG + 1)})}, id="remove-tag-too-long"),
        pytest.param({"url": "ftp://example.com/a"}, id="bad-url"),
        pytest.param({"username": ""}, id="no-username"),
        # 30 existing tags + 3 new ones would be 33.
        pytest.param({"add_tags": frozenset({"n1", "n2", "n3"})}, id="too-many-tags-after-add"),
    ],
)
async def test_update_link_rejects_bad_input_and_changes_nothing(
    links: LinkService, link_store: FakeLinkStore, changes: dict[str, Any]
) -> None:
    original = await links.add_link(add(tags=frozenset(f"t{i}" for i in range(30))))
    fields = {"username": USER, "url": URL} | changes
    with pytest.raises(InvalidArgument):
        await links.update_link(UpdateLinkRequest(**fields))
    assert link_store.calls["replace"] == 0
    assert link_store.all_links(USER) == [original]


class RacingStore(FakeLinkStore):
    """Another writer changes the link right after each of the first ``races`` reads."""

    def __init__(self, races: int) -> None:
        super().__init__()
        self.races = races

    async def get(self, username: str, url: str) -> Link | None:
        current = await super().get(username, url)
        if current is not None and self.races > 0:
            self.races -= 1
            rival = dataclasses.replace(
                current,
                tags=current.tags | {f"rival{self.races}"},
                updated_at=current.updated_at + dt.timedelta(microseconds=1),
            )
            assert await super().replace(username, current.updated_at, rival)
        return current


async def test_update_link_retries_instead_of_losing_a_concurrent_edit(
    page_tokens: PageTokens, clock: Clock
) -> None:
    store = RacingStore(races=2)
    service = LinkService(store, page_tokens, clock=clock)
    await service.add_link(add(tags=frozenset({"base"})))
    updated = await service.update_link(
        UpdateLinkRequest(username=USER, url=URL, add_tags=frozenset({"mine"}))
    )
    assert updated.tags == {"base", "mine", "rival0", "rival1"}
    assert store.all_links(USER)[0].tags == updated.tags
    assert store.calls["replace"] == 3 + 2  # ours: two lost races and a win; the rival's two


async def test_update_link_gives_up_with_unavailable_under_endless_contention(
    page_tokens: PageTokens, clock: Clock
) -> None:
    store = RacingStore(races=1_000)
    service = LinkService(store, page_tokens, clock=clock)
    await service.add_link(add())
    with pytest.raises(Unavailable):
        await service.update_link(
            UpdateLinkRequest(username=USER, url=URL, add_tags=frozenset({"mine"}))
        )
    assert "mine" not in store.all_links(USER)[0].tags


# -- delete ------------------------------------------------------------------------------


async def test_delete_link(links: LinkService, link_store: FakeLinkStore) -> None:
    await links.add_link(add())
    other = await links.add_link(add(url="https://example.com/b"))
    await links.delete_link(USER, URL)
    assert link_store.all_links(USER) == [other]
    with pytest.raises(NotFound):
        await links.delete_link(USER, URL)


async def test_delete_missing_or_foreign_link_is_not_found(
    links: LinkService, link_store: FakeLinkStore
) -> None:
    await links.add_link(add())
    with pytest.raises(NotFound):
        await links.delete_link("bob", URL)
    with pytest.raises(InvalidArgument):
        await links.delete_link(USER, "not a url")
    with pytest.raises(InvalidArgument):
        await links.delete_link("", URL)
    assert link_store.count(USER) == 1


# -- get_links and filters ---------------------------------------------------------------


@pytest.fixture
async def catalogue(links: LinkService, clock: Clock) -> dict[str, Link]:
    specs = [
        ("https://www.example.com/python", "Python tips", "all about snakes", {"python", "py"}),
        ("https://golang.org/doc", "Go docs", "gophers and channels", {"go"}),
        ("http://example.org/rust", "Rust book", "ownership; borrowing", {"rust", "python"}),
        ("https://news.site/python-news", "Weekly digest", "python weekly", {"news"}),
    ]
    saved: dict[str, Link] = {}
    for url, title, description, tags in specs:
        clock.advance(seconds=1)
        saved[title] = await links.add_link(
            add(url=url, title=title, description=description, tags=frozenset(tags))
        )
    return saved


async def titles(links: LinkService, link_filter: LinkFilter, username: str = USER) -> list[str]:
    result = await links.get_links(
        GetLinksRequest(username=username, filter=link_filter, limit=100)
    )
    assert result.next_page_token is None
    return [link.title for link in result.links]


async def test_get_links_lists_newest_first(links: LinkService, catalogue: dict[str, Link]) -> None:
    assert await titles(links, LinkFilter()) == [
        "Weekly digest",
        "Rust book",
        "Go docs",
        "Python tips",
    ]
    assert await titles(links, LinkFilter(), username="bob") == []


@pytest.mark.parametrize(
    ("link_filter", "expected"),
    [
        (LinkFilter(url_regex="example"), ["Rust book", "Python tips"]),  # unanchored
        (LinkFilter(url_regex=r"^https://"), ["Weekly digest", "Go docs", "Python tips"]),
        (LinkFilter(url_regex=r"\.org/"), ["Rust book", "Go docs"]),
        (LinkFilter(title_regex="o"), ["Rust book", "Go docs", "Python tips"]),
        (LinkFilter(title_regex="^Go"), ["Go docs"]),
        (LinkFilter(title_regex="(?i)python"), ["Python tips"]),
        (LinkFilter(title_regex="python"), []),  # case-sensitive unless asked
        (LinkFilter(description_regex="python"), ["Weekly digest"]),
        (LinkFilter(description_regex="snake|gopher"), ["Go docs", "Python tips"]),
        (LinkFilter(description_regex=r";\s"), ["Rust book"]),
        (LinkFilter(tag="python"), ["Rust book", "Python tips"]),
        (LinkFilter(tag="py"), ["Python tips"]),  # exact, not a prefix
        (LinkFilter(tag="pyt"), []),
        (LinkFilter(tag=" go "), ["Go docs"]),
        (LinkFilter(tag="Python"), []),
        (LinkFilter(url_regex="example", tag="python"), ["Rust book", "Python tips"]),
        (LinkFilter(url_regex="example", title_regex="Rust", tag="python"), ["Rust book"]),
        (LinkFilter(url_regex="python", description_regex="weekly"), ["Weekly digest"]),
        (LinkFilter(url_regex="golang", tag="python"), []),
        (
            LinkFilter(url_regex="e", title_regex="s", description_regex="a", tag="python"),
            ["Python tips"],
        ),
        (
            LinkFilter(url_regex="", title_regex=""),
            ["Weekly digest", "Rust book", "Go docs", "Python tips"],
        ),
    ],
)
async def test_filters(
    links: LinkService, catalogue: dict[str, Link], link_filter: LinkFilter, expected: list[str]
) -> None:
    assert await titles(links, link_filter) == expected


@pytest.mark.parametrize("field", ["url_regex", "title_regex", "description_regex"])
@pytest.mark.parametrize(
    "pattern",
    [
        pytest.param("a(", id="unbalanced"),
        pytest.param("[z-a]", id="bad-range"),
        pytest.param("*a", id="nothing-to-repeat"),
        pytest.param("((a{100}){100}){100}", id="giant-repetition"),
        pytest.param("a{1001}", id="repetition-over-1000"),
        pytest.param("(a)\\1", id="backreference"),
        pytest.param("x" * (MAX_REGEX + 1), id="too-long"),
    ],
)
async def test_bad_regex_is_invalid_argument(
    links: LinkService, catalogue: dict[str, Link], field: str, pattern: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await links.get_links(GetLinksRequest(username=USER, filter=LinkFilter(**{field: pattern})))
    assert caught.value.code == "invalid_regex"
    assert field in caught.value.message


async def test_regex_at_the_length_cap_is_accepted(
    links: LinkService, catalogue: dict[str, Link]
) -> None:
    pattern = "^Go docs$|" + "x" * (MAX_REGEX - 10)
    assert len(pattern) == MAX_REGEX
    assert await titles(links, LinkFilter(title_regex=pattern)) == ["Go docs"]


@pytest.mark.parametrize("field", ["url_regex", "title_regex", "description_regex"])
async def test_pathological_regex_runs_in_linear_time(
    link_store: FakeLinkStore, page_tokens: PageTokens, clock: Clock, field: str
) -> None:
    service = LinkService(link_store, page_tokens, clock=clock)
    for i in range(40):
        await service.add_link(
            add(
                url=f"https://example.com/{'a' * 1900}{i}",
                title="a" * 500,
                description="a" * 8000,
            )
        )
    started = time.perf_counter()
    for pattern in ("(a*)*b", "(a+)+$b", "(a|aa)*!", "(.*a){20}b"):
        result = await service.get_links(
            GetLinksRequest(username=USER, filter=LinkFilter(**{field: pattern}), limit=100)
        )
        assert result.links == []
    # A backtracking engine would need longer than the age of the universe here.
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize("limit", [0, -1, 101, 10_000])
async def test_page_size_out_of_range_is_invalid_argument(
    links: LinkService, catalogue: dict[str, Link], limit: int
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await links.get_links(GetLinksRequest(username=USER, limit=limit))
    assert caught.value.code == "invalid_limit"


@pytest.mark.parametrize("limit", [1, 100])
async def test_page_size_limits_are_accepted(
    links: LinkService, catalogue: dict[str, Link], limit: int
) -> None:
    result = await links.get_links(GetLinksRequest(username=USER, limit=limit))
    assert len(result.links) == min(limit, 4)


@pytest.mark.parametrize("tag", ["", "   ", "x" * (MAX_TAG + 1)])
async def test_bad_tag_filter_is_invalid_argument(
    links: LinkService, catalogue: dict[str, Link], tag: str
) -> None:
    with pytest.raises(InvalidArgument):
        await links.get_links(GetLinksRequest(username=USER, filter=LinkFilter(tag=tag)))


async def test_get_links_without_username_is_invalid_argument(links: LinkService) -> None:
    with pytest.raises(InvalidArgument):
        await links.get_links(GetLinksRequest(username=""))


async def test_page_tokens_need_a_real_secret() -> None:
    with pytest.raises(ValueError):
        PageTokens(b"short")
