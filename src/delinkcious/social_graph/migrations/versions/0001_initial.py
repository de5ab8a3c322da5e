"""Follow edges, unique per (followed, follower).

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


def upgrade() -> None:
    op.create_table(
        "follows",
        sa.Column("followed", sa.String(32), primary_key=True),
        sa.Column("follower", sa.String(32), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_follows_follower", "follows", ["follower", "followed"])


def downgrade() -> None:
    op.drop_table("follows")
