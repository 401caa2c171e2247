"""Usage events for the monthly usage report and the Prometheus counters (issue 11 item 4).

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("structure", sa.String(40), nullable=False, server_default=""),
        sa.Column("software", sa.String(100), nullable=False, server_default=""),
        sa.Column("mailbox_type", sa.String(3), nullable=False, server_default=""),
        sa.Column("code", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("count", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("reach", sa.String(32), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("id", name="pk_usage_events"),
    )
    op.create_index("ix_usage_events_month", "usage_events", ["month", "kind"])


def downgrade() -> None:
    op.drop_table("usage_events")
