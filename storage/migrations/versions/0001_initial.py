"""Initial schema: accounts (BAL), folders, messages, blobs.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=True),
        sa.Column("public_key", sa.LargeBinary(32), nullable=False),
        sa.Column("wrapped_private_key", sa.LargeBinary(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name="pk_accounts"),
        sa.UniqueConstraint("address", name="uq_accounts_address"),
    )
    op.create_table(
        "folders",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(1000), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("uidnext", sa.BigInteger(), nullable=False),
        sa.Column("highestmodseq", sa.BigInteger(), nullable=False),
        sa.Column("subscribed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_folders"),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name="fk_folders_account_id_accounts",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("account_id", "name", name="uq_folders_account_name"),
    )
    op.create_table(
        "messages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("folder_id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("modseq", sa.BigInteger(), nullable=False),
        sa.Column("flags", sa.Text(), nullable=False),
        sa.Column("blob_id", sa.String(64), nullable=False),
        sa.Column("sealed_key", sa.LargeBinary(), nullable=False),
        sa.Column("meta", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_messages"),
        sa.ForeignKeyConstraint(
            ["folder_id"], ["folders.id"], name="fk_messages_folder_id_folders", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("folder_id", "uid", name="uq_messages_folder_uid"),
    )
    op.create_index("ix_messages_folder_modseq", "messages", ["folder_id", "modseq"])
    op.create_index("ix_messages_blob", "messages", ["blob_id"])
    op.create_table(
        "blobs",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_blobs"),
    )


def downgrade() -> None:
    op.drop_table("blobs")
    op.drop_index("ix_messages_blob", table_name="messages")
    op.drop_index("ix_messages_folder_modseq", table_name="messages")
    op.drop_table("messages")
    op.drop_table("folders")
    op.drop_table("accounts")
