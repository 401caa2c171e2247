"""Directory search: one interface over SQLite FTS5 and PostgreSQL full text.

Each active practitioner and organisation has one document in ``dir_search``: accent-free,
lower-case words (names, profession and specialty labels, structure names, towns, postcodes)
plus filter tokens (:mod:`directory.text`: ``qqprof10``, ``qqsfsm54``, ``qqvlyon``,
``qqcp69003``, ``qqbalper`` …). A query is then a single full-text AND: each word typed is a
*prefix* term (``dupont* cardio* lyon*``) and each filter an exact token, so the engines'
inverted indexes answer every combination. SQLite: an external-content FTS5 table with the
``unicode61 remove_diacritics 2`` tokenizer, prefix indexes for 2 and 3 characters and
``detail=column`` (no word positions: no phrase queries are needed). PostgreSQL: a GIN index
on the stored column ``tsv = to_tsvector('simple', doc)`` and ``to_tsquery('simple',
'dupont:* & cardio:*')``. Liste-rouge mailboxes add nothing to any document.

Results come in two tiers (:func:`find_refs`): documents with every typed word as a whole
word first, then those where a word is only a prefix; each tier in index order. No finer
relevance score: scoring every match of a common prefix would cost far more than the 20 ms
budget; callers narrow with more words or filters.
"""

from __future__ import annotations

import re
import time
from bisect import bisect_left
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from directory.text import (
    ORGANISATION,
    PRACTITIONER,
    city_token,
    department_token,
    fold,
    mailbox_type_token,
    postcode_token,
    profession_token,
    specialty_token,
    squash,
)
from storage.db import Database

MIN_PREFIX = 2
MAX_TERMS = 8


class SearchError(ValueError):
    pass


def _document_inserts(
    dialect: str, one: bool, mailboxes: bool = True, into: str = "dir_search", org_base: int = -1
) -> tuple[str, str]:
    """INSERT … SELECT of the practitioner and organisation documents (all, or one ``?``);
    ``mailboxes=False`` when there are none yet (a first import saves a lookup a document).
    ``org_base >= 0``: ids are given, a practitioner's row id and ``org_base`` + an
    organisation's (:func:`pg_parallel_rebuild`)."""
    agg = "group_concat({}, ' ')" if dialect == "sqlite" else "string_agg({}, ' ')"
    org_words = agg.format("o.search")
    mbx_words = agg.format("m.search")
    true = "1" if dialect == "sqlite" else "true"
    only_p = " AND p.idnat = ?" if one else ""
    only_o = " AND o.identifier = ?" if one else ""
    p_mailboxes = o_mailboxes = ""
    if mailboxes:
        p_mailboxes = (
            f" || ' ' || COALESCE((SELECT {mbx_words} FROM dir_mailboxes m"
            " WHERE m.practitioner_idnat = p.idnat AND m.active AND NOT m.liste_rouge), '')"
        )
        o_mailboxes = (
            f" || ' ' || COALESCE((SELECT {mbx_words} FROM dir_mailboxes m"
            # "|| ''": no index on practitioner_idnat for this test (80,000 rows are '').
            " WHERE m.organisation_identifier = o.identifier AND m.practitioner_idnat || '' = ''"
            " AND m.active AND NOT m.liste_rouge), '')"
        )
    columns, p_id, o_id = "kind, ref, doc", "", ""
    if org_base >= 0:
        columns, p_id, o_id = "id, kind, ref, doc", "p.id, ", f"{int(org_base)} + o.id, "
    practitioners = (
        f"INSERT INTO {into} ({columns}) SELECT {p_id}'P', p.idnat, p.search"
        f" || ' ' || COALESCE((SELECT {org_words} FROM dir_activities a"
        " JOIN dir_organisations o ON o.identifier = a.organisation_identifier"
        f" WHERE a.practitioner_idnat = p.idnat AND a.active), ''){p_mailboxes}"
        f" FROM dir_practitioners p WHERE p.active = {true}{only_p} ORDER BY p.id"
    )
    organisations = (
        f"INSERT INTO {into} ({columns}) SELECT {o_id}'O', o.identifier, o.search"
        f" || ' {ORGANISATION} '{o_mailboxes}"
        f" FROM dir_organisations o WHERE o.active = {true}{only_o} ORDER BY o.id"
    )
    return practitioners, organisations


#: FTS5 merges its segments as they are written (``automerge``): for a bulk write, one merge
#: at the end (``optimize``, leaving a single segment) costs half as much CPU (2 million
#: documents: 10.7 s instead of 18.8 s). The defaults are then restored for the daily writes.
def fts_bulk(table: str, *commands: str) -> list[str]:
    """FTS5 ``commands`` (``rebuild`` …) on ``table`` with one merge at the end."""
    return [
        f"INSERT INTO {table}({table}, rank) VALUES ('automerge', 0)",
        f"INSERT INTO {table}({table}, rank) VALUES ('crisismerge', 1000)",
        *(f"INSERT INTO {table}({table}) VALUES ('{c}')" for c in commands),
        f"INSERT INTO {table}({table}) VALUES ('optimize')",
        f"INSERT INTO {table}({table}, rank) VALUES ('automerge', 4)",
        f"INSERT INTO {table}({table}, rank) VALUES ('crisismerge', 16)",
    ]


