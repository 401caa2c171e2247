"""Directory search speed (issue 5): a substring index on mailbox addresses, and on
PostgreSQL a full-text page function that never falls back to reading the whole table.

- ``mailbox-mss:contains``: SQLite gets ``dir_mailboxes_trgm``, an external-content FTS5
  table with the ``trigram`` tokenizer over ``dir_mailboxes.address`` kept by triggers (the
  import's upserts never change an address, its key, so they do not fire the update trigger);
  PostgreSQL a ``pg_trgm`` GIN index on ``lower(address)``, which ``LIKE '%…%'`` uses.
- ``dir_search_page(query, checked, limit, offset)`` (PostgreSQL): the page of documents
  matching the tsquery ``query`` through the GIN index, then ``checked`` (or NULL) on each
  row it found (``OFFSET 0`` keeps it out of the index condition: see
  :func:`directory.search.pg_plan`); planned with ``enable_seqscan = off``. With a LIMIT
  the planner may otherwise read ``dir_search`` in order hoping to meet enough matches
  early; when terms are correlated (a profession in one département) it reads all 2 million
  rows (the 2.3 s worst case of the benchmark). :mod:`directory.search` calls it for the
  queries it expects to match few documents.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

PAGE_FUNCTION = """
CREATE OR REPLACE FUNCTION dir_search_page(q tsquery, checked tsquery, lim integer, off integer)
RETURNS TABLE (kind varchar, ref varchar)
LANGUAGE sql STABLE
SET enable_seqscan = off
AS $$
    SELECT s.kind, s.ref
    FROM (SELECT d.kind, d.ref, d.tsv FROM dir_search d WHERE d.tsv @@ q OFFSET 0) s
    WHERE checked IS NULL OR s.tsv @@ checked
    LIMIT lim OFFSET off
$$
"""


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE dir_mailboxes_trgm USING fts5(address, content='dir_mailboxes',"
            " content_rowid='id', tokenize='trigram', detail=none)"
        )
        op.execute("INSERT INTO dir_mailboxes_trgm(dir_mailboxes_trgm) VALUES ('rebuild')")
        op.execute(
            "CREATE TRIGGER dir_mailboxes_trgm_ai AFTER INSERT ON dir_mailboxes BEGIN"
            " INSERT INTO dir_mailboxes_trgm(rowid, address) VALUES (new.id, new.address); END"
        )
        op.execute(
            "CREATE TRIGGER dir_mailboxes_trgm_ad AFTER DELETE ON dir_mailboxes BEGIN"
            " INSERT INTO dir_mailboxes_trgm(dir_mailboxes_trgm, rowid, address)"
            " VALUES ('delete', old.id, old.address); END"
        )
        op.execute(
            "CREATE TRIGGER dir_mailboxes_trgm_au AFTER UPDATE OF address ON dir_mailboxes BEGIN"
            " INSERT INTO dir_mailboxes_trgm(dir_mailboxes_trgm, rowid, address)"
            " VALUES ('delete', old.id, old.address);"
            " INSERT INTO dir_mailboxes_trgm(rowid, address) VALUES (new.id, new.address); END"
        )
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute(
        "CREATE INDEX ix_dir_mailboxes_address_trgm ON dir_mailboxes"
        " USING gin (lower(address) gin_trgm_ops)"
    )
    op.execute(PAGE_FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("ai", "ad", "au"):
            op.execute(f"DROP TRIGGER IF EXISTS dir_mailboxes_trgm_{trigger}")
        op.execute("DROP TABLE IF EXISTS dir_mailboxes_trgm")
        return
    op.execute("DROP FUNCTION IF EXISTS dir_search_page(tsquery, tsquery, integer, integer)")
    op.execute("DROP INDEX IF EXISTS ix_dir_mailboxes_address_trgm")
