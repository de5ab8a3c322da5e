"""The managers satisfy the model's runtime-checkable Protocols (and the check has teeth)."""

from __future__ import annotations

from argon2 import PasswordHasher

from delinkcious.links.manager import LinkService
from delinkcious.links.paging import PageTokens
from delinkcious.model import (
    AddLinkRequest,
    GetLinksRequest,
    GetLinksResult,
    Link,
    LinkManager,
    UserManager,
)
from delinkcious.users.manager import UserService
from delinkcious.users.session_cache import CachedUserManager
from tests.fakes import FakeLinkStore, FakeUserStore


class HalfALinkManager:
    async def get_links(self, request: GetLinksRequest) -> GetLinksResult:
        raise NotImplementedError

    async def add_link(self, request: AddLinkRequest) -> Link:
        raise NotImplementedError


def test_managers_implement_their_protocols(
    link_store: FakeLinkStore, page_tokens: PageTokens, user_store: FakeUserStore
) -> None:
    links = LinkService(link_store, page_tokens)
    users = UserService(
        user_store, hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )
    cached = CachedUserManager(users)
    assert isinstance(links, LinkManager)
    assert isinstance(users, UserManager)
    assert isinstance(cached, UserManager)
    assert not isinstance(links, UserManager)
    assert not isinstance(users, LinkManager)
    assert not isinstance(HalfALinkManager(), LinkManager)
