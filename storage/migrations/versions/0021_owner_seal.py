"""The owner seal of each message (design.md §2 item 8): its content key and the reader's
compact summary, sealed for the account with a key derived from its private key, written at the
message's first read (or at APPEND). Existing rows keep working: a row without one is opened
with its HPKE-sealed key once, then sealed (a lazy upgrade, no data migration).

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN (nullable, no default): SQLite does not rewrite the table.
    op.add_column("messages", sa.Column("owner_meta", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("owner_meta")
