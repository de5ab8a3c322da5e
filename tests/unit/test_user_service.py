"""UserService on the in-memory store: registration, login, sessions."""

from __future__ import annotations

import datetime as dt

import pytest
from argon2 import PasswordHasher

from delinkcious.model import AlreadyExists, InvalidArgument, Unauthenticated, UserManager
from delinkcious.model.validation import MAX_EMAIL, MAX_PASSWORD
from delinkcious.users.manager import UserService, token_hash
from delinkcious.users.store import Session
from tests.fakes import FakeUserStore
from tests.unit.conftest import Clock

PASSWORD = "correct horse battery"
TTL = dt.timedelta(hours=1)


def cheap_hasher() -> PasswordHasher:
    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture
def users(user_store: FakeUserStore, clock: Clock) -> UserService:
    return UserService(user_store, session_ttl=TTL, hasher=cheap_hasher(), clock=clock)


@pytest.fixture
async def alice(users: UserService) -> str:
    await users.register("alice", "alice@example.com", PASSWORD)
    return "alice"


async def test_user_service_is_a_user_manager(users: UserService) -> None:
    assert isinstance(users, UserManager)


# -- register ------------------------------------------------------------------------------


async def test_register_stores_the_canonical_user_and_a_hash(
    users: UserService, user_store: FakeUserStore, clock: Clock
) -> None:
    user = await users.register("  Alice.B-2_ ", " alice@example.com ", PASSWORD)
    assert user.username == "alice.b-2_"
    assert user.email == "alice@example.com"
    assert user.created_at == clock.now
    stored = user_store.users["alice.b-2_"]
    assert stored.user == user
    assert PASSWORD not in stored.password_hash
    assert stored.password_hash.startswith("$argon2")


@pytest.mark.parametrize(
    "username",
    ["ab", "a" * 32, "a_b.c-d", "007", "Bob"],
)
async def test_register_accepts_good_usernames(users: UserService, username: str) -> None:
    user = await users.register(username, "x@example.com", PASSWORD)
    assert user.username == username.lower()


@pytest.mark.parametrize(
    "username",
    ["", "a", "a" * 33, "al ice", "alice!", "al@ce", "ali/ce", "élodie", "ali\nce", "a\x00b"],
)
async def test_register_rejects_bad_usernames(
    users: UserService, user_store: FakeUserStore, username: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await users.register(username, "x@example.com", PASSWORD)
    assert caught.value.code == "invalid_username"
    assert user_store.users == {}


@pytest.mark.parametrize(
    "email",
    [
        "",
        "alice",
        "alice@",
        "@example.com",
        "alice@example",
        "al ice@example.com",
        "alice@@example.com",
        "a" * (MAX_EMAIL - len("@example.com") + 1) + "@example.com",
    ],
)
async def test_register_rejects_bad_emails(
    users: UserService, user_store: FakeUserStore, email: str
) -> None:
    with pytest.raises(InvalidArgument):
        await users.register("alice", email, PASSWORD)
    assert user_store.users == {}


@pytest.mark.parametrize("password", ["", "short", "1234567", "p" * (MAX_PASSWORD + 1)])
async def test_register_rejects_bad_passwords(
    users: UserService, user_store: FakeUserStore, password: str
) -> None:
    with pytest.raises(InvalidArgument):
        await users.register("alice", "alice@example.com", password)
    assert user_store.users == {}


@pytest.mark.parametrize("password", ["12345678", "p" * MAX_PASSWORD])
async def test_register_accepts_passwords_at_the_limits(users: UserService, password: str) -> None:
    await users.register("alice", "alice@example.com", password)
    assert await users.login("alice", password)


@pytest.mark.parametrize("second", ["alice", "Alice", "ALICE", " alice "])
async def test_usernames_are_unique_case_insensitively(
    users: UserService, user_store: FakeUserStore, second: str
) -> None:
    await users.register("Alice", "alice@example.com", PASSWORD)
    with pytest.raises(AlreadyExists):
        await users.register(second, "other@example.com", "another password")
    assert list(user_store.users) == ["alice"]
    assert user_store.users["alice"].user.email == "alice@example.com"


# -- login / sessions ------------------------------------------------------------------------


async def test_login_returns_an_opaque_token_that_resolves(
    users: UserService, user_store: FakeUserStore, alice: str
) -> None:
    token = await users.login("alice", PASSWORD)
    assert len(token) >= 32
    assert await users.resolve_session(token) == "alice"
    # Only a hash of the token is stored.
    assert token not in user_store.sessions
    assert token_hash(token) in user_store.sessions


async def test_login_is_case_insensitive_in_the_username(users: UserService, alice: str) -> None:
    token = await users.login(" ALICE ", PASSWORD)
    assert await users.resolve_session(token) == "alice"


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("alice", "wrong password"),
        ("alice", PASSWORD.upper()),
        ("alice", ""),
        ("alice", "p" * (MAX_PASSWORD + 1)),
        ("nobody", PASSWORD),
        ("", PASSWORD),
        ("not a valid name!", PASSWORD),
    ],
)
async def test_bad_credentials_are_unauthenticated(
    users: UserService, user_store: FakeUserStore, alice: str, username: str, password: str
) -> None:
    with pytest.raises(Unauthenticated) as caught:
        await users.login(username, password)
    assert caught.value.code == "invalid_credentials"
    assert user_store.sessions == {}


