"""Users and sessions: the value types and the ``UserManager`` port."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from delinkcious.model.markers import idempotent


@dataclass(frozen=True, slots=True)
class User:
    username: str
    email: str
    created_at: dt.datetime


@runtime_checkable
class UserManager(Protocol):
    async def register(self, username: str, email: str, password: str) -> User: ...

    async def login(self, username: str, password: str) -> str:
        """Return a new opaque session token; several sessions per user may be live."""
        ...

    async def logout(self, token: str) -> None:
        """End that one session; other sessions of the same user stay valid."""
        ...

    @idempotent
    async def get_user(self, username: str) -> User:
        """Return the user (any case of the name), or raise NotFound."""
        ...

    @idempotent
    async def resolve_session(self, token: str) -> str:
        """Return the username the live session belongs to, or raise Unauthenticated."""
        ...
