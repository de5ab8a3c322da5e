"""The links service's storage port: what the manager needs from persistence, nothing more."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from delinkcious.model.links import Link


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
    async def insert(self, username: str, link: Link, max_links: int) -> None:
        """Store a new link; raise AlreadyExists for a known url, LimitExceeded past max_links."""
        ...

    async def get(self, username: str, url: str) -> Link | None: ...

    async def replace(self, username: str, expected_updated_at: dt.datetime, link: Link) -> bool:
        """Overwrite the link with the same url if it is unchanged since read; False otherwise."""
        ...

    async def delete(self, username: str, url: str) -> bool: ...

    async def page(
        self, username: str, tag: str | None, after: Cursor | None, limit: int
    ) -> list[StoredLink]:
        """Up to ``limit`` links strictly after ``after``, newest first, with the tag if given."""
        ...