_FTS_BULK_BEGIN = tuple(fts_bulk("dir_search_fts")[:2])
_FTS_BULK_END = tuple(fts_bulk("dir_search_fts")[2:])


def rebuild_statements(dialect: str, mailboxes: bool = True) -> list[str]:
    """SQL that rebuilds every search document from the directory tables."""
    practitioners, organisations = _document_inserts(dialect, one=False, mailboxes=mailboxes)
    if dialect == "sqlite":
        return [
            "DELETE FROM dir_search",
            practitioners,
            organisations,
            *_FTS_BULK_BEGIN,
            "INSERT INTO dir_search_fts(dir_search_fts) VALUES ('rebuild')",
            *_FTS_BULK_END,
        ]
    return [
        "DROP INDEX IF EXISTS ix_dir_search_tsv",
        "TRUNCATE dir_search RESTART IDENTITY",
        practitioners,
        organisations,
        "CREATE INDEX ix_dir_search_tsv ON dir_search USING gin (tsv)",
    ]


#: PostgreSQL: the table a parallel rebuild fills before it takes ``dir_search``'s place.
NEXT = "dir_search_next"


@dataclass(frozen=True)
class ParallelRebuild:
    """A full rebuild of the PostgreSQL documents by two connections at once (see
    :func:`pg_parallel_rebuild`): for each pair of ``build`` then of ``index``, each
    connection runs its list of statements, both at once; one transaction runs ``swap``."""

    prepare: list[str]
    build: list[tuple[list[str], list[str]]]
    index: tuple[list[str], list[str]]
    swap: list[str]


#: The documents of practitioners and organisations that have a public mailbox.
HAS_MAILBOX = {
    "p": "EXISTS (SELECT 1 FROM dir_mailboxes m WHERE m.practitioner_idnat = p.idnat"
    " AND m.active AND NOT m.liste_rouge)",
    "o": "EXISTS (SELECT 1 FROM dir_mailboxes m WHERE m.organisation_identifier = o.identifier"
    " AND m.practitioner_idnat || '' = '' AND m.active AND NOT m.liste_rouge)",
}


def pg_parallel_rebuild(mailboxes: bool, splits: tuple[int, int], org_base: int) -> ParallelRebuild:
    """Every document written into a new table by two connections, then put in place.

    One PostgreSQL backend uses one core: a rebuild of 2 million documents in one statement
    left the machine's second core idle for half a minute. Here two connections write at
    once, in two rounds when there are mailboxes: first the documents of those without a
    public mailbox, then of those with one, so that the latter end up together at the
    table's end. Searches with a mailbox filter (``qqbalper``: a fifth of the documents)
    then intersect posting lists over a narrow range of the heap, which GIN skips through:
    ``qqbalper & qqdep76 & (pharmacie | pharmacien)`` 12.7 ms laid out so, 22.3 ms with
    those documents spread through the table. In each round the first connection writes
    the practitioners whose row id is below that round's split, the second the others then
    the organisations (the caller picks the splits so both have as much to do).

    The table is only read by searches once complete: ``swap`` drops the old one and gives
    the new one its name, its indexes' names and the id sequence, in one transaction, so a
    search sees either every old document or every new one. A document's id is its
    practitioner's row id, or ``org_base`` (above every practitioner id) + its
    organisation's: unique, whichever connection writes it."""
    practitioners, organisations = _document_inserts(
        "postgresql", one=False, mailboxes=mailboxes, into=NEXT, org_base=org_base
    )
    p_where, o_where = " WHERE p.active = true", " WHERE o.active = true"
    assert p_where in practitioners and o_where in organisations
    rounds = [("NOT ", splits[0]), ("", splits[1])] if mailboxes else [("", splits[0])]
    build = []
    for negation, split in rounds:
        p_has = f" AND {negation}{HAS_MAILBOX['p']}" if mailboxes else ""
        o_has = f" AND {negation}{HAS_MAILBOX['o']}" if mailboxes else ""
        first = practitioners.replace(p_where, f"{p_where}{p_has} AND p.id < {int(split)}")
        second = practitioners.replace(p_where, f"{p_where}{p_has} AND p.id >= {int(split)}")
        build.append(([first], [second, organisations.replace(o_where, f"{o_where}{o_has}")]))
    return ParallelRebuild(
        prepare=[
            f"DROP TABLE IF EXISTS {NEXT}",
            # Columns, NOT NULL and the generated ``tsv``; no index yet (built once, below).
            f"CREATE TABLE {NEXT} (LIKE dir_search INCLUDING GENERATED)",
        ],
        build=build,
        index=(
            [f"CREATE INDEX ix_{NEXT}_tsv ON {NEXT} USING gin (tsv)"],
            [
                # Not yet the primary key: ALTER TABLE would wait for the GIN build's lock.
                f"CREATE UNIQUE INDEX pk_{NEXT} ON {NEXT} (id)",
                f"CREATE INDEX ix_{NEXT}_ref ON {NEXT} (ref)",
                # No ANALYZE here: its lock conflicts with CREATE INDEX's, it would wait.
            ],
        ),
        swap=[
            "LOCK TABLE dir_search IN ACCESS EXCLUSIVE MODE",
            "ALTER SEQUENCE dir_search_id_seq OWNED BY NONE",
            "DROP TABLE dir_search",
            f"ALTER TABLE {NEXT} RENAME TO dir_search",
            f"ALTER TABLE dir_search ADD CONSTRAINT pk_dir_search PRIMARY KEY USING INDEX"
            f" pk_{NEXT}",
            f"ALTER INDEX ix_{NEXT}_ref RENAME TO ix_dir_search_ref",
            f"ALTER INDEX ix_{NEXT}_tsv RENAME TO ix_dir_search_tsv",
            "ALTER TABLE dir_search ALTER COLUMN id SET DEFAULT nextval('dir_search_id_seq')",
            "ALTER SEQUENCE dir_search_id_seq OWNED BY dir_search.id",
            "SELECT setval('dir_search_id_seq', (SELECT coalesce(max(id), 0) + 1 FROM dir_search),"
            " false)",
        ],
    )


