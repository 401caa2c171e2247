"""\\Recent for IMAP4rev1 sessions (RFC 3501 §2.3.2): each folder remembers the first UID no
session has been told of yet. Messages from it on are recent to the next session that selects
the folder (or sees them arrive), which then moves it past them. Existing folders start with
nothing recent.

Revision ID: 0023
Revises: 0022
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "folders",
        sa.Column("first_recent_uid", sa.BigInteger(), nullable=False, server_default="1"),
    )
    op.execute("UPDATE folders SET first_recent_uid = uidnext")


def downgrade() -> None:
    with op.batch_alter_table("folders") as batch:
        batch.drop_column("first_recent_uid")
