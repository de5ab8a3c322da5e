"""Feeds: their events and their sizes.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_EVENT_ID = sa.String(64).with_variant(sa.String(64, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "news_items",
        sa.Column("username", sa.String(32), nullable=False),
        sa.Column("event_id", _EVENT_ID, nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("author", sa.String(32), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("username", "event_id", name="pk_news_items"),
    )
    op.create_index("ix_news_items_feed", "news_items", ["username", "time", "event_id"])
    op.create_table(
        "news_feeds",
        sa.Column("username", sa.String(32), primary_key=True),
        sa.Column("size", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("news_feeds")
    op.drop_table("news_items")
