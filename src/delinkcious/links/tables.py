"""The links service's schema. Changed only together with a migration in ``migrations/``."""

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
_ID = BigInteger().with_variant(Integer(), "sqlite")

links = Table(
    "links",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("username", String(32), nullable=False),
    Column("url", Text, nullable=False),
    # sha256 of the url: a unique index on a 2 KiB url would exceed PostgreSQL's btree limit.
    Column("url_hash", String(64), nullable=False),
    Column("title", String(512), nullable=False),
    Column("description", Text, nullable=False),
    # The tags, kept on the row so a page is one query; link_tags indexes them for filtering.
    Column("tags", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("username", "url_hash", name="uq_links_username_url"),
    Index("ix_links_username_created", "username", "created_at", "id"),
)

link_tags = Table(
    "link_tags",
    metadata,
    Column("link_id", _ID, ForeignKey("links.id", ondelete="CASCADE"), primary_key=True),
    Column("tag", String(64), primary_key=True),
    Column("username", String(32), nullable=False),
    Index("ix_link_tags_username_tag", "username", "tag"),
)

# One row per user: the atomic counter that enforces the per-user link cap.
link_owners = Table(
    "link_owners",
    metadata,
    Column("username", String(32), primary_key=True),
    Column("link_count", Integer, nullable=False),
)

# Events written in the same transaction as the change that caused them; the relay
# publishes them to the bus and deletes them. A broker outage delays events, never loses them.
outbox = Table(
    "outbox",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Ids of events a consumer of this service has applied: a redelivery is recognised and skipped.
processed_events = Table(
    "processed_events",
    metadata,
    Column("consumer", String(64), primary_key=True),
    Column("event_id", String(64), primary_key=True),
    Column("processed_at", DateTime(timezone=True), nullable=False),
)