def changed_statements(dialect: str) -> list[str]:
    """Fill the temporary table ``dir_refresh(kind, ref)`` with the owners whose documents an
    MSSanté import changed: owners of mailboxes written or closed since ``:since``, and the
    practitioners and organisations that import added (``generation = :gen``)."""
    ignore = "OR IGNORE " if dialect == "sqlite" else ""
    tail = "" if dialect == "sqlite" else " ON CONFLICT DO NOTHING"
    return [
        "CREATE TEMP TABLE IF NOT EXISTS dir_refresh (kind VARCHAR(1), ref VARCHAR(40),"
        " PRIMARY KEY (kind, ref))",
        "DELETE FROM dir_refresh",
        f"INSERT {ignore}INTO dir_refresh SELECT DISTINCT 'P', practitioner_idnat FROM"
        " dir_mailboxes WHERE updated_at >= :since AND practitioner_idnat <> ''" + tail,
        f"INSERT {ignore}INTO dir_refresh SELECT DISTINCT 'O', organisation_identifier FROM"
        " dir_mailboxes WHERE updated_at >= :since AND practitioner_idnat = ''"
        " AND organisation_identifier <> ''" + tail,
        f"INSERT {ignore}INTO dir_refresh SELECT 'P', idnat FROM dir_practitioners"
        " WHERE generation = :gen" + tail,
        f"INSERT {ignore}INTO dir_refresh SELECT 'O', identifier FROM dir_organisations"
        " WHERE generation = :gen" + tail,
    ]


def refresh_statements(dialect: str, bulk: bool = False, reindex: bool = False) -> list[str]:
    """Rebuild the documents listed in ``dir_refresh`` (after :func:`changed_statements`);
    ``bulk`` when they are many (one FTS5 merge at the end), ``reindex`` when so many that
    rebuilding the whole FTS5 index costs less than deleting and adding each (SQLite: beyond
    about one document in six, from the measured costs: 2 million rebuilt in 10.7 CPU
    seconds, 460,000 deleted and added in 15.5)."""
    practitioners, organisations = _document_inserts(dialect, one=False)
    practitioners = practitioners.replace(
        " WHERE p.active", " JOIN dir_refresh r ON r.kind = 'P' AND r.ref = p.idnat WHERE p.active"
    )
    organisations = organisations.replace(
        " WHERE o.active",
        " JOIN dir_refresh r ON r.kind = 'O' AND r.ref = o.identifier WHERE o.active",
    )
    listed = "SELECT s.id FROM dir_search s JOIN dir_refresh r ON r.kind = s.kind AND r.ref = s.ref"
    out = []
    if dialect == "sqlite" and reindex:
        return [
            f"DELETE FROM dir_search WHERE id IN ({listed})",
            practitioners,
            organisations,
            *fts_bulk("dir_search_fts", "rebuild"),
        ]
    if dialect == "sqlite":
        # External-content FTS5: each old text is handed back to delete its entries.
        out.append(
            "INSERT INTO dir_search_fts(dir_search_fts, rowid, doc) SELECT 'delete', s.id, s.doc"
            " FROM dir_search s JOIN dir_refresh r ON r.kind = s.kind AND r.ref = s.ref"
        )
    if dialect == "sqlite":
        out.append(f"DELETE FROM dir_search WHERE id IN ({listed})")
    else:  # a join, not IN (…): one scan of dir_search instead of two (2.3 s, not 5.2)
        out.append(
            "DELETE FROM dir_search s USING dir_refresh r WHERE r.kind = s.kind AND r.ref = s.ref"
        )
    out += [practitioners, organisations]
    if dialect == "sqlite":
        out.append(
            "INSERT INTO dir_search_fts(rowid, doc) SELECT s.id, s.doc FROM dir_search s"
            " JOIN dir_refresh r ON r.kind = s.kind AND r.ref = s.ref"
        )
        if bulk:
            out = [*_FTS_BULK_BEGIN, *out, *_FTS_BULK_END]
    else:
        # GIN queues the new documents' entries in a pending list (``fastupdate``) that every
        # search reads whole until a vacuum merges it: merged here, at the import's end.
        out.append("SELECT gin_clean_pending_list('ix_dir_search_tsv'::regclass)")
    return out


