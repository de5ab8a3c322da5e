"""The users service's schema. Changed only together with a migration in ``migrations/``."""

from sqlalchemy import Column, DateTime, ForeignKey, Index, MetaData, String, Table

metadata = MetaData()

users = Table(
    "users",
    metadata,
    # Canonical (lower-case) username: the identity every other service refers to.
    Column("username", String(32), primary_key=True),
    Column("email", String(254), nullable=False),
    Column("password_hash", String(256), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column(
        "username",
        String(32),
        ForeignKey("users.username", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_sessions_username_expires", "username", "expires_at"),
)
