"""Indexes for the per-shard queue sweeps: timers by shard and fire time, transfers by shard and age.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_timer_tasks_shard_fire", "timer_tasks", ["shard_id", "fire_at"])
    op.create_index("ix_transfer_tasks_shard_created", "transfer_tasks", ["shard_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_transfer_tasks_shard_created", "transfer_tasks")
    op.drop_index("ix_timer_tasks_shard_fire", "timer_tasks")