def refresh_document(conn: Connection, kind: str, ref: str) -> None:
    """Rebuild the one document of practitioner (``P``) or organisation (``O``) ``ref``."""
    dialect = conn.dialect.name
    practitioners, organisations = _document_inserts(dialect, one=True)
    insert = practitioners if kind == "P" else organisations
    key = {"kind": kind, "ref": ref}
    if dialect == "sqlite":
        # External-content FTS5: the old text must be handed back to delete its entries.
        conn.execute(
            text(
                "INSERT INTO dir_search_fts(dir_search_fts, rowid, doc) SELECT 'delete', id, doc"
                " FROM dir_search WHERE kind = :kind AND ref = :ref"
            ),
            key,
        )
    conn.execute(text("DELETE FROM dir_search WHERE kind = :kind AND ref = :ref"), key)
    conn.execute(text(insert.replace("?", ":ref")), key)
    if dialect == "sqlite":
        conn.execute(
            text(
                "INSERT INTO dir_search_fts(rowid, doc) SELECT id, doc FROM dir_search"
                " WHERE kind = :kind AND ref = :ref"
            ),
            key,
        )


@dataclass(frozen=True)
class Query:
    text: str = ""
    profession: str = ""
    specialty: str = ""
    city: str = ""
    postcode: str = ""
    mailbox_type: str = ""
    kind: str = ""  # "P" practitioners only, "O" organisations only, "" both
    limit: int = 20
    offset: int = 0

    def terms(self) -> tuple[list[str], list[str]]:
        """(prefix words, exact tokens); :class:`SearchError` if there is nothing to search."""
        words = [w for w in fold(self.text).split() if w]
        short = [w for w in words if len(w) < MIN_PREFIX and not w.isdigit()]
        words = [w for w in words if w not in short]
        exact = []
        if self.profession:
            exact.append(profession_token(self.profession))
        if self.specialty:
            exact.append(specialty_token(self.specialty))
        if self.city:
            exact.append(city_token(self.city))
        if self.mailbox_type:
            exact.append(mailbox_type_token(self.mailbox_type))
        if self.kind == "P":
            exact.append(PRACTITIONER)
        elif self.kind == "O":
            exact.append(ORGANISATION)
        prefix = words[:MAX_TERMS]
        code = squash(self.postcode)
        if len(code) == 5:
            exact.append(postcode_token(code))
        elif code and len(code) == (3 if code.startswith("97") else 2):
            exact.append(department_token(code))  # "69": the whole département
        elif code:
            prefix.append(postcode_token(code))
        if not prefix and not exact:
            raise SearchError("give at least one word of two letters or a filter")
        if not prefix and exact in ([PRACTITIONER], [ORGANISATION]):
            raise SearchError("give at least one word of two letters or a filter")
        return prefix, exact


@dataclass
class Hit:
    kind: str  # "P" or "O"
    ref: str  # IdNat or structure identifier
    name: str
    profession: str = ""
    specialty: str = ""
    places: list[str] = field(default_factory=list)
    mailboxes: list[tuple[str, str]] = field(default_factory=list)  # (address, type)


_TSQUERY = re.compile(r"^[a-z0-9:&|*()! ]+$")


def tsquery_literal(expr: str) -> str:
    """The query as a literal, not a parameter: PostgreSQL then plans it with the index's
    statistics (a generic plan for an unknown query may read the whole table to find a
    rare combination). Only our own folded words and operators can be in it."""
    if not _TSQUERY.match(expr):
        raise SearchError("unexpected characters in a full-text query")
    return f"to_tsquery('simple', '{expr}')"


#: A typed word that starts at most this many words of the vocabulary is searched as those
#: words; beyond, as a prefix.
MAX_EXPANSION = 24


