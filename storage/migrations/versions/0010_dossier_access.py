"""The patient's controls over their dossier: hidden documents and blocked professionals.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dossier_documents") as batch:
        batch.add_column(
            sa.Column("hidden", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "dossier_blocks",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("idnat", sa.String(20), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name="fk_dossier_blocks_account_id_accounts",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "idnat", name="pk_dossier_blocks"),
    )


def downgrade() -> None:
    op.drop_table("dossier_blocks")
    with op.batch_alter_table("dossier_documents") as batch:
        batch.drop_column("hidden")
