"""A short-lived cache of resolved sessions, so a request costs no database round trip.

A logout through this cache takes effect here at once; other caches (other gateway
replicas) forget a revoked token within ``ttl`` seconds.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from delinkcious.model.users import User, UserManager


class CachedUserManager:
    """Wraps any ``UserManager``; caches only successful ``resolve_session`` answers."""

    def __init__(self, inner: UserManager, ttl: float = 5.0, max_entries: int = 10_000) -> None:
        self._inner = inner
        self._ttl = ttl
        self._max = max_entries
        self._entries: OrderedDict[str, tuple[float, str]] = OrderedDict()

    async def register(self, username: str, email: str, password: str) -> User:
        return await self._inner.register(username, email, password)

    async def login(self, username: str, password: str) -> str:
        return await self._inner.login(username, password)

    async def get_user(self, username: str) -> User:
        return await self._inner.get_user(username)

    async def logout(self, token: str) -> None:
        self._entries.pop(token, None)
        await self._inner.logout(token)

    async def resolve_session(self, token: str) -> str:
        now = time.monotonic()
        entry = self._entries.get(token)
        if entry is not None:
            if entry[0] > now:
                return entry[1]
            del self._entries[token]
        username = await self._inner.resolve_session(token)
        self._entries[token] = (now + self._ttl, username)
        if len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return username
