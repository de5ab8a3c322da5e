"""``SocialGraphService``: follow rules over a ``FollowStore``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from delinkcious.model.errors import AlreadyExists, InvalidArgument, NotFound
from delinkcious.model.validation import normalize_username
from delinkcious.social_graph.store import FollowStore

UserExists = Callable[[str], Awaitable[bool]]


class SocialGraphService:
    """Implements ``SocialGraphManager``; asks the users service whether a username exists."""

    def __init__(self, store: FollowStore, user_exists: UserExists) -> None:
        self._store = store
        self._user_exists = user_exists

    async def _known(self, username: str, role: str) -> str:
        try:
            canonical = normalize_username(username)
        except InvalidArgument:
            raise NotFound(f"no user named {username!r}", code="user_not_found") from None
        if not await self._user_exists(canonical):
            raise NotFound(f"no user named {canonical!r} ({role})", code="user_not_found")
        return canonical

    async def follow(self, followed: str, follower: str) -> None:
        followed = await self._known(followed, "followed")
        follower = await self._known(follower, "follower")
        if followed == follower:
            raise InvalidArgument("you cannot follow yourself", code="cannot_follow_self")
        if not await self._store.add(followed, follower):
            raise AlreadyExists(f"you already follow {followed!r}", code="already_following")

    async def unfollow(self, followed: str, follower: str) -> None:
        followed = await self._known(followed, "followed")
        follower = await self._known(follower, "follower")
        if not await self._store.remove(followed, follower):
            raise NotFound(f"you do not follow {followed!r}", code="not_following")

    async def get_following(self, username: str) -> list[str]:
        return await self._store.following(normalize_username(username))

    async def get_followers(self, username: str) -> list[str]:
        return await self._store.followers(normalize_username(username))
