"""Directory search (issue 5): PostgreSQL builds each document's ``tsv`` from its words
directly, ``array_to_tsvector`` of the space-separated words, instead of running the text
parser (``to_tsvector('simple', doc)``).

A document is already what the parser would make of it: lower-case ``[a-z0-9]`` words
separated by spaces (:func:`directory.text.fold`), so both give the same lexemes: on the
benchmark's 2.1 million documents not one differs, and ``tests/directory/test_rebuild_pg.py``
checks it on synthetic files. The parser classifies every token (URL, e-mail, number,
hyphenated word …): on those 2.1 million documents it costs 15.4 s of the server's CPU,
against 5.5 s here. The vector carries no word positions (no phrase query or ranking uses
them), which also makes it a quarter smaller. Words are cut at ``text.MAX_WORD`` characters,
far under the 2,047 bytes a lexeme may have.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

LEXEMES = "array_to_tsvector(array_remove(string_to_array(doc, ' ', ''), NULL))"
PARSED = "to_tsvector('simple'::regconfig, doc)"


def _tsv(expression: str) -> None:
    op.execute("DROP INDEX IF EXISTS ix_dir_search_tsv")
    op.execute("ALTER TABLE dir_search DROP COLUMN tsv")
    op.execute(
        f"ALTER TABLE dir_search ADD COLUMN tsv tsvector GENERATED ALWAYS AS ({expression}) STORED"
    )
    op.execute("CREATE INDEX ix_dir_search_tsv ON dir_search USING gin (tsv)")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _tsv(LEXEMES)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _tsv(PARSED)
