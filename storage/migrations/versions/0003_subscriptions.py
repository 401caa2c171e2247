"""Subscriptions as names (RFC 9051 §6.3.7: they outlive their mailbox) and a per-account
UIDVALIDITY counter so a re-created mailbox never reuses one (RFC 9051 §2.3.1.1).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subscriptions",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(1000), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "name", name="pk_subscriptions"),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name="fk_subscriptions_account_id_accounts",
            ondelete="CASCADE",
        ),
    )
    op.execute(
        "INSERT INTO subscriptions (account_id, name) "
        "SELECT account_id, name FROM folders WHERE subscribed"
    )
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(
            sa.Column("last_uidvalidity", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("last_uidvalidity")
    op.drop_table("subscriptions")
