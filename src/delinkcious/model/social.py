"""The social graph: who follows whom, and the ``SocialGraphManager`` port."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from delinkcious.model.markers import idempotent


@runtime_checkable
class SocialGraphManager(Protocol):
    async def follow(self, followed: str, follower: str) -> None:
        """Raise InvalidArgument for oneself, AlreadyExists if already, NotFound for unknowns."""
        ...

    async def unfollow(self, followed: str, follower: str) -> None:
        """Raise NotFound when ``follower`` does not follow ``followed``."""
        ...

    @idempotent
    async def get_following(self, username: str) -> list[str]: ...

    @idempotent
    async def get_followers(self, username: str) -> list[str]: ...
