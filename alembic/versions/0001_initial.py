"""Initial schema: namespaces, shards, executions, history, outbox, visibility, task queues.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

from odin.persistence.tables import Blob, Key, Str, Text, UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "namespaces",
        sa.Column("id", Key(36), primary_key=True),
        sa.Column("name", Key(255), nullable=False, unique=True),
        sa.Column("state", sa.Integer, nullable=False),
        sa.Column("data", Text(), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    op.create_table(
        "cluster_metadata",
        sa.Column("key", Key(64), primary_key=True),
        sa.Column("value", Text(), nullable=False),
    )
    op.create_table(
        "history_shards",
        sa.Column("shard_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("range_id", sa.BigInteger, nullable=False),
        sa.Column("owner", Str(255)),
        sa.Column("lease_expires_at", UtcDateTime),
    )
    op.create_table(
        "workflow_executions",
        sa.Column("namespace_id", Key(36), primary_key=True),
        sa.Column("workflow_id", Key(1000), primary_key=True),
        sa.Column("run_id", Key(36), primary_key=True),
        sa.Column("shard_id", sa.Integer, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("next_event_id", sa.BigInteger, nullable=False),
        sa.Column("db_version", sa.BigInteger, nullable=False),
        sa.Column("state", Blob(), nullable=False),
    )
    op.create_table(
        "current_executions",
        sa.Column("namespace_id", Key(36), primary_key=True),
        sa.Column("workflow_id", Key(1000), primary_key=True),
        sa.Column("run_id", Key(36), nullable=False),
        sa.Column("first_execution_run_id", Key(36), nullable=False),
        sa.Column("create_request_id", Str(1000), nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
    )
    op.create_table(
        "history_events",
        sa.Column("run_id", Key(36), primary_key=True),
        sa.Column("event_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("namespace_id", Key(36), nullable=False),
        sa.Column("event_type", sa.Integer, nullable=False),
        sa.Column("data", Blob(), nullable=False),
    )
    op.create_table(
        "transfer_tasks",
        sa.Column("task_id", Key(32), primary_key=True),
        sa.Column("shard_id", sa.Integer, nullable=False),
        sa.Column("namespace_id", Key(36), nullable=False),
        sa.Column("workflow_id", Key(1000), nullable=False),
        sa.Column("run_id", Key(36), nullable=False),
        sa.Column("kind", Key(32), nullable=False),
        sa.Column("data", Text(), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_transfer_tasks_shard_id", "transfer_tasks", ["shard_id"])
    op.create_index("ix_transfer_tasks_run_id", "transfer_tasks", ["run_id"])
    op.create_table(
        "timer_tasks",
        sa.Column("task_id", Key(32), primary_key=True),
        sa.Column("shard_id", sa.Integer, nullable=False),
        sa.Column("fire_at", UtcDateTime, nullable=False),
        sa.Column("namespace_id", Key(36), nullable=False),
        sa.Column("workflow_id", Key(1000), nullable=False),
        sa.Column("run_id", Key(36), nullable=False),
        sa.Column("kind", Key(32), nullable=False),
        sa.Column("data", Text(), nullable=False),
    )
    op.create_index("ix_timer_tasks_fire_at", "timer_tasks", ["fire_at"])
    op.create_index("ix_timer_tasks_run_id", "timer_tasks", ["run_id"])
    op.create_table(
        "visibility_records",
        sa.Column("namespace_id", Key(36), primary_key=True),
        sa.Column("run_id", Key(36), primary_key=True),
        sa.Column("workflow_id", Key(1000), nullable=False),
        sa.Column("workflow_type", Key(1000), nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("start_time", UtcDateTime, nullable=False),
        sa.Column("execution_time", UtcDateTime, nullable=False),
        sa.Column("close_time", UtcDateTime),
        sa.Column("history_length", sa.BigInteger, nullable=False),
        sa.Column("history_size_bytes", sa.BigInteger, nullable=False),
        sa.Column("task_queue", Key(1000), nullable=False),
        sa.Column("first_execution_run_id", Key(36), nullable=False),
        sa.Column("parent_workflow_id", Key(1000)),
        sa.Column("parent_run_id", Key(36)),
        sa.Column("memo", Blob()),
        sa.Column("search_attributes", Blob()),
    )
    op.create_index("ix_visibility_ns_status", "visibility_records", ["namespace_id", "status"])
    op.create_index("ix_visibility_ns_type", "visibility_records", ["namespace_id", "workflow_type"])
    op.create_index("ix_visibility_ns_start", "visibility_records", ["namespace_id", "start_time"])
    op.create_index("ix_visibility_ns_close", "visibility_records", ["namespace_id", "close_time"])
    op.create_index("ix_visibility_ns_wid", "visibility_records", ["namespace_id", "workflow_id"])
    op.create_table(
        "task_queues",
        sa.Column("namespace_id", Key(36), primary_key=True),
        sa.Column("name", Key(1000), primary_key=True),
        sa.Column("kind", sa.Integer, primary_key=True),
        sa.Column("data", Text(), nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "task_queues",
        "visibility_records",
        "timer_tasks",
        "transfer_tasks",
        "history_events",
        "current_executions",
        "workflow_executions",
        "history_shards",
        "cluster_metadata",
        "namespaces",
    ):
        op.drop_table(table)
