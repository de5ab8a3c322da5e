"""The news service's storage port: capped, idempotent per-user feeds of events."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import NamedTuple, Protocol

from delinkcious.model.events import Event

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


class NewsCursor(NamedTuple):
    """A position in a feed, newest first: event time (UTC), then event id.

    The id breaks ties between events of the same microsecond, so a page border never
    repeats or skips an event. Ids compare as Python strings (code points, the same order
    as UTF-8 bytes), which is how Redis orders equal scores and how SQLite and a ``C``
    collation order text.
    """

    time: dt.datetime
    event_id: str


class FeedItem(NamedTuple):
    cursor: NewsCursor
    event: Event


def cursor_of(event: Event) -> NewsCursor:
    """Where an event sits in every feed; a naive time is taken to be UTC."""
    time = event.time if event.time.tzinfo else event.time.replace(tzinfo=dt.UTC)
    return NewsCursor(time.astimezone(dt.UTC), event.id)


def to_micros(time: dt.datetime) -> int:
    """Microseconds since the epoch: exact in integer arithmetic and in a double (< 2**53)."""
    return (time - _EPOCH) // _MICROSECOND


def from_micros(micros: int) -> dt.datetime:
    return _EPOCH + micros * _MICROSECOND


class NewsStore(Protocol):
    async def append(self, usernames: Sequence[str], event: Event, cap: int) -> None:
        """Add ``event`` to each user's feed, then drop the oldest events past ``cap``.

        Idempotent by event id per feed: appending an event again changes nothing, even
        once the event has been trimmed away (it is older than everything kept).
        """
        ...

    async def page(self, username: str, after: NewsCursor | None, limit: int) -> list[FeedItem]:
        """Up to ``limit`` events strictly after ``after``, newest first."""
        ...
