"""Special-use folders (RFC 6154), the expunged-UID log for QRESYNC (RFC 7162 §3.2.10), and
message sizes in the clear (the ciphertext length tells the size anyway; STATUS SIZE needs it).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("folders") as batch:
        batch.add_column(sa.Column("special_use", sa.String(32), nullable=True))
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("size", sa.BigInteger(), nullable=False, server_default="0"))
    op.create_table(
        "expunged",
        sa.Column("folder_id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("modseq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("folder_id", "uid", name="pk_expunged"),
        sa.ForeignKeyConstraint(
            ["folder_id"], ["folders.id"], name="fk_expunged_folder_id_folders", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_expunged_folder_modseq", "expunged", ["folder_id", "modseq"])


def downgrade() -> None:
    op.drop_index("ix_expunged_folder_modseq", table_name="expunged")
    op.drop_table("expunged")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("size")
    with op.batch_alter_table("folders") as batch:
        batch.drop_column("special_use")
