"""The social graph's storage port."""

from __future__ import annotations

from typing import Protocol


class FollowStore(Protocol):
    async def add(self, followed: str, follower: str) -> bool:
        """Record the edge; False when it already exists."""
        ...

    async def remove(self, followed: str, follower: str) -> bool:
        """Drop the edge; False when there was none."""
        ...

    async def following(self, follower: str) -> list[str]: ...

    async def followers(self, followed: str) -> list[str]: ...
