"""Events: facts that already happened, carried by the bus between services."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson


class EventType(StrEnum):
    LINK_ADDED = "link.added"
    LINK_UPDATED = "link.updated"
    LINK_DELETED = "link.deleted"
    LINK_CHECKED = "link.checked"


LINK_CHANGES = frozenset({EventType.LINK_ADDED, EventType.LINK_UPDATED, EventType.LINK_DELETED})


@dataclass(frozen=True, slots=True)
class Event:
    """One fact. ``id`` is unique per fact: consumers use it to ignore redeliveries.

    ``trace`` holds the W3C trace context (``traceparent``/``tracestate``) of the request
    that caused the fact, so one request stays one trace across the bus.
    ``data`` holds what only some types need (``status`` and ``reason`` of link.checked).
    """

    type: EventType
    author: str
    url: str
    title: str = ""
    tags: tuple[str, ...] = ()
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    time: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    trace: dict[str, str] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "id": self.id,
                "type": self.type.value,
                "time": self.time.isoformat(),
                "author": self.author,
                "url": self.url,
                "title": self.title,
                "tags": list(self.tags),
                "trace": self.trace,
                "data": self.data,
            }
        )

    @classmethod
    def from_json(cls, payload: bytes | str) -> Event:
        raw = orjson.loads(payload)
        return cls(
            id=raw["id"],
            type=EventType(raw["type"]),
            time=dt.datetime.fromisoformat(raw["time"]),
            author=raw["author"],
            url=raw["url"],
            title=raw.get("title", ""),
            tags=tuple(raw.get("tags", ())),
            trace=dict(raw.get("trace", {})),
            data=dict(raw.get("data", {})),
        )
