"""``LinkService``: the links domain logic behind the ``LinkManager`` Protocol."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from delinkcious.links.filtering import compile_filter
from delinkcious.links.paging import PageTokens
from delinkcious.links.store import LinkStore, StoredLink
from delinkcious.model.errors import InvalidArgument, NotFound, Unavailable
from delinkcious.model.events import Event, EventType
from delinkcious.model.links import (
    AddLinkRequest,
    GetLinksRequest,
    GetLinksResult,
    Link,
    LinkStatus,
    UpdateLinkRequest,
)
from delinkcious.model.validation import (
    check_description,
    check_page_size,
    check_tags,
    check_title,
    check_url,
)

_SCAN_BATCH = 200
_UPDATE_ATTEMPTS = 5
# updated_at moves forward on every change: it doubles as the optimistic-concurrency version.
_TICK = dt.timedelta(microseconds=1)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _check_username(username: str) -> str:
    if not username:
        raise InvalidArgument("username is required", code="invalid_username")
    return username


class LinkService:
    """Implements ``LinkManager``: validation, filtering and paging over a ``LinkStore``."""

    def __init__(
        self,
        store: LinkStore,
        page_tokens: PageTokens,
        *,
        max_links_per_user: int = 1000,
        clock: Callable[[], dt.datetime] = utcnow,
        trace_context: Callable[[], dict[str, str]] = dict,
    ) -> None:
        self._store = store
        self._tokens = page_tokens
        self._max_links = max_links_per_user
        self._clock = clock
        self._trace_context = trace_context

    async def get_links(self, request: GetLinksRequest) -> GetLinksResult:
        username = _check_username(request.username)
        limit = check_page_size(request.limit)
        compiled = compile_filter(request.filter)
        after = (
            self._tokens.decode(request.start_token, username, request.filter)
            if request.start_token
            else None
        )
        found: list[StoredLink] = []
        if not compiled.needs_scan:
            found = await self._store.page(username, compiled.tag, after, limit + 1)
        else:
            # Regexes run here, on RE2, in batches: the per-user link cap bounds the scan.
            while len(found) <= limit:
                batch = await self._store.page(username, compiled.tag, after, _SCAN_BATCH)
                found.extend(row for row in batch if compiled.matches(row.link))
                if len(batch) < _SCAN_BATCH:
                    break
                after = batch[-1].cursor
        page = found[:limit]
        next_token = (
            self._tokens.encode(username, request.filter, page[-1].cursor)
            if len(found) > limit
            else None
        )
        return GetLinksResult(links=[row.link for row in page], next_page_token=next_token)

    async def add_link(self, request: AddLinkRequest) -> Link:
        username = _check_username(request.username)
        now = self._clock()
        link = Link(
            url=check_url(request.url),
            title=check_title(request.title),
            description=check_description(request.description),
            tags=check_tags(request.tags),
            status=LinkStatus.PENDING,
            created_at=now,
            updated_at=now,
        )
        await self._store.insert(
            username, link, self._max_links, self._event(EventType.LINK_ADDED, username, link)
        )
        return link

    async def update_link(self, request: UpdateLinkRequest) -> Link:
        username = _check_username(request.username)
        url = check_url(request.url)
        title = check_title(request.title) if request.title is not None else None
        description = (
            check_description(request.description) if request.description is not None else None
        )
        add_tags = check_tags(request.add_tags)
        remove_tags = check_tags(request.remove_tags)
        # Optimistic concurrency: re-read and retry when another writer got there first,
        # so two concurrent tag edits never lose one another.
        for _ in range(_UPDATE_ATTEMPTS):
            current = await self._store.get(username, url)
            if current is None:
                raise NotFound(f"no link with url {url!r}", code="link_not_found")
            updated = Link(
                url=current.url,
                title=title if title is not None else current.title,
                description=description if description is not None else current.description,
                tags=check_tags((current.tags | add_tags) - remove_tags),
                status=current.status,
                created_at=current.created_at,
                updated_at=max(self._clock(), current.updated_at + _TICK),
            )
            event = self._event(EventType.LINK_UPDATED, username, updated)
            if await self._store.replace(username, current.updated_at, updated, event):
                return updated
        raise Unavailable(
            "the link is being changed concurrently; try again", code="conflict_retry"
        )

    async def delete_link(self, username: str, url: str) -> None:
        username = _check_username(username)
        url = check_url(url)
        link = await self._store.get(username, url)
        deleted = link is not None and await self._store.delete(
            username, url, self._event(EventType.LINK_DELETED, username, link, self._clock())
        )
        if not deleted:
            raise NotFound(f"no link with url {url!r}", code="link_not_found")

    def _event(
        self, event_type: EventType, username: str, link: Link, time: dt.datetime | None = None
    ) -> Event:
        return Event(
            type=event_type,
            author=username,
            url=link.url,
            title=link.title,
            tags=tuple(sorted(link.tags)),
            time=time or link.updated_at,
            trace=self._trace_context(),
        )
