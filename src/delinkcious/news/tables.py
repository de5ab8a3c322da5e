"""The news service's schema. Changed only together with a migration in ``migrations/``."""

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

metadata = MetaData()

# Event ids break ties in feed order, which must be bytewise (as in Redis, SQLite and the
# page tokens): PostgreSQL gets the "C" collation whatever the database's default is.
_EVENT_ID = String(64).with_variant(String(64, collation="C"), "postgresql")

news_items = Table(
    "news_items",
    metadata,
    Column("username", String(32), nullable=False),
    Column("event_id", _EVENT_ID, nullable=False),
    # type..tags repeat the payload so feeds can be inspected and queried in SQL.
    Column("type", String(32), nullable=False),
    Column("author", String(32), nullable=False),
    Column("url", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("tags", JSON, nullable=False),
    Column("time", DateTime(timezone=True), nullable=False),
    # Event.to_json: the event exactly as published, trace context and data included.
    Column("payload", Text, nullable=False),
    # Unique per feed: redelivering an event inserts nothing.
    PrimaryKeyConstraint("username", "event_id", name="pk_news_items"),
    Index("ix_news_items_feed", "username", "time", "event_id"),
)

# One row per feed: its size, so trimming past the cap deletes just the excess, and the
# row lock that makes concurrent appends to one feed take turns (on PostgreSQL).
news_feeds = Table(
    "news_feeds",
    metadata,
    Column("username", String(32), primary_key=True),
    Column("size", Integer, nullable=False),
)
