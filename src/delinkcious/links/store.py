"""The links service's storage port: what the manager needs from persistence, nothing more."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from delinkcious.model.events import Event
from delinkcious.model.links import Link, LinkStatus


@dataclass(frozen=True, slots=True, order=True)
class Cursor:
    """A position in a user's newest-first listing.

    The id breaks ties between links created in the same microsecond, so a page border
    never repeats or skips a row, whatever is inserted between page reads.
    """

    created_at: dt.datetime
    id: int


@dataclass(frozen=True, slots=True)
class StoredLink:
    cursor: Cursor
    link: Link


class LinkStore(Protocol):
    """Every change is written together with its event (the outbox), in one transaction."""

    async def insert(self, username: str, link: Link, max_links: int, event: Event) -> None:
        """Store a new link; raise AlreadyExists for a known url, LimitExceeded past max_links."""
        ...

    async def get(self, username: str, url: str) -> Link | None: ...

    async def replace(
        self, username: str, expected_updated_at: dt.datetime, link: Link, event: Event
    ) -> bool:
        """Overwrite the link with the same url if it is unchanged since read; False otherwise."""
        ...

    async def delete(self, username: str, url: str, event: Event) -> bool: ...

    async def set_status(
        self, username: str, url: str, status: LinkStatus, consumer: str, event_id: str
    ) -> bool:
        """Apply a check result once: False if the link is gone or the event was applied."""
        ...

    async def page(
        self, username: str, tag: str | None, after: Cursor | None, limit: int
    ) -> list[StoredLink]:
        """Up to ``limit`` links strictly after ``after``, newest first, with the tag if given."""
        ...