async def _rows(db: Database, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """One query's rows. PostgreSQL: through the dedicated lookup connections (one round
    trip; the pooled path adds a ping before each query); SQLite: the pooled connections,
    whose thread keeps the event loop free while a full-text query runs."""
    if db.dialect == "postgresql":
        return await db.lookup(sql, *params)
    return await db.raw_rows(sql, *params)


#: Vocabulary expansions kept in-process per database (least recently used dropped beyond
#: this many); the vocabulary changes only with an import, so they are kept as long as the
#: imports recorded in ``dir_imports`` stay the same (:func:`expand_all`).
EXPANSION_CACHE = 4096
_EXPANSIONS: dict[str, tuple[str, OrderedDict[str, tuple[str, tuple[str, ...]]]]] = {}
#: Started and finished imports, as one text: an import adds its words as it goes and its
#: documents at its end, so both change it; the times tell apart two databases of one URL.
_IMPORTS_KEY = (
    "SELECT count(*) || ':' || coalesce(max(id), 0) || ':' || count(finished_at) || ':'"
    " || coalesce(CAST(max(started_at) AS text), '') || ':'"
    " || coalesce(CAST(max(finished_at) AS text), '')"
    " FROM dir_imports"
)


def _needs_vocabulary(dialect: str, word: str) -> bool:
    return not (word.startswith("qq") or (len(word) <= 3 and dialect == "sqlite"))


async def _expand_word(db: Database, word: str) -> tuple[str, tuple[str, ...]]:
    if db.dialect == "sqlite":
        sql = "SELECT word FROM dir_search_words WHERE word >= ? AND word < ? ORDER BY word LIMIT ?"
    else:  # the pattern operators: the varchar_pattern_ops index, whatever the collation
        sql = (
            "SELECT word FROM dir_search_words WHERE word ~>=~ ? AND word ~<~ ?"
            " ORDER BY word USING ~<~ LIMIT ?"
        )
    # Folded words are letters and digits, all before "{".
    rows = await _rows(db, sql, word, word + "{", MAX_EXPANSION + 1)
    words = tuple(str(r[0]) for r in rows)
    if not words or len(words) > MAX_EXPANSION:
        return "prefix", (word,)
    return "exact", words


async def expand_all(
    db: Database, words: list[str], verify_later: bool = False
) -> tuple[list[tuple[str, list[str]]], str | None]:
    """:func:`expand` of each word, from the in-process cache while no import has started or
    finished since (one query checks that, instead of one query per word), and ``None``.

    ``verify_later``: when every word is cached, that check is left to the caller, which
    runs ``_IMPORTS_KEY`` in its own statement and compares it with the key returned
    (see :func:`_pg_find`); ``None`` when it was checked here."""
    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    for word in words:
        if not _needs_vocabulary(db.dialect, word):
            out[word] = ("prefix", (word,))
    pending = None
    if len(out) < len(words):
        cached = _EXPANSIONS.get(db.url)
        todo = [w for w in words if w not in out]
        if verify_later and cached is not None and all(w in cached[1] for w in todo):
            pending = cached[0]
        else:
            key = str((await _rows(db, _IMPORTS_KEY))[0][0])
            if cached is None or cached[0] != key:
                cached = (key, OrderedDict())
                _EXPANSIONS[db.url] = cached
        memo = cached[1]
        for word in todo:
            found = memo.get(word)
            if found is None:
                found = await _expand_word(db, word)
                memo[word] = found
                if len(memo) > EXPANSION_CACHE:
                    memo.popitem(last=False)
            else:
                memo.move_to_end(word)
            out[word] = found
    return [(out[w][0], list(out[w][1])) for w in words], pending


async def expand(db: Database, word: str) -> tuple[str, list[str]]:
    """``("prefix", [word])`` or ``("exact", words it starts)``.

    Both engines handle a prefix by gathering every row of every matching word before
    intersecting (unless a prefix index covers it: two and three letters in SQLite), which
    for a frequent word (``infirm*``: hundreds of thousands of rows) is the slow part of a
    query; the same words as exact terms are intersected lazily. PostgreSQL has no prefix
    index: short prefixes are expanded there too.
    """
    return (await expand_all(db, [word]))[0][0]


#: PostgreSQL: a query expected to match more than this share of the documents reads the
#: table in order and stops at the page's end (see :func:`pg_page`).
DENSE = 0.005
#: How long the lexeme frequencies read from ``pg_stats`` are kept (seconds).
STATS_TTL = 600.0
_STATS: dict[str, tuple[float, dict[str, float], int]] = {}


async def lexeme_frequencies(db: Database) -> tuple[dict[str, float], int]:
    """Share of the documents holding each frequent lexeme, and the number of documents,
    from the statistics ``ANALYZE`` keeps on ``dir_search`` (PostgreSQL; empty before any
    ANALYZE)."""
    cached = _STATS.get(db.url)
    if cached is not None and time.monotonic() - cached[0] < STATS_TTL:
        return cached[1], cached[2]
    rows = await db.raw_rows(
        "SELECT most_common_elems::text::text[], most_common_elem_freqs FROM pg_stats"
        " WHERE schemaname = current_schema() AND tablename = 'dir_search' AND attname = 'tsv'"
    )
    freqs: dict[str, float] = {}
    if rows and rows[0][0] is not None:
        freqs = {str(w): float(f) for w, f in zip(rows[0][0], rows[0][1], strict=False)}
    count = await db.raw_rows("SELECT reltuples::bigint FROM pg_class WHERE relname = 'dir_search'")
    documents = max(0, int(count[0][0])) if count else 0
    _STATS[db.url] = (time.monotonic(), freqs, documents)
    return freqs, documents


#: PostgreSQL: a group of alternatives (a prefix and the words it starts) in more than this
#: share of the documents is checked on the rows the other terms found (see :func:`pg_plan`).
FREQUENT = 0.02
#: At most this many rows are expected to be read to check a frequent group on them.
CHECKED_ROWS = 10_000
#: … and a frequent single word (see :func:`pg_plan`).
CHECKED_SINGLE_ROWS = 2_000


@dataclass(frozen=True)
class PgPlan:
    indexed: str  # tsquery the GIN index answers
    checked: str  # tsquery checked on each row it found ("" for none)
    dense: bool  # expected to match more than DENSE of the documents


def pg_plan(
    groups: list[tuple[str, list[str]]], exact: list[str], freqs: dict[str, float], documents: int
) -> PgPlan:
    """How PostgreSQL should run a query, from the lexeme frequencies of ``pg_stats``.

    GIN intersects single words lazily (the rarest drives), but gathers every document of a
    prefix or of a group of alternatives into a bitmap first: 100–400 ms for ``le:*`` or
    ``(le | leroy | …)`` on 2 million documents. Such a group, when frequent, is therefore
    checked on the rows the other terms found, if they should be at most ``CHECKED_ROWS``
    (each costs a heap fetch). A word absent from the statistics counts as rare (their
    smallest frequency); terms are taken as independent.
    """
    rare = min(freqs.values(), default=0.0)
    singles: list[tuple[str, float]] = [(t, freqs.get(t, rare)) for t in exact]
    several: list[tuple[str, float]] = []
    for how, words in groups:
        if how == "exact" and len(words) == 1:
            singles.append((words[0], freqs.get(words[0], rare)))
        elif how == "exact":
            share = min(1.0, sum(freqs.get(w, rare) for w in words))
            several.append(("(" + " | ".join(words) + ")", share))
        else:
            share = min(1.0, sum(f for w, f in freqs.items() if w.startswith(words[0])))
            several.append((f"{words[0]}:*", share or rare))
    indexed = [t for t, _ in singles]
    found = 1.0  # share of the documents the indexed terms find
    for _, share in singles:
        found *= share
    checked = []
    for part, share in sorted(several, key=lambda g: g[1]):
        if indexed and share > FREQUENT and found * documents <= CHECKED_ROWS:
            checked.append(part)
        else:
            indexed.append(part)
            found *= share
    total = found
    for part, share in several:
        if part in checked:
            total *= share
    # A frequent single word (a profession's token: one document in four) is in the index
    # too, unless the other indexed terms should find very few rows: GIN then still reads
    # its whole posting list, where checking those rows costs less (measured on the
    # benchmark: "qqvvilleurbanne & (roch | …)" finds 842 rows; with qqprof10 indexed too
    # 5.5–11 ms, checked on them 3.2–5.4 ms).
    for term, share in sorted(singles, key=lambda t: -t[1]):
        if share <= FREQUENT or len(indexed) < 2:
            break
        if found / share * documents > CHECKED_SINGLE_ROWS:
            continue
        indexed.remove(term)
        checked.insert(0, term)
        found /= share
    return PgPlan(" & ".join(indexed), " & ".join(checked), total > DENSE)


def _expression(dialect: str, groups: list[tuple[str, list[str]]], exact: list[str]) -> str:
    parts = []
    for how, words in groups:
        if how == "prefix":
            parts.append(match_expression(dialect, words, []))
        elif len(words) == 1:
            parts.append(match_expression(dialect, [], words))
        else:
            joiner = " OR " if dialect == "sqlite" else " | "
            parts.append("(" + joiner.join(match_expression(dialect, [], [w]) for w in words) + ")")
    if exact:
        parts.append(match_expression(dialect, [], exact))
    return (" AND " if dialect == "sqlite" else " & ").join(parts)


def expression_plan(expr: str, freqs: dict[str, float]) -> PgPlan:
    """A :class:`PgPlan` for a ready tsquery of ANDed groups (``a & (b | c) & d:*``, as the
    FHIR search writes them): all indexed, ``dense`` estimated as in :func:`pg_plan`."""
    rare = min(freqs.values(), default=0.0)
    # Sorted once, the lexemes a prefix starts are one slice: a search with many prefixes
    # costs a binary search each, not a pass over the statistics (issue 26).
    words = sorted(freqs)
    running = [0.0]
    for word in words:
        running.append(running[-1] + freqs[word])
    share = 1.0
    for part in expr.split(" & "):
        group = 0.0
        for term in part.strip("() ").split(" | "):
            if term.endswith(":*"):
                stem = term[:-2]
                first, last = bisect_left(words, stem), bisect_left(words, stem + "\uffff")
                group += (running[last] - running[first]) or rare
            else:
                group += freqs.get(term, rare)
        share *= min(1.0, group)
    return PgPlan(expr, "", share > DENSE)


def _pg_page_sql(plan: PgPlan, limit: int, offset: int, params: list[Any]) -> str:
    """SELECT of (kind, ref) of the documents matching ``plan``, ``limit`` from ``offset``;
    appends its parameters to ``params``. The dense form carries its query as a literal (the
    planner needs it to read in order); the sparse form passes it as a parameter, so its
    statement stays the same and the driver's prepared statement is reused (one round trip
    instead of two): ``dir_search_page_keys``'s own plan does not depend on the value."""
    full = " & ".join(e for e in (plan.indexed, plan.checked) if e)
    if plan.dense:
        params += [limit, offset]
        match = tsquery_literal(full)
        return f"SELECT kind, ref FROM dir_search WHERE tsv @@ {match} LIMIT ? OFFSET ?"
    tsquery_literal(plan.indexed)  # the same check of the characters
    if plan.checked:
        tsquery_literal(plan.checked)
    params += [*page_keys(plan.indexed), plan.checked or None, limit, offset]
    query = "to_tsquery('simple', ?::text)"
    return f"SELECT kind, ref FROM dir_search_page_keys({', '.join([query] * 5)}, ?, ?)"


#: ``dir_search_page_keys`` (migration 0017) takes the indexed query in this many parts.
PAGE_KEYS = 4


def page_keys(indexed: str) -> list[str]:
    """The AND-ed parts of ``indexed`` as ``PAGE_KEYS`` queries: GIN runs each as its own
    scan key and skips through their posting lists together (about twice as fast as one key
    when all are long: migration 0017). Fewer parts: the first repeated (GIN reads an entry
    shared by two keys once); more: the last ones AND-ed together. Groups of alternatives
    hold no ``&``."""
    parts = indexed.split(" & ")
    if len(parts) > PAGE_KEYS:
        parts = [*parts[: PAGE_KEYS - 1], " & ".join(parts[PAGE_KEYS - 1 :])]
    return parts + [parts[0]] * (PAGE_KEYS - len(parts))


async def pg_page(db: Database, plan: PgPlan, limit: int, offset: int) -> list[tuple[Any, ...]]:
    """(kind, ref) of a page of PostgreSQL documents matching ``plan``.

    GIN only answers with a bitmap of *every* match, built before the first row is read:
    cheap for a rare combination, slow for a frequent one (``le`` alone: one document in
    20). A ``dense`` query therefore reads the table in order and stops when the page is
    full, which the planner chooses by itself; any other goes through
    ``dir_search_page_keys`` (migrations 0016 and 0017), planned without sequential scans:
    the planner would otherwise read the table in order whenever it overestimates the
    matches of correlated terms (a profession in a département: the 2.3 s worst case of the
    first benchmark).
    """
    params: list[Any] = []
    sql = _pg_page_sql(plan, limit, offset, params)
    return await _rows(db, sql, *params)


def match_expression(dialect: str, prefix: list[str], exact: list[str]) -> str:
    if dialect == "sqlite":
        return " AND ".join([f'"{w}"*' for w in prefix] + [f'"{t}"' for t in exact])
    return " & ".join([f"{w}:*" for w in prefix] + list(exact))


async def _pg_plan(
    db: Database,
    groups: list[tuple[str, list[str]]],
    exact: list[str],
    without: list[str] | None = None,
) -> PgPlan:
    plan = pg_plan(groups, exact, *await lexeme_frequencies(db))
    if without:
        unwanted = f"!({match_expression(db.dialect, [], without)})"
        plan = PgPlan(plan.indexed, " & ".join(p for p in (plan.checked, unwanted) if p),
                      plan.dense)  # fmt: skip
    return plan


async def _page(
    db: Database,
    groups: list[tuple[str, list[str]]],
    exact: list[str],
    limit: int,
    offset: int,
    without: list[str] | None = None,
) -> list[tuple[str, str]]:
    """(kind, ref) of a page of SQLite documents, in index order; none holding all of
    ``without``."""
    if limit <= 0:
        return []
    expr = _expression(db.dialect, groups, exact)
    if without:
        expr = f"({expr}) NOT ({match_expression(db.dialect, [], without)})"
    sql = (
        "SELECT kind, ref FROM dir_search WHERE id IN (SELECT rowid FROM dir_search_fts"
        " WHERE dir_search_fts MATCH ? ORDER BY rowid LIMIT ? OFFSET ?) ORDER BY id"
    )
    rows = await db.raw_rows(sql, expr, limit, offset)
    return [(str(r[0]), str(r[1])) for r in rows]


async def _pg_find(
    db: Database, prefix: list[str], exact: list[str], limit: int, offset: int, again: bool = True
) -> list[tuple[str, str]]:
    """:func:`find_refs` on PostgreSQL: one statement for both tiers and, when the words'
    expansions all came from the cache, the check that they still hold."""
    groups, pending = await expand_all(db, prefix, verify_later=again)
    typed = [w for w in prefix if not w.startswith("qq")]
    whole = [
        ("exact", [w]) if not w.startswith("qq") else g for w, g in zip(prefix, groups, strict=True)
    ]
    params: list[Any] = []
    if pending is not None:
        params.append(pending)
    if not typed or whole == groups:
        body = _pg_page_sql(await _pg_plan(db, groups, exact), limit, offset, params)
    else:
        end = offset + limit
        first = _pg_page_sql(await _pg_plan(db, whole, exact), end, 0, params)
        rest = _pg_page_sql(await _pg_plan(db, groups, exact, without=typed), end, 0, params)
        params += [limit, offset]
        # An Append runs its parts in order and only as far as the outer LIMIT asks.
        body = f"SELECT kind, ref FROM (({first}) UNION ALL ({rest})) AS tiers LIMIT ? OFFSET ?"
    if pending is None:
        rows = await _rows(db, body, *params)
    else:
        # The cached expansions hold while the imports are those they were read under.
        sql = f"SELECT '#', CAST(({_IMPORTS_KEY}) = CAST(? AS text) AS text) UNION ALL ({body})"
        rows = await _rows(db, sql, *params)
        if rows[0][1] != "true":
            _EXPANSIONS.pop(db.url, None)
            return await _pg_find(db, prefix, exact, limit, offset, again=False)
        rows = rows[1:]
    return [(str(r[0]), str(r[1])) for r in rows]


async def find_refs(db: Database, query: Query) -> list[tuple[str, str]]:
    """(kind, ref) of the matching documents, ``query.limit`` from ``query.offset``.

    Ranking, in two tiers: first the documents holding every typed word as a whole word
    (``martin`` before ``martineau``), then the others; each tier in index order. Scoring
    every match (bm25, ts_rank) would cost time in proportion to the matches of a short
    prefix (hundreds of thousands), far beyond the 20 ms budget; the tiers cost one more
    indexed query (PostgreSQL: one statement, whose second part runs only when the first
    does not fill the page).
    """
    prefix, exact = query.terms()
    if query.limit <= 0:
        return []
    if db.dialect == "postgresql":
        return await _pg_find(db, prefix, exact, query.limit, query.offset)
    groups, _ = await expand_all(db, prefix)
    typed = [w for w in prefix if not w.startswith("qq")]
    whole = [
        ("exact", [w]) if not w.startswith("qq") else g for w, g in zip(prefix, groups, strict=True)
    ]
    if not typed or whole == groups:
        return await _page(db, groups, exact, query.limit, query.offset)
    end = query.offset + query.limit
    first = await _page(db, whole, exact, end, 0)
    if len(first) >= end:
        return first[query.offset : end]
    rest = await _page(
        db, groups, exact, end - max(len(first), query.offset),
        max(0, query.offset - len(first)), without=typed,
    )  # fmt: skip
    return first[query.offset :] + rest


#: The details of a page of hits, in one statement: (part, owner, sort number, sort text, five
#: values); parts 1–3 practitioners (names, places of activity, public mailboxes with their
#: structure's place), 4–5 organisations (name and place, public mailboxes).
_DETAILS = {
    1: "SELECT 1, idnat, 0, '', civility, given, family, profession_label, specialty_label"
    " FROM dir_practitioners WHERE idnat {P}",
    2: "SELECT 2, a.practitioner_idnat, a.id, '', o.postcode, o.city, '', '', ''"
    " FROM dir_activities a JOIN dir_organisations o ON o.identifier = a.organisation_identifier"
    " WHERE a.active AND a.practitioner_idnat {P}",
    3: "SELECT 3, m.practitioner_idnat, 0, m.address, m.address, m.type, o.postcode, o.city, ''"
    " FROM dir_mailboxes m LEFT JOIN dir_organisations o"
    " ON o.identifier = m.organisation_identifier"
    " WHERE m.active AND NOT m.liste_rouge AND m.practitioner_idnat {P}",
    4: "SELECT 4, identifier, 0, '', name, trade_name, postcode, city, ''"
    " FROM dir_organisations WHERE identifier {O}",
    5: "SELECT 5, organisation_identifier, 0, address, address, type, '', '', ''"
    " FROM dir_mailboxes WHERE active AND NOT liste_rouge AND practitioner_idnat || '' = ''"
    " AND organisation_identifier {O}",
}


async def _detail_rows(db: Database, pracs: list[str], orgs: list[str]) -> list[tuple[Any, ...]]:
    parts: list[str] = []
    params: list[Any] = []
    for number, sql in _DETAILS.items():
        refs = pracs if number <= 3 else orgs
        if not refs:
            continue
        if db.dialect == "postgresql":
            cond = "= ANY(?::varchar[])"
            params.append(refs)
        else:
            cond = f"IN ({_marks(refs)})"
            params += refs
        parts.append(sql.replace("{P}" if number <= 3 else "{O}", cond))
    if not parts:
        return []
    statement = " UNION ALL ".join(parts) + " ORDER BY 1, 2, 3, 4"
    return await _rows(db, statement, *params)


async def search(db: Database, query: Query) -> list[Hit]:
    refs = await find_refs(db, query)
    pracs = [r for k, r in refs if k == "P"]
    orgs = [r for k, r in refs if k == "O"]
    details: dict[tuple[str, str], Hit] = {}
    for row in await _detail_rows(db, pracs, orgs):
        part, owner, values = row[0], str(row[1]), row[4:]
        if part == 1:
            name = " ".join(str(v) for v in values[:3] if v)
            details[("P", owner)] = Hit("P", owner, name, str(values[3]), str(values[4]))
        elif part == 2:
            _place(details.get(("P", owner)), values[0], values[1])
        elif part == 3:
            hit = details.get(("P", owner))
            if hit is not None:
                hit.mailboxes.append((str(values[0]), str(values[1])))
                _place(hit, values[2], values[3])
        elif part == 4:
            hit = Hit("O", owner, str(values[0] or values[1]))
            _place(hit, values[2], values[3])
            details[("O", owner)] = hit
        else:
            hit = details.get(("O", owner))
            if hit is not None:
                hit.mailboxes.append((str(values[0]), str(values[1])))
    return [details[key] for key in refs if key in details]


def _marks(values: list[Any]) -> str:
    return ", ".join("?" * len(values))


def _place(hit: Hit | None, postcode: Any, city: Any) -> None:
    if hit is None or not (postcode or city):
        return
    place = f"{postcode or ''} {city or ''}".strip()
    if place not in hit.places:
        hit.places.append(place)
