"""Search attributes: the per-namespace registry and typed values for list queries.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

from odin.persistence.tables import Double, Key, Text, UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "search_attributes",
        sa.Column("namespace_id", Key(36), primary_key=True),
        sa.Column("name", Key(255), primary_key=True),
        sa.Column("type", sa.Integer, nullable=False),
    )
    op.create_table(
        "visibility_search_attributes",
        sa.Column("namespace_id", Key(36), primary_key=True),
        sa.Column("run_id", Key(36), primary_key=True),
        sa.Column("name", Key(255), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("type", sa.Integer, nullable=False),
        sa.Column("value_text", Text()),
        sa.Column("value_int", sa.BigInteger),
        sa.Column("value_double", Double()),
        sa.Column("value_time", UtcDateTime),
    )
    op.create_index("ix_vsa_ns_name_text", "visibility_search_attributes", ["namespace_id", "name"])


def downgrade() -> None:
    op.drop_index("ix_vsa_ns_name_text", "visibility_search_attributes")
    op.drop_table("visibility_search_attributes")
    op.drop_table("search_attributes")
