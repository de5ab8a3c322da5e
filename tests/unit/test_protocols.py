"""The managers satisfy the model's runtime-checkable Protocols (and the check has teeth)."""

from __future__ import annotations

from argon2 import PasswordHasher

from delinkcious.links.manager import LinkService
from delinkcious.model import LinkManager, UserManager
from delinkcious.users.manager import UserService
from delinkcious.users.session_cache import CachedUserManager


class HalfALinkManager:
    async def get_links(self, request): ...

    async def add_link(self, request): ...


def test_managers_implement_their_protocols(link_store, page_tokens, user_store) -> None:
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
