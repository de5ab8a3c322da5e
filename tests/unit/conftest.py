"""Unit-test fixtures: the managers on top of the in-memory fakes, with a controllable clock."""

from __future__ import annotations

import datetime as dt

import pytest

from delinkcious.links.manager import LinkService
from delinkcious.links.paging import PageTokens
from tests.fakes import FakeLinkStore, FakeUserStore

T0 = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)


class Clock:
    """A clock that stands still until a test moves it."""

    def __init__(self, now: dt.datetime = T0) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> dt.datetime:
        self.now += dt.timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def link_store() -> FakeLinkStore:
    return FakeLinkStore()


@pytest.fixture
def page_tokens() -> PageTokens:
    return PageTokens(b"unit-test-secret-0123456789abcdef")


@pytest.fixture
def links(link_store: FakeLinkStore, page_tokens: PageTokens, clock: Clock) -> LinkService:
    return LinkService(link_store, page_tokens, max_links_per_user=1000, clock=clock)


@pytest.fixture
def user_store() -> FakeUserStore:
    return FakeUserStore()
