"""Links, their tag index and the per-user counter.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "links",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(32), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("url_hash", sa.String(64), nullable=False),
        sa.Column("title", sa.String(512), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("username", "url_hash", name="uq_links_username_url"),
    )
    op.create_index("ix_links_username_created", "links", ["username", "created_at", "id"])
    op.create_table(
        "link_tags",
        sa.Column("link_id", _ID, sa.ForeignKey("links.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("tag", sa.String(64), primary_key=True),
        sa.Column("username", sa.String(32), nullable=False),
    )
    op.create_index("ix_link_tags_username_tag", "link_tags", ["username", "tag"])
    op.create_table(
        "link_owners",
        sa.Column("username", sa.String(32), primary_key=True),
        sa.Column("link_count", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("link_owners")
    op.drop_table("link_tags")
    op.drop_table("links")
