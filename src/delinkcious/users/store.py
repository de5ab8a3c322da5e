"""The users service's storage port."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from delinkcious.model.users import User


@dataclass(frozen=True, slots=True)
class Credentials:
    user: User
    password_hash: str


@dataclass(frozen=True, slots=True)
class Session:
    username: str
    expires_at: dt.datetime


class UserStore(Protocol):
    async def add_user(self, user: User, password_hash: str) -> None:
        """Store a new user; raise AlreadyExists when the username is taken."""
        ...

    async def get_credentials(self, username: str) -> Credentials | None: ...

    async def set_password_hash(self, username: str, password_hash: str) -> None: ...

    async def add_session(self, token_hash: str, session: Session, now: dt.datetime) -> None:
        """Store a session and drop the user's sessions that expired before ``now``."""
        ...

    async def get_session(self, token_hash: str) -> Session | None: ...

    async def delete_session(self, token_hash: str) -> bool: ...
