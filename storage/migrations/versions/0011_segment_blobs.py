"""Segment blob store: the index of blobs appended to segment files (storage/blobs.py).

Blobs written before this revision stay in the per-file layout (``<blob_dir>/ab/<sha256>``)
and are still read from there: a blob without a ``segment_blobs`` row is looked up as a file.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "segment_blobs",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("segment", sa.String(64), nullable=False),
        sa.Column("start", sa.BigInteger(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_segment_blobs"),
    )
    op.create_index("ix_segment_blobs_segment", "segment_blobs", ["segment"])


def downgrade() -> None:
    op.drop_index("ix_segment_blobs_segment", table_name="segment_blobs")
    op.drop_table("segment_blobs")
