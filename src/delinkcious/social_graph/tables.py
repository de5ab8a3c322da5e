"""The social graph's schema. Changed only together with a migration in ``migrations/``."""

from sqlalchemy import Column, DateTime, Index, MetaData, String, Table

metadata = MetaData()

follows = Table(
    "follows",
    metadata,
    Column("followed", String(32), primary_key=True),
    Column("follower", String(32), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_follows_follower", "follower", "followed"),
)
