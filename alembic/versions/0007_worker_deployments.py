"""Worker deployments: one row per deployment, its versions and routing in a JSON document
(docs/architecture.md#worker-deployments).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from odin.persistence.tables import Key, Text, UtcDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "worker_deployments",
        sa.Column("namespace_id", Key(36), primary_key=True),
        sa.Column("name", Key(1000), primary_key=True),
        sa.Column("data", Text(), nullable=False),
        sa.Column("db_version", sa.BigInteger, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("worker_deployments")
