"""Contract of SqlUserStore (and UserService on top of it) on real SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from delinkcious.model import AlreadyExists, InvalidArgument, Unauthenticated, User
from delinkcious.platform.db import create_engine
from delinkcious.platform.migrations import upgrade
from delinkcious.users.manager import UserService, token_hash
from delinkcious.users.session_cache import CachedUserManager
from delinkcious.users.sql_store import SqlUserStore
from delinkcious.users.store import Credentials, Session
from delinkcious.users.tables import sessions

T0 = dt.datetime(2026, 4, 5, 6, 7, 8, 901234, tzinfo=dt.UTC)
PASSWORD = "correct horse battery"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


def cheap_hasher() -> PasswordHasher:
    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture
def store(users_engine: AsyncEngine) -> SqlUserStore:
    return SqlUserStore(users_engine)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(store: SqlUserStore, clock: Clock) -> UserService:
    return UserService(store, session_ttl=dt.timedelta(hours=1), hasher=cheap_hasher(), clock=clock)


def user(name: str = "alice") -> User:
    return User(username=name, email=f"{name}@example.com", created_at=T0)


async def session_count(engine: AsyncEngine, username: str | None = None) -> int:
    query = select(func.count()).select_from(sessions)
    if username is not None:
        query = query.where(sessions.c.username == username)
    async with engine.connect() as conn:
        count = await conn.scalar(query)
    assert count is not None
    return count


async def credentials_of(store: SqlUserStore, username: str) -> Credentials:
    """The stored credentials of a user the test expects to exist."""
    credentials = await store.get_credentials(username)
    assert credentials is not None
    return credentials


# -- the store -----------------------------------------------------------------------------


async def test_user_roundtrip(store: SqlUserStore) -> None:
    await store.add_user(user(), "$argon2id$hash")
    credentials = await credentials_of(store, "alice")
    assert credentials.user == user()
    assert credentials.user.created_at.utcoffset() == dt.timedelta(0)
    assert credentials.password_hash == "$argon2id$hash"
    assert await store.get_credentials("bob") is None


async def test_duplicate_username_is_already_exists(store: SqlUserStore) -> None:
    await store.add_user(user(), "first")
    with pytest.raises(AlreadyExists):
        await store.add_user(
            User(username="alice", email="other@example.com", created_at=T0), "second"
        )
    credentials = await credentials_of(store, "alice")
    assert (credentials.user.email, credentials.password_hash) == ("alice@example.com", "first")


async def test_concurrent_registrations_of_one_name_admit_exactly_one(
    store: SqlUserStore,
) -> None:
    results = await asyncio.gather(
        *(store.add_user(user(), f"hash{n}") for n in range(8)), return_exceptions=True
    )
    assert sum(result is None for result in results) == 1
    assert all(result is None or isinstance(result, AlreadyExists) for result in results)


async def test_set_password_hash(store: SqlUserStore) -> None:
    await store.add_user(user(), "old")
    await store.add_user(user("bob"), "bobs")
    await store.set_password_hash("alice", "new")
    assert (await credentials_of(store, "alice")).password_hash == "new"
    assert (await credentials_of(store, "bob")).password_hash == "bobs"


async def test_session_roundtrip_and_delete(store: SqlUserStore, users_engine: AsyncEngine) -> None:
    await store.add_user(user(), "hash")
    expires = T0 + dt.timedelta(days=30)
    await store.add_session("h1", Session(username="alice", expires_at=expires), T0)
    await store.add_session("h2", Session(username="alice", expires_at=expires), T0)
    session = await store.get_session("h1")
    assert session == Session(username="alice", expires_at=expires)
    assert session.expires_at.utcoffset() == dt.timedelta(0)
    assert await store.get_session("unknown") is None
    assert await store.delete_session("h1")
    assert not await store.delete_session("h1")
    assert await store.get_session("h1") is None
    assert await store.get_session("h2") is not None
    assert await session_count(users_engine) == 1


async def test_add_session_cleans_up_only_that_users_expired_sessions(
    store: SqlUserStore, users_engine: AsyncEngine
) -> None:
    await store.add_user(user(), "hash")
    await store.add_user(user("bob"), "hash")
    hour = dt.timedelta(hours=1)
    await store.add_session("alice-old", Session("alice", T0 + hour), T0)
    await store.add_session("alice-edge", Session("alice", T0 + 2 * hour), T0)
    await store.add_session("alice-live", Session("alice", T0 + 3 * hour), T0)
    await store.add_session("bob-old", Session("bob", T0 + hour), T0)
    now = T0 + 2 * hour  # a session expiring exactly now is expired
    await store.add_session("alice-new", Session("alice", now + hour), now)
    assert await store.get_session("alice-old") is None
    assert await store.get_session("alice-edge") is None
    assert await store.get_session("alice-live") is not None
    assert await store.get_session("alice-new") is not None
    assert await store.get_session("bob-old") is not None  # bob's are cleaned on bob's login
    assert await session_count(users_engine, "alice") == 2


async def test_a_session_needs_an_existing_user(
    store: SqlUserStore, users_engine: AsyncEngine
) -> None:
    with pytest.raises(Exception):  # noqa: B017 - the foreign key, whatever the driver calls it
        await store.add_session("ghost", Session("ghost", T0 + dt.timedelta(hours=1)), T0)
    assert await session_count(users_engine) == 0


async def test_deleting_a_user_deletes_their_sessions(
    store: SqlUserStore, users_engine: AsyncEngine
) -> None:
    await store.add_user(user(), "hash")
    await store.add_session("h1", Session("alice", T0 + dt.timedelta(hours=1)), T0)
    async with users_engine.begin() as conn:
        await conn.execute(text("DELETE FROM users WHERE username = 'alice'"))
    assert await store.get_session("h1") is None


# -- UserService on the store --------------------------------------------------------------


async def test_usernames_are_unique_case_insensitively(
    service: UserService, store: SqlUserStore
) -> None:
    registered = await service.register("Alice", "alice@example.com", PASSWORD)
    assert registered.username == "alice"
    for other in ("alice", "ALICE", " aLiCe "):
        with pytest.raises(AlreadyExists):
            await service.register(other, "x@example.com", "another password")
    token = await service.login("ALICE", PASSWORD)
    assert await service.resolve_session(token) == "alice"
    assert (await credentials_of(store, "alice")).user.email == "alice@example.com"


async def test_register_rejects_bad_input_and_stores_nothing(
    service: UserService, store: SqlUserStore
) -> None:
    for username, email, password in [
        ("a", "a@example.com", PASSWORD),
        ("alice", "not-an-email", PASSWORD),
        ("alice", "alice@example.com", "short"),
    ]:
        with pytest.raises(InvalidArgument):
            await service.register(username, email, password)
    assert await store.get_credentials("alice") is None


async def test_login_logout_and_sessions(
    service: UserService, users_engine: AsyncEngine, clock: Clock
) -> None:
    await service.register("alice", "alice@example.com", PASSWORD)
    with pytest.raises(Unauthenticated):
        await service.login("alice", "wrong password")
    with pytest.raises(Unauthenticated):
        await service.login("nobody", PASSWORD)
    first = await service.login("alice", PASSWORD)
    second = await service.login("alice", PASSWORD)
    assert await service.resolve_session(first) == "alice"
    assert await service.resolve_session(second) == "alice"
    await service.logout(first)
    with pytest.raises(Unauthenticated):
        await service.resolve_session(first)
    assert await service.resolve_session(second) == "alice"
    with pytest.raises(Unauthenticated):
        await service.logout(first)
    with pytest.raises(Unauthenticated):
        await service.resolve_session("made-up")
    # Only token hashes are stored.
    async with users_engine.connect() as conn:
        stored = (await conn.execute(select(sessions.c.token_hash))).scalars().all()
    assert stored == [token_hash(second)]


async def test_sessions_expire_and_are_cleaned_up(
    service: UserService, users_engine: AsyncEngine, clock: Clock
) -> None:
    await service.register("alice", "alice@example.com", PASSWORD)
    old = await service.login("alice", PASSWORD)
    clock.now += dt.timedelta(hours=1)
    with pytest.raises(Unauthenticated):
        await service.resolve_session(old)
    new = await service.login("alice", PASSWORD)
    assert await session_count(users_engine, "alice") == 1
    assert await service.resolve_session(new) == "alice"


async def test_cached_manager_on_the_database(service: UserService) -> None:
    cached = CachedUserManager(service, ttl=60)
    await cached.register("alice", "alice@example.com", PASSWORD)
    token = await cached.login("alice", PASSWORD)
    assert await cached.resolve_session(token) == "alice"
    await cached.logout(token)
    with pytest.raises(Unauthenticated):
        await cached.resolve_session(token)


async def test_users_read_back_through_a_new_engine(
    service: UserService, users_url: str, clock: Clock
) -> None:
    await service.register("alice", "alice@example.com", PASSWORD)
    token = await service.login("alice", PASSWORD)
    engine = create_engine(users_url)
    try:
        fresh = UserService(SqlUserStore(engine), hasher=cheap_hasher(), clock=clock)
        assert await fresh.resolve_session(token) == "alice"
        assert await fresh.resolve_session(await fresh.login("Alice", PASSWORD)) == "alice"
    finally:
        await engine.dispose()


# -- migrations ------------------------------------------------------------------------------


async def test_migrations_are_idempotent(
    store: SqlUserStore, users_engine: AsyncEngine, head_revisions: dict[str, str]
) -> None:
    await store.add_user(user(), "hash")
    await upgrade(users_engine, "delinkcious.users")  # the session already ran it once
    await upgrade(users_engine, "delinkcious.users")
    async with users_engine.connect() as conn:
        versions = (
            (await conn.execute(text("SELECT version_num FROM users_alembic_version")))
            .scalars()
            .all()
        )
    assert versions == [head_revisions["users"]]
    assert await store.get_credentials("alice") is not None


async def test_both_services_migrate_a_fresh_database(
    fresh_database_url: str, head_revisions: dict[str, str]
) -> None:
    """Each service keeps its own version table, so they can even share one database."""
    engine = create_engine(fresh_database_url)
    try:
        for _ in range(2):
            await upgrade(engine, "delinkcious.users")
            await upgrade(engine, "delinkcious.links")
        store = SqlUserStore(engine)
        await store.add_user(user(), "hash")
        assert (await credentials_of(store, "alice")).password_hash == "hash"
        async with engine.connect() as conn:
            for service in ("users", "links"):
                table = f"{service}_alembic_version"
                versions = (
                    (await conn.execute(text(f"SELECT version_num FROM {table}"))).scalars().all()
                )
                assert versions == [head_revisions[service]]
    finally:
        await engine.dispose()
