"""Page tokens of a links listing: the last row's position, sealed by ``SignedTokens``.

A token is bound to the user and the filter it was issued for, so it can never be replayed
on another query or another user's links, and it expires.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

import orjson

from delinkcious.links.store import Cursor
from delinkcious.model.links import LinkFilter
from delinkcious.platform.page_tokens import SignedTokens


def _scope(username: str, link_filter: LinkFilter) -> str:
    parts = (
        username,
        link_filter.url_regex,
        link_filter.title_regex,
        link_filter.description_regex,
        link_filter.tag,
    )
    return "links/" + orjson.dumps(parts).decode()


class PageTokens:
    def __init__(
        self, secret: bytes, ttl_seconds: int = 86_400, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._tokens = SignedTokens(secret, ttl_seconds, clock=clock)

    def encode(self, username: str, link_filter: LinkFilter, cursor: Cursor) -> str:
        return self._tokens.seal(
            _scope(username, link_filter), {"t": cursor.created_at.isoformat(), "i": cursor.id}
        )

    def decode(self, token: str, username: str, link_filter: LinkFilter) -> Cursor:
        data = self._tokens.open(token, _scope(username, link_filter))
        return Cursor(created_at=dt.datetime.fromisoformat(data["t"]), id=data["i"])