async def test_wrong_password_and_unknown_user_look_the_same(
    users: UserService, alice: str
) -> None:
    with pytest.raises(Unauthenticated) as wrong_password:
        await users.login("alice", "wrong password")
    with pytest.raises(Unauthenticated) as unknown_user:
        await users.login("nobody", PASSWORD)
    assert wrong_password.value.message == unknown_user.value.message
    assert wrong_password.value.code == unknown_user.value.code


async def test_several_sessions_per_user_and_logout_ends_only_one(
    users: UserService, alice: str
) -> None:
    tokens = [await users.login("alice", PASSWORD) for _ in range(3)]
    assert len(set(tokens)) == 3
    for token in tokens:
        assert await users.resolve_session(token) == "alice"
    await users.logout(tokens[1])
    with pytest.raises(Unauthenticated):
        await users.resolve_session(tokens[1])
    assert await users.resolve_session(tokens[0]) == "alice"
    assert await users.resolve_session(tokens[2]) == "alice"
    # A revoked token cannot be logged out twice.
    with pytest.raises(Unauthenticated):
        await users.logout(tokens[1])


async def test_sessions_of_different_users_are_separate(users: UserService, alice: str) -> None:
    await users.register("bob", "bob@example.com", "bobs password")
    alice_token = await users.login("alice", PASSWORD)
    bob_token = await users.login("bob", "bobs password")
    assert await users.resolve_session(alice_token) == "alice"
    assert await users.resolve_session(bob_token) == "bob"
    await users.logout(alice_token)
    assert await users.resolve_session(bob_token) == "bob"


@pytest.mark.parametrize(
    "token",
    ["", "unknown", "x" * 43, "x" * 129, "x" * 100_000, "é" * 43],
)
async def test_unknown_tokens_are_unauthenticated(
    users: UserService, alice: str, token: str
) -> None:
    await users.login("alice", PASSWORD)
    with pytest.raises(Unauthenticated) as caught:
        await users.resolve_session(token)
    assert caught.value.code == "invalid_token"
    with pytest.raises(Unauthenticated):
        await users.logout(token)


async def test_sessions_expire_after_the_ttl(users: UserService, alice: str, clock: Clock) -> None:
    token = await users.login("alice", PASSWORD)
    clock.advance(seconds=TTL.total_seconds() - 1)
    assert await users.resolve_session(token) == "alice"
    clock.advance(seconds=1)
    with pytest.raises(Unauthenticated):
        await users.resolve_session(token)


async def test_a_new_login_cleans_up_the_users_expired_sessions(
    users: UserService, user_store: FakeUserStore, alice: str, clock: Clock
) -> None:
    await users.register("bob", "bob@example.com", "bobs password")
    old_alice = await users.login("alice", PASSWORD)
    old_bob = await users.login("bob", "bobs password")
    clock.advance(minutes=30)
    recent_alice = await users.login("alice", PASSWORD)
    clock.advance(minutes=31)  # old sessions expired, the recent one has not
    new_alice = await users.login("alice", PASSWORD)
    assert set(user_store.sessions) == {
        token_hash(recent_alice),
        token_hash(new_alice),
        token_hash(old_bob),  # another user's sessions are left to that user's next login
    }
    assert token_hash(old_alice) not in user_store.sessions
    assert await users.resolve_session(recent_alice) == "alice"
    with pytest.raises(Unauthenticated):
        await users.resolve_session(old_bob)


async def test_a_stored_session_of_the_past_is_unauthenticated(
    users: UserService, user_store: FakeUserStore, alice: str, clock: Clock
) -> None:
    await user_store.add_session(
        token_hash("handmade"),
        Session(username="alice", expires_at=clock.now - dt.timedelta(seconds=1)),
        clock.now - dt.timedelta(hours=2),
    )
    with pytest.raises(Unauthenticated):
        await users.resolve_session("handmade")


async def test_login_rehashes_a_password_hashed_with_old_parameters(
    user_store: FakeUserStore, clock: Clock
) -> None:
    old = UserService(user_store, hasher=cheap_hasher(), clock=clock)
    await old.register("alice", "alice@example.com", PASSWORD)
    old_hash = user_store.users["alice"].password_hash
    stronger = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1)
    new = UserService(user_store, hasher=stronger, clock=clock)
    token = await new.login("alice", PASSWORD)
    new_hash = user_store.users["alice"].password_hash
    assert new_hash != old_hash
    assert not stronger.check_needs_rehash(new_hash)
    assert await new.resolve_session(token) == "alice"
    # The password still works with the new hash, and the old one is not rehashed again.
    await new.login("alice", PASSWORD)
    assert user_store.calls["set_password_hash"] == 1
