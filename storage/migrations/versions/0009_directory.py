"""The directory (issue 5): practitioners, organisations, activities, MSSanté mailboxes,
patients, import runs, and the full-text search documents (SQLite FTS5 / PostgreSQL GIN).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _common() -> list[sa.Column[object]]:
    return [
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("generation", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


def _text(name: str, length: int) -> sa.Column[object]:
    return sa.Column(name, sa.String(length), nullable=False, server_default="")


def upgrade() -> None:
    op.create_table(
        "dir_practitioners",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("idnat", sa.String(20), nullable=False),
        _text("civility", 20),
        _text("family", 200),
        _text("given", 200),
        _text("profession_code", 10),
        _text("profession_label", 200),
        _text("specialty_code", 10),
        _text("specialty_label", 200),
        sa.Column("search", sa.Text(), nullable=False, server_default=""),
        *_common(),
        sa.UniqueConstraint("idnat", name="uq_dir_practitioners_idnat"),
    )
    op.create_table(
        "dir_organisations",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("identifier", sa.String(40), nullable=False),
        _text("finess", 9),
        _text("siret", 14),
        _text("name", 300),
        _text("trade_name", 300),
        _text("address", 500),
        _text("postcode", 10),
        _text("city", 200),
        sa.Column("search", sa.Text(), nullable=False, server_default=""),
        *_common(),
        sa.UniqueConstraint("identifier", name="uq_dir_organisations_identifier"),
    )
    op.create_table(
        "dir_activities",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("key", sa.String(80), nullable=False),
        sa.Column("practitioner_idnat", sa.String(20), nullable=False),
        _text("organisation_identifier", 40),
        _text("mode", 100),
        _text("role", 100),
        *_common(),
        sa.UniqueConstraint("key", name="uq_dir_activities_key"),
    )
    op.create_index("ix_dir_activities_practitioner", "dir_activities", ["practitioner_idnat"])
    op.create_table(
        "dir_mailboxes",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("type", sa.String(3), nullable=False),
        _text("practitioner_idnat", 20),
        _text("organisation_identifier", 40),
        _text("service", 300),
        sa.Column("liste_rouge", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("preferred", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("digitization", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("source", sa.String(10), nullable=False, server_default="mssante"),
        sa.Column("search", sa.Text(), nullable=False, server_default=""),
        *_common(),
        sa.UniqueConstraint("address", name="uq_dir_mailboxes_address"),
    )
    op.create_index("ix_dir_mailboxes_practitioner", "dir_mailboxes", ["practitioner_idnat"])
    op.create_index("ix_dir_mailboxes_organisation", "dir_mailboxes", ["organisation_identifier"])
    op.create_table(
        "dir_patients",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("ins", sa.String(15), nullable=False),
        sa.Column("oid", sa.String(40), nullable=False),
        sa.Column("birth_family", sa.String(200), nullable=False),
        sa.Column("given_names", sa.String(300), nullable=False),
        sa.Column("first_given", sa.String(100), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=False),
        sa.Column("sex", sa.String(1), nullable=False),
        _text("birthplace", 5),
        sa.Column("status", sa.String(5), nullable=False),
        _text("medecin_traitant_idnat", 20),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("ins", name="uq_dir_patients_ins"),
    )
    op.create_table(
        "dir_imports",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("source", sa.String(500), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("lines", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("rejected", sa.Integer(), nullable=False, server_default="0"),
    )
    op.create_table(
        "dir_search",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("kind", sa.String(1), nullable=False),
        sa.Column("ref", sa.String(40), nullable=False),
        sa.Column("doc", sa.Text(), nullable=False),
    )
    op.create_index("ix_dir_search_ref", "dir_search", ["ref"])
    op.create_table(
        "dir_search_words",
        sa.Column("word", sa.String(100), primary_key=True),
    )
    if op.get_bind().dialect.name == "postgresql":  # LIKE 'infirm%' through an index
        op.execute(
            "CREATE INDEX ix_dir_search_words_pattern ON dir_search_words"
            " (word varchar_pattern_ops)"
        )
    if op.get_bind().dialect.name == "sqlite":
        # External-content FTS5 over dir_search.doc; diacritics folded by the tokenizer too.
        op.execute(
            "CREATE VIRTUAL TABLE dir_search_fts USING fts5(doc, content='dir_search', "
            "content_rowid='id', tokenize='unicode61 remove_diacritics 2', prefix='2 3', "
            "detail=column)"
        )
    else:
        # The words of each document, kept beside it: the index's rechecks read them.
        op.execute(
            "ALTER TABLE dir_search ADD COLUMN tsv tsvector"
            " GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, doc)) STORED"
        )
        op.execute("CREATE INDEX ix_dir_search_tsv ON dir_search USING gin (tsv)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE dir_search_fts")
    for table in (
        "dir_search_words",
        "dir_search",
        "dir_imports",
        "dir_patients",
        "dir_mailboxes",
        "dir_activities",
        "dir_organisations",
        "dir_practitioners",
    ):
        op.drop_table(table)
