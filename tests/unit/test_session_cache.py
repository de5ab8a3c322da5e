"""CachedUserManager: resolve_session answers without the inner manager, briefly."""

from __future__ import annotations

import asyncio
import types
from collections import Counter

import pytest
from argon2 import PasswordHasher

from delinkcious.model import Unauthenticated, User, UserManager
from delinkcious.users import session_cache
from delinkcious.users.manager import UserService
from delinkcious.users.session_cache import CachedUserManager
from tests.fakes import FakeUserStore
from tests.unit.conftest import Clock

PASSWORD = "correct horse battery"


class CountingUserManager:
    """A UserManager that counts the calls reaching it."""

    def __init__(self, inner: UserManager) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()

    async def register(self, username: str, email: str, password: str) -> User:
        self.calls["register"] += 1
        return await self.inner.register(username, email, password)

    async def login(self, username: str, password: str) -> str:
        self.calls["login"] += 1
        return await self.inner.login(username, password)

    async def logout(self, token: str) -> None:
        self.calls["logout"] += 1
        await self.inner.logout(token)

    async def get_user(self, username: str) -> User:
        self.calls["get_user"] += 1
        return await self.inner.get_user(username)

    async def resolve_session(self, token: str) -> str:
        self.calls["resolve_session"] += 1
        return await self.inner.resolve_session(token)


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def monotonic(monkeypatch: pytest.MonkeyPatch) -> FakeMonotonic:
    fake = FakeMonotonic()
    # Only the cache's view of time moves; the event loop keeps the real clock.
    monkeypatch.setattr(session_cache, "time", types.SimpleNamespace(monotonic=fake))
    return fake


@pytest.fixture
def inner(user_store: FakeUserStore, clock: Clock) -> CountingUserManager:
    hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    return CountingUserManager(UserService(user_store, hasher=hasher, clock=clock))


@pytest.fixture
def cached(inner: CountingUserManager, monotonic: FakeMonotonic) -> CachedUserManager:
    return CachedUserManager(inner, ttl=5.0, max_entries=3)


@pytest.fixture
async def token(cached: CachedUserManager) -> str:
    await cached.register("alice", "alice@example.com", PASSWORD)
    return await cached.login("alice", PASSWORD)


async def test_cached_user_manager_is_a_user_manager(cached: CachedUserManager) -> None:
    assert isinstance(cached, UserManager)


async def test_register_and_login_pass_through(
    cached: CachedUserManager, inner: CountingUserManager, token: str
) -> None:
    assert inner.calls["register"] == 1
    assert inner.calls["login"] == 1
    assert await inner.inner.resolve_session(token) == "alice"


async def test_resolve_session_is_cached(
    cached: CachedUserManager, inner: CountingUserManager, token: str
) -> None:
    for _ in range(5):
        assert await cached.resolve_session(token) == "alice"
    assert inner.calls["resolve_session"] == 1


async def test_logout_invalidates_the_cached_entry_at_once(
    cached: CachedUserManager, inner: CountingUserManager, token: str
) -> None:
    assert await cached.resolve_session(token) == "alice"
    other = await cached.login("alice", PASSWORD)
    assert await cached.resolve_session(other) == "alice"
    await cached.logout(token)
    with pytest.raises(Unauthenticated):
        await cached.resolve_session(token)
    assert inner.calls["logout"] == 1
    # The other session stays valid, and cached.
    calls = inner.calls["resolve_session"]
    assert await cached.resolve_session(other) == "alice"
    assert inner.calls["resolve_session"] == calls


async def test_entries_expire_after_the_ttl(
    cached: CachedUserManager, inner: CountingUserManager, monotonic: FakeMonotonic, token: str
) -> None:
    assert await cached.resolve_session(token) == "alice"
    monotonic.now += 4.9
    assert await cached.resolve_session(token) == "alice"
    assert inner.calls["resolve_session"] == 1
    monotonic.now += 0.2
    assert await cached.resolve_session(token) == "alice"
    assert inner.calls["resolve_session"] == 2


async def test_a_revocation_elsewhere_is_seen_after_the_ttl(
    cached: CachedUserManager, inner: CountingUserManager, monotonic: FakeMonotonic, token: str
) -> None:
    assert await cached.resolve_session(token) == "alice"
    await inner.logout(token)  # another replica's logout: this cache does not hear of it
    assert await cached.resolve_session(token) == "alice"
    monotonic.now += 5.1
    with pytest.raises(Unauthenticated):
        await cached.resolve_session(token)


async def test_failures_are_not_cached(
    cached: CachedUserManager, inner: CountingUserManager
) -> None:
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            await cached.resolve_session("unknown")
    assert inner.calls["resolve_session"] == 3


async def test_the_cache_is_bounded(
    cached: CachedUserManager, inner: CountingUserManager, monotonic: FakeMonotonic, token: str
) -> None:
    tokens = [token] + [await cached.login("alice", PASSWORD) for _ in range(3)]
    for each in tokens:
        assert await cached.resolve_session(each) == "alice"
    assert inner.calls["resolve_session"] == 4
    # The oldest entry was evicted and needs the inner manager again; the newest did not.
    await cached.resolve_session(tokens[-1])
    assert inner.calls["resolve_session"] == 4
    await cached.resolve_session(tokens[0])
    assert inner.calls["resolve_session"] == 5


async def test_logout_of_an_unknown_token_is_unauthenticated(cached: CachedUserManager) -> None:
    with pytest.raises(Unauthenticated):
        await cached.logout("unknown")


async def test_concurrent_misses_share_one_lookup(
    cached: CachedUserManager,
    inner: CountingUserManager,
    token: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An expiring busy token must not send every request in flight to the database."""
    real_resolve = inner.resolve_session

    async def resolve_over_the_network(value: str) -> str:
        await asyncio.sleep(0.01)  # a real store suspends: the other requests arrive meanwhile
        return await real_resolve(value)

    monkeypatch.setattr(inner, "resolve_session", resolve_over_the_network)
    names = await asyncio.gather(*(cached.resolve_session(token) for _ in range(20)))
    assert names == ["alice"] * 20
    assert inner.calls["resolve_session"] == 1


async def test_a_lookup_that_straddles_a_logout_is_not_cached(
    cached: CachedUserManager,
    inner: CountingUserManager,
    token: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    looked_up, gate = asyncio.Event(), asyncio.Event()
    real_resolve = inner.resolve_session

    async def slow_resolve(value: str) -> str:
        username = await real_resolve(value)
        looked_up.set()
        await gate.wait()  # the answer is on its way back when the logout happens
        return username

    monkeypatch.setattr(inner, "resolve_session", slow_resolve)
    pending = asyncio.create_task(cached.resolve_session(token))
    await looked_up.wait()
    await cached.logout(token)
    gate.set()
    assert await pending == "alice"
    with pytest.raises(Unauthenticated):
        await cached.resolve_session(token)
