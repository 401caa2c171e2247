"""Patients' correspondents: the professionals a patient may reply to.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "patient_correspondents",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("correspondent", sa.LargeBinary(32), nullable=False),
        sa.Column("closed", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name="fk_patient_correspondents_account_id_accounts",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "correspondent", name="pk_patient_correspondents"),
    )


def downgrade() -> None:
    op.drop_table("patient_correspondents")
