"""The agenda: one encrypted row per event component, and the reminders to send (issue 9).

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "agenda_components",
        sa.Column("id", ID, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("uid_digest", sa.String(64), nullable=False),
        sa.Column("recurrence_id", sa.String(20), nullable=False, server_default=""),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_ref", sa.LargeBinary(16), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name="fk_agenda_components_account_id_accounts",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_agenda_components"),
        sa.UniqueConstraint(
            "account_id", "uid_digest", "recurrence_id", name="uq_agenda_component"
        ),
    )

    op.create_table(
        "agenda_reminders",
        sa.Column("id", ID, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("uid_digest", sa.String(64), nullable=False),
        sa.Column("occurrence", sa.String(20), nullable=False),
        sa.Column("alarm", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name="fk_agenda_reminders_account_id_accounts",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_agenda_reminders"),
        sa.UniqueConstraint(
            "account_id", "uid_digest", "occurrence", "alarm", name="uq_agenda_reminder"
        ),
    )
    op.create_index("ix_agenda_reminders_due", "agenda_reminders", ["sent_at", "due_at"])


def downgrade() -> None:
    op.drop_table("agenda_reminders")
    op.drop_table("agenda_components")
