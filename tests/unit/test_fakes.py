"""The fakes' own rules that the manager tests do not reach: the optional outbox."""

from __future__ import annotations

import datetime as dt

import pytest

from delinkcious.model import AlreadyExists, Link, LinkStatus
from tests.fakes import FakeLinkStore

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
LINK = Link(
    url="https://example.com/",
    title="t",
    description="",
    tags=frozenset(),
    status=LinkStatus.PENDING,
    created_at=T0,
    updated_at=T0,
)


async def test_only_committed_changes_reach_the_outbox() -> None:
    store = FakeLinkStore()
    await store.insert("alice", LINK, 10, "added")
    with pytest.raises(AlreadyExists):
        await store.insert("alice", LINK, 10, "duplicate")
    later = T0 + dt.timedelta(seconds=1)
    changed = Link(**{**{f: getattr(LINK, f) for f in LINK.__slots__}, "updated_at": later})
    assert not await store.replace("alice", later, changed, "stale")
    assert await store.replace("alice", T0, changed, "updated")
    assert not await store.delete("alice", "https://example.com/other", "missing")
    assert await store.delete("alice", LINK.url, "deleted")
    assert store.outbox == ["added", "updated", "deleted"]


async def test_set_status_applies_each_event_once() -> None:
    store = FakeLinkStore()
    await store.insert("alice", LINK, 10)
    assert await store.set_status("alice", LINK.url, LinkStatus.VALID, "links", "e1")
    assert not await store.set_status("alice", LINK.url, LinkStatus.INVALID, "links", "e1")
    stored = await store.get("alice", LINK.url)
    assert stored is not None
    assert stored.status is LinkStatus.VALID
    assert not await store.set_status(
        "alice", "https://example.com/gone", LinkStatus.VALID, "links", "e2"
    )
    assert not await store.set_status(
        "alice", "https://example.com/gone", LinkStatus.VALID, "links", "e2"
    )
    assert await store.set_status("alice", LINK.url, LinkStatus.INVALID, "other", "e1")
    assert store.outbox == []
