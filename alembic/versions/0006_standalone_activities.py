"""Standalone activities: one row per activity id (docs/architecture.md#standalone-activities).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from odin.persistence.tables import Blob, Key, Str, UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "activity_executions",
        sa.Column("namespace_id", Key(36), primary_key=True),
        sa.Column("activity_id", Key(1000), primary_key=True),
        sa.Column("run_id", Key(36), nullable=False),
        sa.Column("shard_id", sa.Integer, nullable=False),
        sa.Column("db_version", sa.BigInteger, nullable=False),
        sa.Column("request_id", Str(1000), nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("activity_type", Key(1000), nullable=False),
        sa.Column("task_queue", Key(1000), nullable=False),
        sa.Column("start_time", UtcDateTime, nullable=False),
        sa.Column("close_time", UtcDateTime),
        sa.Column("search_attributes", Blob()),
        sa.Column("state", Blob(), nullable=False),
    )
    op.create_index("ix_activity_executions_ns_start", "activity_executions", ["namespace_id", "start_time"])


def downgrade() -> None:
    op.drop_table("activity_executions")
