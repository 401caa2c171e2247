"""Directory search (issue 5): ``dir_search_page_keys``, the page function of migration 0016
with the query's AND-ed parts as separate conditions.

GIN runs one scan key per ``tsv @@ …`` condition and skips through their posting lists
together; one tsquery with every part AND-ed inside is a single key, whose lists it reads far
more of when they are all long. Measured on the benchmark's 2 million documents:
``kinesitherapeute & qqbalper & qqdep69`` 17.9 ms as one key, 9.1 ms as three;
``qqbalper & qqdep76 & (pharmacie | pharmacien)`` 21.7 ms, 13.2 ms. Four parts (the caller
repeats the first when there are fewer: GIN reads an entry shared by two keys once, and
AND-s any beyond the fourth into the last).

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

PAGE_KEYS_FUNCTION = """
CREATE OR REPLACE FUNCTION dir_search_page_keys(
    q1 tsquery, q2 tsquery, q3 tsquery, q4 tsquery, checked tsquery, lim integer, off integer
)
RETURNS TABLE (kind varchar, ref varchar)
LANGUAGE sql STABLE
SET enable_seqscan = off
AS $$
    SELECT s.kind, s.ref
    FROM (
        SELECT d.kind, d.ref, d.tsv FROM dir_search d
        WHERE d.tsv @@ q1 AND d.tsv @@ q2 AND d.tsv @@ q3 AND d.tsv @@ q4 OFFSET 0
    ) s
    WHERE checked IS NULL OR s.tsv @@ checked
    LIMIT lim OFFSET off
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PAGE_KEYS_FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "DROP FUNCTION IF EXISTS dir_search_page_keys("
            "tsquery, tsquery, tsquery, tsquery, tsquery, integer, integer)"
        )
