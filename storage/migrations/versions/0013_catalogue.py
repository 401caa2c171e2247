"""The catalogue of health apps: apps, versions, criteria reviews, status history, patients'
consents and apps' access (issue 10).

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=f"fk_{table}_{column}_{target}", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "cat_apps",
        sa.Column("id", ID, nullable=False),
        sa.Column("app_key", sa.String(100), nullable=False),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("editor_name", sa.String(200), nullable=False),
        sa.Column("editor_siret", sa.String(14), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("categories", sa.Text(), nullable=False),
        sa.Column("service_url", sa.String(2048), nullable=False),
        sa.Column("mailbox", sa.String(320), nullable=False),
        sa.Column("certificate_serial", sa.String(40), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("live_version", sa.Integer(), nullable=True),
        sa.Column("submitter", sa.String(320), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_cat_apps"),
        sa.UniqueConstraint("app_key", name="uq_cat_apps_app_key"),
        sa.UniqueConstraint("mailbox", name="uq_cat_apps_mailbox"),
    )
    op.create_table(
        "cat_versions",
        sa.Column("id", ID, nullable=False),
        sa.Column("app_id", ID, nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(32), nullable=False),
        sa.Column("manifest", sa.Text(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("submitter", sa.String(320), nullable=False),
        sa.Column("submitted_at", WHEN, nullable=False),
        _fk("cat_versions", "app_id", "cat_apps"),
        sa.PrimaryKeyConstraint("id", name="pk_cat_versions"),
        sa.UniqueConstraint("app_id", "number", name="uq_cat_versions_app_number"),
    )
    op.create_table(
        "cat_reviews",
        sa.Column("id", ID, nullable=False),
        sa.Column("version_id", ID, nullable=False),
        sa.Column("criterion", sa.String(40), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("verdict", sa.String(10), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("reviewer", sa.String(200), nullable=False),
        sa.Column("reviewed_at", WHEN, nullable=True),
        _fk("cat_reviews", "version_id", "cat_versions"),
        sa.PrimaryKeyConstraint("id", name="pk_cat_reviews"),
        sa.UniqueConstraint("version_id", "criterion", name="uq_cat_reviews_version_criterion"),
    )
    op.create_table(
        "cat_history",
        sa.Column("id", ID, nullable=False),
        sa.Column("app_id", ID, nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("at", WHEN, nullable=False),
        _fk("cat_history", "app_id", "cat_apps"),
        sa.PrimaryKeyConstraint("id", name="pk_cat_history"),
    )
    op.create_index("ix_cat_history_app_id", "cat_history", ["app_id"])
    op.create_table(
        "cat_consents",
        sa.Column("id", ID, nullable=False),
        sa.Column("app_id", ID, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("granted_at", WHEN, nullable=False),
        sa.Column("expires_at", WHEN, nullable=False),
        sa.Column("revoked_at", WHEN, nullable=True),
        _fk("cat_consents", "app_id", "cat_apps"),
        _fk("cat_consents", "account_id", "accounts"),
        sa.PrimaryKeyConstraint("id", name="pk_cat_consents"),
        sa.UniqueConstraint("app_id", "account_id", name="uq_cat_consents_app_account"),
    )
    op.create_index("ix_cat_consents_account_id", "cat_consents", ["account_id"])
    op.create_table(
        "cat_access",
        sa.Column("id", ID, nullable=False),
        sa.Column("app_id", ID, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(20), nullable=False),
        sa.Column("outcome", sa.String(10), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("at", WHEN, nullable=False),
        _fk("cat_access", "app_id", "cat_apps"),
        _fk("cat_access", "account_id", "accounts"),
        sa.PrimaryKeyConstraint("id", name="pk_cat_access"),
    )
    op.create_index("ix_cat_access_account_app", "cat_access", ["account_id", "app_id", "at"])


def downgrade() -> None:
    op.drop_table("cat_access")
    op.drop_table("cat_consents")
    op.drop_table("cat_history")
    op.drop_table("cat_reviews")
    op.drop_table("cat_versions")
    op.drop_table("cat_apps")
