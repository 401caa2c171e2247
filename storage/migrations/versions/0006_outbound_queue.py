"""The outbound queue: messages for other operators and their recipients' schedules.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "outbound_messages",
        sa.Column("id", ID, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sender", sa.String(320), nullable=False),
        sa.Column("envid", sa.String(200), nullable=True),
        sa.Column("ret", sa.String(8), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("key_ref", sa.LargeBinary(16), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_outbound_messages"),
    )
    op.create_table(
        "outbound_recipients",
        sa.Column("id", ID, nullable=False),
        sa.Column("message_id", ID, nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("domain", sa.String(255), nullable=False),
        sa.Column("orcpt", sa.String(400), nullable=True),
        sa.Column("notify", sa.String(40), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delay_notified", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["outbound_messages.id"],
            name="fk_outbound_recipients_message_id_outbound_messages",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_outbound_recipients"),
    )
    op.create_index("ix_outbound_recipients_due", "outbound_recipients", ["next_attempt_at"])
    op.create_index("ix_outbound_recipients_message", "outbound_recipients", ["message_id"])


def downgrade() -> None:
    op.drop_table("outbound_recipients")
    op.drop_table("outbound_messages")
