"""News feeds: what the people you follow did, and the ``NewsManager`` port."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from delinkcious.model.events import Event
from delinkcious.model.markers import idempotent


@dataclass(frozen=True, slots=True)
class GetNewsRequest:
    username: str
    start_token: str | None = None
    limit: int = 10


@dataclass(frozen=True, slots=True)
class GetNewsResult:
    """Newest first; each event names its author, url, title, type and time."""

    events: list[Event]
    next_page_token: str | None


@runtime_checkable
class NewsManager(Protocol):
    @idempotent
    async def get_news(self, request: GetNewsRequest) -> GetNewsResult: ...
