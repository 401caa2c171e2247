"""Patients' sessions kept in the database (issue 17 finding 7): a page session, an enrolment
in progress or a token lives only while its row does, so a sign-out, a password change or a
second-factor reset ends every one of an account at once, in every process and node.

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "patient_sessions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("expires_at", WHEN, nullable=False),
        sa.Column("code_digest", sa.String(64), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"],
            name="fk_patient_sessions_account_id_accounts", ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_patient_sessions"),
    )  # fmt: skip
    op.create_index("ix_patient_sessions_account", "patient_sessions", ["account_id"])
    op.create_index("ix_patient_sessions_expires", "patient_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_patient_sessions_expires", "patient_sessions")
    op.drop_index("ix_patient_sessions_account", "patient_sessions")
    op.drop_table("patient_sessions")
