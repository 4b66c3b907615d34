"""Batch operations: one row per job (docs/architecture.md#batch-operations).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from odin.persistence.tables import Blob, Key, Str, Text, UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "batch_operations",
        sa.Column("namespace_id", Key(36), primary_key=True),
        sa.Column("job_id", Key(1000), primary_key=True),
        sa.Column("run_id", Key(36), nullable=False),
        sa.Column("request_id", Str(36), nullable=False),
        sa.Column("operation_type", sa.Integer, nullable=False),
        sa.Column("request", Blob(), nullable=False),
        sa.Column("identity", Str(1000), nullable=False),
        sa.Column("reason", Text(), nullable=False),
        sa.Column("state", Key(16), nullable=False),
        sa.Column("total", sa.BigInteger, nullable=False),
        sa.Column("completed", sa.BigInteger, nullable=False),
        sa.Column("failed", sa.BigInteger, nullable=False),
        sa.Column("cursor", Str(1000), nullable=False),
        sa.Column("owner", Str(255)),
        sa.Column("lease_expires_at", UtcDateTime),
        sa.Column("start_time", UtcDateTime, nullable=False),
        sa.Column("close_time", UtcDateTime),
        sa.Column("stop_reason", Text()),
        sa.Column("stop_identity", Str(1000)),
    )
    op.create_index("ix_batch_operations_state", "batch_operations", ["state"])
    op.create_index("ix_batch_operations_ns_start", "batch_operations", ["namespace_id", "start_time"])


def downgrade() -> None:
    op.drop_table("batch_operations")
