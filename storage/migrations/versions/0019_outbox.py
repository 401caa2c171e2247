"""The pipeline's outbox: after-commit work of committed messages, and its done effects.

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "outbox_messages",
        sa.Column("id", _ID, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("blob_id", sa.String(64), nullable=False),
        sa.Column("key_ref", sa.LargeBinary(16), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_outbox_messages"),
    )
    op.create_index("ix_outbox_messages_blob_id", "outbox_messages", ["blob_id"])
    op.create_table(
        "outbox_jobs",
        sa.Column("id", _ID, nullable=False),
        sa.Column("message_id", _ID, nullable=False),
        sa.Column("step", sa.String(40), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(200), nullable=True),
        sa.Column("failed", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"], ["outbox_messages.id"],
            name="fk_outbox_jobs_message_id_outbox_messages", ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_outbox_jobs"),
    )
    op.create_index("ix_outbox_jobs_due", "outbox_jobs", ["next_attempt_at"])
    op.create_index("ix_outbox_jobs_message_id", "outbox_jobs", ["message_id"])
    op.create_table(
        "outbox_effects",
        sa.Column("job_id", _ID, nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["outbox_jobs.id"],
            name="fk_outbox_effects_job_id_outbox_jobs", ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("job_id", "key", name="pk_outbox_effects"),
    )


def downgrade() -> None:
    op.drop_table("outbox_effects")
    op.drop_table("outbox_jobs")
    op.drop_table("outbox_messages")
