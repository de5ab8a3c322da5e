"""``SqlUserStore``: the users port on SQLAlchemy Core (SQLite or PostgreSQL)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from delinkcious.model.errors import AlreadyExists
from delinkcious.model.users import User
from delinkcious.users.store import Credentials, Session
from delinkcious.users.tables import sessions, users


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


class SqlUserStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def add_user(self, user: User, password_hash: str) -> None:
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    insert(users).values(
                        username=user.username,
                        email=user.email,
                        password_hash=password_hash,
                        created_at=user.created_at,
                    )
                )
        except IntegrityError:
            raise AlreadyExists(
                f"the username {user.username!r} is taken", code="username_taken"
            ) from None

    async def get_credentials(self, username: str) -> Credentials | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(users).where(users.c.username == username))).first()
        if row is None:
            return None
        user = User(username=row.username, email=row.email, created_at=_utc(row.created_at))
        return Credentials(user=user, password_hash=row.password_hash)

    async def set_password_hash(self, username: str, password_hash: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(users)
                .where(users.c.username == username)
                .values(password_hash=password_hash)
            )

    async def add_session(self, token_hash: str, session: Session, now: dt.datetime) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                delete(sessions).where(
                    sessions.c.username == session.username, sessions.c.expires_at <= now
                )
            )
            await conn.execute(
                insert(sessions).values(
                    token_hash=token_hash,
                    username=session.username,
                    created_at=now,
                    expires_at=session.expires_at,
                )
            )

    async def get_session(self, token_hash: str) -> Session | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(sessions.c.username, sessions.c.expires_at).where(
                        sessions.c.token_hash == token_hash
                    )
                )
            ).first()
        return Session(username=row.username, expires_at=_utc(row.expires_at)) if row else None

    async def delete_session(self, token_hash: str) -> bool:
        async with self._engine.begin() as conn:
            result = await conn.execute(delete(sessions).where(sessions.c.token_hash == token_hash))
        return bool(result.rowcount)
