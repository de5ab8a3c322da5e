"""``UserService``: registration, password login and opaque sessions."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import secrets
from collections.abc import Callable
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from delinkcious.model.errors import InvalidArgument, NotFound, Unauthenticated
from delinkcious.model.users import User
from delinkcious.model.validation import (
    MAX_PASSWORD,
    check_email,
    check_password,
    normalize_username,
)
from delinkcious.users.store import Session, UserStore

HASH_CONCURRENCY = 2
T = TypeVar("T")
# A session token is 32 random bytes, url-safe base64: 43 characters.
_MAX_TOKEN = 128


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def token_hash(token: str) -> str:
    """Tokens are stored as sha256: they carry 256 random bits, so a slow hash adds nothing."""
    return hashlib.sha256(token.encode()).hexdigest()


def _bad_credentials() -> Unauthenticated:
    return Unauthenticated("wrong username or password", code="invalid_credentials")


def _bad_session() -> Unauthenticated:
    return Unauthenticated("the access token is unknown, expired or revoked", code="invalid_token")


class UserService:
    """Implements ``UserManager``. Argon2 runs in a worker thread: it is slow on purpose."""

    def __init__(
        self,
        store: UserStore,
        *,
        session_ttl: dt.timedelta = dt.timedelta(days=30),
        hasher: PasswordHasher | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self._store = store
        self._ttl = session_ttl
        # OWASP's argon2id settings (19 MiB, 2 passes): memory-hard, yet a login storm of
        # HASH_CONCURRENCY parallel hashes stays within the process's memory budget.
        self._hasher = hasher or PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)
        self._hash_slots = asyncio.Semaphore(HASH_CONCURRENCY)
        self._clock = clock
        # Verified against when the username is unknown, so timing does not reveal users.
        self._dummy_hash = self._hasher.hash(secrets.token_hex(16))

    async def _in_thread(self, function: Callable[..., T], *args: Any) -> T:
        """Argon2 off the event loop, a bounded number at a time (each takes 19 MiB)."""
        async with self._hash_slots:
            return await asyncio.to_thread(function, *args)

    async def register(self, username: str, email: str, password: str) -> User:
        user = User(
            username=normalize_username(username),
            email=check_email(email),
            created_at=self._clock(),
        )
        check_password(password)
        password_hash = await self._in_thread(self._hasher.hash, password)
        await self._store.add_user(user, password_hash)
        return user

    async def login(self, username: str, password: str) -> str:
        try:
            canonical = normalize_username(username)
        except InvalidArgument:
            raise _bad_credentials() from None
        if len(password) > MAX_PASSWORD:
            raise _bad_credentials()
        credentials = await self._store.get_credentials(canonical)
        stored_hash = credentials.password_hash if credentials else self._dummy_hash
        try:
            await self._in_thread(self._hasher.verify, stored_hash, password)
        except (VerificationError, InvalidHashError):
            raise _bad_credentials() from None
        if credentials is None:
            raise _bad_credentials()
        if self._hasher.check_needs_rehash(stored_hash):
            new_hash = await self._in_thread(self._hasher.hash, password)
            await self._store.set_password_hash(canonical, new_hash)
        token = secrets.token_urlsafe(32)
        now = self._clock()
        await self._store.add_session(
            token_hash(token), Session(username=canonical, expires_at=now + self._ttl), now
        )
        return token

    async def get_user(self, username: str) -> User:
        try:
            canonical = normalize_username(username)
        except InvalidArgument:
            canonical = None
        credentials = await self._store.get_credentials(canonical) if canonical else None
        if credentials is None:
            raise NotFound(f"no user named {username!r}", code="user_not_found")
        return credentials.user

    async def logout(self, token: str) -> None:
        if len(token) > _MAX_TOKEN or not await self._store.delete_session(token_hash(token)):
            raise _bad_session()

    async def resolve_session(self, token: str) -> str:
        if not token or len(token) > _MAX_TOKEN:
            raise _bad_session()
        session = await self._store.get_session(token_hash(token))
        if session is None or session.expires_at <= self._clock():
            raise _bad_session()
        return session.username
