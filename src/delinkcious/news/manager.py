"""``NewsService`` (reads feeds, the ``NewsManager`` Protocol) and ``NewsConsumer`` (fills them).

Feeds are written on fan-out: when a link changes, its author's followers each get the
event in their own feed, so reading news is one keyset query on one feed.
"""

from __future__ import annotations

from typing import ClassVar

from delinkcious.model.errors import InvalidArgument
from delinkcious.model.events import LINK_CHANGES, Event, EventType
from delinkcious.model.news import GetNewsRequest, GetNewsResult
from delinkcious.model.social import SocialGraphManager
from delinkcious.model.validation import check_page_size
from delinkcious.news.store import NewsCursor, NewsStore, from_micros, to_micros
from delinkcious.platform.page_tokens import SignedTokens

DEFAULT_FEED_CAP = 1000


def _check_username(username: str) -> str:
    if not username:
        raise InvalidArgument("username is required", code="invalid_username")
    return username


def _scope(username: str) -> str:
    # Names the listing too, so a token of another listing signed with the same secret
    # cannot be replayed here.
    return f"news/{username}"


class NewsService:
    """Implements ``NewsManager``: a user's feed, newest first, paged by signed cursor."""

    def __init__(self, store: NewsStore, page_tokens: SignedTokens) -> None:
        self._store = store
        self._tokens = page_tokens

    async def get_news(self, request: GetNewsRequest) -> GetNewsResult:
        username = _check_username(request.username)
        limit = check_page_size(request.limit)
        after = self._decode(request.start_token, username) if request.start_token else None
        # One extra event says whether there is a next page without another query.
        found = await self._store.page(username, after, limit + 1)
        page = found[:limit]
        next_token = self._encode(username, page[-1].cursor) if len(found) > limit else None
        return GetNewsResult(events=[item.event for item in page], next_page_token=next_token)

    def _encode(self, username: str, cursor: NewsCursor) -> str:
        return self._tokens.seal(
            _scope(username), {"t": to_micros(cursor.time), "i": cursor.event_id}
        )

    def _decode(self, token: str, username: str) -> NewsCursor:
        data = self._tokens.open(token, _scope(username))
        return NewsCursor(from_micros(data["t"]), data["i"])


class NewsConsumer:
    """Handles link changes from the bus: appends each to the author's followers' feeds.

    Subscribe ``handle`` to ``types``. Errors (the social graph or the store being down)
    propagate so the bus redelivers; the store's idempotent append makes that safe.
    """

    types: ClassVar[frozenset[EventType]] = LINK_CHANGES

    def __init__(
        self,
        store: NewsStore,
        social_graph: SocialGraphManager,
        *,
        feed_cap: int = DEFAULT_FEED_CAP,
    ) -> None:
        if feed_cap < 1:
            raise ValueError("the feed cap must be at least 1")
        self._store = store
        self._social_graph = social_graph
        self._cap = feed_cap

    async def handle(self, event: Event) -> None:
        if event.type not in self.types:
            return
        followers = await self._social_graph.get_followers(event.author)
        if followers:
            await self._store.append(followers, event, self._cap)
