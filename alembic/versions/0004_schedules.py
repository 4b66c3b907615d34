"""Schedules: one row per schedule (docs/architecture.md#schedules).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from odin.persistence.tables import Blob, Key, Str, Text, UtcDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("namespace_id", Key(36), primary_key=True),
        sa.Column("schedule_id", Key(1000), primary_key=True),
        sa.Column("shard_id", sa.Integer, nullable=False),
        sa.Column("conflict_token", sa.BigInteger, nullable=False),
        sa.Column("db_version", sa.BigInteger, nullable=False),
        sa.Column("request_id", Str(1000), nullable=False),
        sa.Column("schedule", Blob(), nullable=False),
        sa.Column("info", Text(), nullable=False),
        sa.Column("memo", Blob()),
        sa.Column("search_attributes", Blob()),
        sa.Column("paused", sa.Boolean, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.Column("next_action_at", UtcDateTime),
    )


def downgrade() -> None:
    op.drop_table("schedules")
