"""Links: the value types and the ``LinkManager`` port (the book's object_model)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

from delinkcious.model.markers import idempotent


class LinkStatus(StrEnum):
    PENDING = "pending"
    VALID = "valid"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class Link:
    url: str
    title: str
    description: str
    tags: frozenset[str]
    status: LinkStatus
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class LinkFilter:
    """Which of a user's links to return; every field is optional and they combine (AND)."""

    url_regex: str | None = None
    title_regex: str | None = None
    description_regex: str | None = None
    tag: str | None = None


@dataclass(frozen=True, slots=True)
class GetLinksRequest:
    username: str
    filter: LinkFilter = field(default_factory=LinkFilter)
    start_token: str | None = None
    limit: int = 10


@dataclass(frozen=True, slots=True)
class GetLinksResult:
    links: list[Link]
    next_page_token: str | None


@dataclass(frozen=True, slots=True)
class AddLinkRequest:
    username: str
    url: str
    title: str
    description: str = ""
    tags: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class UpdateLinkRequest:
    """Change a link found by url; ``None`` leaves a field as it is."""

    username: str
    url: str
    title: str | None = None
    description: str | None = None
    add_tags: frozenset[str] = frozenset()
    remove_tags: frozenset[str] = frozenset()


@runtime_checkable
class LinkManager(Protocol):
    @idempotent
    async def get_links(self, request: GetLinksRequest) -> GetLinksResult: ...

    async def add_link(self, request: AddLinkRequest) -> Link: ...

    async def update_link(self, request: UpdateLinkRequest) -> Link: ...

    async def delete_link(self, username: str, url: str) -> None: ...
