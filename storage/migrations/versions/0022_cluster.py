"""Issue 20: what several processes and nodes share. Leases of the work done once per cluster,
documents fetched for the cluster, and the failed-login records of ``server.auth.guard``.

Revision ID: 0022
Revises: 0021
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cluster_leases",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(100), nullable=False),
        sa.Column("expires", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_cluster_leases"),
    )
    op.create_table(
        "cluster_documents",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("updated", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_cluster_documents"),
    )
    op.create_table(
        "login_failures",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("login", sa.String(320), nullable=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_login_failures"),
    )
    op.create_index("ix_login_failures_source", "login_failures", ["source", "at"])
    op.create_index("ix_login_failures_login", "login_failures", ["login", "at"])
    op.create_index("ix_login_failures_at", "login_failures", ["at"])
    op.create_table(
        "login_sources",
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("login", sa.String(320), nullable=False),
        sa.Column("seen", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("source", "login", name="pk_login_sources"),
    )
    op.create_table(
        "login_pacing",
        sa.Column("login", sa.String(320), nullable=False),
        sa.Column("next_slot", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("login", name="pk_login_pacing"),
    )


def downgrade() -> None:
    op.drop_table("login_pacing")
    op.drop_table("login_sources")
    op.drop_index("ix_login_failures_at", "login_failures")
    op.drop_index("ix_login_failures_login", "login_failures")
    op.drop_index("ix_login_failures_source", "login_failures")
    op.drop_table("login_failures")
    op.drop_table("cluster_documents")
    op.drop_table("cluster_leases")
