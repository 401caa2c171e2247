"""Patient spaces opened by opt-out, their second factor and app passwords (issue 11).

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "patient_spaces",
        sa.Column("id", ID, nullable=False),
        sa.Column("ins", sa.String(15), nullable=False),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("code_digest", sa.String(64), nullable=True),
        sa.Column("invite_code", sa.String(40), nullable=True),
        sa.Column("invited_at", WHEN, nullable=False),
        sa.Column("opens_at", WHEN, nullable=False),
        sa.Column("decided_at", WHEN, nullable=True),
        sa.Column("closed_at", WHEN, nullable=True),
        sa.Column("purge_at", WHEN, nullable=True),
        sa.Column("purged_at", WHEN, nullable=True),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("invite_sent_at", WHEN, nullable=True),
        sa.Column("notify_pending", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("notified_at", WHEN, nullable=True),
        sa.Column("mail_attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("mail_retry_at", WHEN, nullable=True),
        sa.Column("claimed_until", WHEN, nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"],
            name="fk_patient_spaces_account_id_accounts", ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_patient_spaces"),
        sa.UniqueConstraint("ins", name="uq_patient_spaces_ins"),
        sa.UniqueConstraint("code_digest", name="uq_patient_spaces_code_digest"),
    )  # fmt: skip
    op.create_index("ix_patient_spaces_state_opens", "patient_spaces", ["state", "opens_at"])
    op.create_index("ix_patient_spaces_account", "patient_spaces", ["account_id"])

    op.create_table(
        "patient_totp",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("wrapped_secret", sa.LargeBinary(), nullable=False),
        sa.Column("confirmed", sa.Boolean(), nullable=False),
        sa.Column("last_step", sa.BigInteger(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"],
            name="fk_patient_totp_account_id_accounts", ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", name="pk_patient_totp"),
    )  # fmt: skip

    op.create_table(
        "app_passwords",
        sa.Column("id", ID, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(100), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("revoked_at", WHEN, nullable=True),
        sa.Column("last_used_at", WHEN, nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"],
            name="fk_app_passwords_account_id_accounts", ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_app_passwords"),
    )  # fmt: skip
    op.create_index("ix_app_passwords_account", "app_passwords", ["account_id"])


def downgrade() -> None:
    op.drop_table("app_passwords")
    op.drop_table("patient_totp")
    op.drop_index("ix_patient_spaces_account", "patient_spaces")
    op.drop_index("ix_patient_spaces_state_opens", "patient_spaces")
    op.drop_table("patient_spaces")
