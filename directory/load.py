"""Bulk import of the Annuaire Santé extracts into the directory tables.

The file is read line by line (:mod:`directory.extracts`) and written in batches of
``BATCH`` rows: ``executemany`` upserts on SQLite, ``COPY`` into a staging table then one
``INSERT … SELECT … ON CONFLICT`` per batch on PostgreSQL. Memory holds one batch, whatever
the file size.

Every row written is stamped with the import's number (``generation``). An upsert that meets
a row of the *same* import merges them (duplicate addresses, a practitioner's several activity
lines: non-empty values already there are kept, empty ones filled); one that meets an *older*
row replaces its values, and moves ``updated_at`` only when something changed. At the end the
rows this source owns that the file no longer lists are marked inactive, and the full-text
documents are rebuilt (:mod:`directory.search`).

Which source owns what: ``ps-libreacces`` owns practitioners, organisations and activities;
``mssante`` owns the mailboxes it lists (``source = 'mssante'``) and only adds the
practitioners and organisations it names that are still unknown.
"""

from __future__ import annotations

import abc
import asyncio
import datetime as dt
import multiprocessing
import sqlite3
import time
import zipfile
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from queue import Empty
from typing import Any

from sqlalchemy import make_url

from directory import extracts, search
from directory.extracts import MSSANTE, PS_LIBREACCES, Rejected, Row
from directory.idnat import IdNatError, practitioner_idnat, structure_idnat
from directory.text import (
    PRACTITIONER,
    city_token,
    department_token,
    family_token,
    fold,
    given_token,
    mailbox_type_token,
    postcode_token,
    profession_token,
    specialty_token,
)

BATCH = 20_000
MAILBOX_TYPES = ("PER", "ORG", "APP", "CAB")
KEEP_REJECTED = 1000
#: Words already handed to a batch by this process (bounded by the vocabulary's size).
_SEEN: set[str] = set()
#: Organisations already handed to a batch by this import, with which of their fields were
#: non-empty (:func:`_org_fill`). A line that would fill nothing new is not written again: the
#: upsert would merge it into the same values (the same-import merge keeps non-empty values).
#: Bounded by the number of structures (about 600,000 in the national file).
_ORGS_SEEN: dict[str, int] = {}
#: Practitioners an MSSanté import already handed to a batch: its upsert only adds unknown
#: ones (``DO NOTHING``), so a second line naming one would change nothing.
_PRACS_SEEN: set[str] = set()
#: An MSSanté import rebuilds every search document when it changed more than 1 in this many
#: (a first import); otherwise only the changed ones (a daily re-import).
FULL_REBUILD_SHARE = 4
#: … and writes them in bulk (one FTS5 merge at the end) when more than 1 in this many changed.
BULK_REFRESH_SHARE = 20
#: … and rebuilds the whole FTS5 index (SQLite) when more than 1 in this many changed.
REINDEX_SHARE = 6
#: PostgreSQL: an import rebuilds every document when it changed more than 1 in this many
#: (cheaper than deleting and adding each beyond that: measured on the benchmark's first
#: MSSanté import, 460,000 of 2.1 million documents, 27 s to refresh, 20 s to rebuild).
PG_REBUILD_SHARE = 8
#: PostgreSQL: a rebuild of at least this many documents is shared by two connections
#: (:func:`directory.search.pg_parallel_rebuild`); a smaller one runs in one transaction.
PARALLEL_MIN_DOCUMENTS = 100_000
#: Secondary indexes a first import builds once at the end rather than row by row.
DEFERRED_INDEXES: dict[str, tuple[tuple[str, str, str], ...]] = {
    PS_LIBREACCES: (("ix_dir_activities_practitioner", "dir_activities", "(practitioner_idnat)"),),
    MSSANTE: (
        ("ix_dir_mailboxes_practitioner", "dir_mailboxes", "(practitioner_idnat)"),
        ("ix_dir_mailboxes_organisation", "dir_mailboxes", "(organisation_identifier)"),
    ),
}
#: PostgreSQL: the trigram index of mailbox addresses (migration 0016), built once too.
PG_DEFERRED_TRGM = (
    "ix_dir_mailboxes_address_trgm",
    "dir_mailboxes",
    "USING gin (lower(address) gin_trgm_ops)",
)
#: SQLite: the trigger that keeps the trigram table of addresses (migration 0016) as rows
#: come; a first MSSanté import drops it and rebuilds the table once at the end.
SQLITE_TRGM_TRIGGER = (
    "CREATE TRIGGER dir_mailboxes_trgm_ai AFTER INSERT ON dir_mailboxes BEGIN"
    " INSERT INTO dir_mailboxes_trgm(rowid, address) VALUES (new.id, new.address); END"
)
_FIRST_TABLE = {PS_LIBREACCES: "dir_activities", MSSANTE: "dir_mailboxes"}


@dataclass(frozen=True, eq=False)  # hashed by identity: a dict key of every row's batch
class TableSpec:
    name: str
    key: str
    columns: tuple[str, ...]
    #: Boolean columns merged with OR when two lines of one import meet (privacy first).
    flags: tuple[str, ...] = ()

    @property
    def all_columns(self) -> tuple[str, ...]:
        return (*self.columns, "active", "generation", "updated_at")


PRACTITIONERS = TableSpec(
    "dir_practitioners",
    "idnat",
    ("idnat", "civility", "family", "given", "profession_code", "profession_label",
     "specialty_code", "specialty_label", "search"),
)  # fmt: skip
ORGANISATIONS = TableSpec(
    "dir_organisations",
    "identifier",
    ("identifier", "finess", "siret", "name", "trade_name", "address", "postcode", "city",
     "search"),
)  # fmt: skip
ACTIVITIES = TableSpec(
    "dir_activities",
    "key",
    ("key", "practitioner_idnat", "organisation_identifier", "mode", "role"),
)
MAILBOXES = TableSpec(
    "dir_mailboxes",
    "address",
    ("address", "type", "practitioner_idnat", "organisation_identifier", "service",
     "liste_rouge", "preferred", "digitization", "source", "search"),
    flags=("liste_rouge",),
)  # fmt: skip

#: Tables each source owns: rows it no longer lists become inactive.
OWNED: dict[str, tuple[tuple[TableSpec, str], ...]] = {
    PS_LIBREACCES: ((PRACTITIONERS, ""), (ORGANISATIONS, ""), (ACTIVITIES, "")),
    MSSANTE: ((MAILBOXES, "source = 'mssante'"),),
}

# -- extract fields ------------------------------------------------------------------------

PS_FIELDS: dict[str, Sequence[str]] = {
    "id_type": ("Type d'identifiant PP",),
    "id": ("Identifiant PP",),
    "idnat": ("Identification nationale PP",),
    "civility": ("Libellé civilité d'exercice", "Code civilité d'exercice"),
    "family": ("Nom d'exercice",),
    "given": ("Prénom d'exercice",),
    "profession_code": ("Code profession",),
    "profession_label": ("Libellé profession",),
    "specialty_code": ("Code savoir-faire",),
    "specialty_label": ("Libellé savoir-faire",),
    "mode": ("Libellé mode exercice",),
    "siret": ("Numéro SIRET site",),
    "finess": ("Numéro FINESS site",),
    "struct_tech": ("Identifiant technique de la structure",),
    "name": ("Raison sociale site",),
    "trade_name": ("Enseigne commerciale site",),
    "street_no": ("Numéro Voie (coord. structure)",),
    "street_type": ("Libellé type de voie (coord. structure)",),
    "street": ("Libellé Voie (coord. structure)",),
    "postcode": ("Code postal (coord. structure)",),
    "city": ("Libellé commune (coord. structure)",),
    "role": ("Libellé rôle", "Libellé fonction"),
}
PS_REQUIRED = ("id_type", "id", "family")

MSS_FIELDS: dict[str, Sequence[str]] = {
    "type": ("Type de BAL",),
    "address": ("Adresse BAL",),
    "id_type": ("Type Identifiant PP",),
    "id": ("Identifiant PP",),
    "idnat": ("Identification nationale PP",),
    "struct_type": ("Type identifiant structure",),
    "struct_id": ("Identification Structure",),
    "service": ("Service de rattachement",),
    "civility": ("Civilité d'exercice",),
    "family": ("Nom d'exercice",),
    "given": ("Prénom d'exercice",),
    "profession_code": ("Code Profession",),
    "profession_label": ("Libellé Profession",),
    "specialty_code": ("Code savoir-faire",),
    "specialty_label": ("Libellé savoir-faire",),
    "digitization": ("Dématérialisation",),
    "name": ("Raison Sociale structure BAL",),
    "trade_name": ("Enseigne commerciale structure BAL",),
    "street_no": ("Numéro Voie structure BAL",),
    "street_type": ("Type de voie structure BAL",),
    "street": ("Libellé Voie structure BAL",),
    "routing": ("Ligne d'acheminement structure BAL",),
    "postcode": ("Code postal", "Code postal structure BAL"),
    "liste_rouge": ("Liste rouge",),
}
MSS_REQUIRED = ("type", "address")


class RowError(ValueError):
    """This line cannot be imported; the message is the reason in the report."""


#: A practitioner's lines follow one another: their identifier is checked once.
_idnat = lru_cache(maxsize=4096)(practitioner_idnat)


def _address(row: Row) -> str:
    return " ".join(v for v in (row["street_no"], row["street_type"], row["street"]) if v)


def _city_from_routing(routing: str, postcode: str) -> str:
    # "69003 LYON 3E" → "LYON 3E"; a cedex line keeps its words.
    if postcode and routing.startswith(postcode):
        return routing[len(postcode) :].strip()
    return routing


def _yes(value: str) -> bool:
    return value.strip().lower() in {"o", "oui", "y", "yes", "true", "1", "vrai"}


@lru_cache(maxsize=1 << 16)
def _name_words(given: str, family: str) -> tuple[str, str]:
    """The folded names, and their filter tokens."""
    return f"{fold(given)} {fold(family)}", f"{family_token(family)} {given_token(given)}"


@lru_cache(maxsize=1 << 12)
def _label_words(
    profession_code: str, profession_label: str, specialty_code: str, specialty_label: str
) -> tuple[str, str]:
    """The folded profession and specialty labels, and their filter tokens."""
    tokens = ""
    if profession_code:
        tokens += f" {profession_token(profession_code)}"
    if specialty_code:
        tokens += f" {specialty_token(specialty_code)}"
    return f"{fold(profession_label)} {fold(specialty_label)}", tokens


def _practitioner(row: Row) -> tuple[Any, ...]:
    try:
        idnat = _idnat(row["id_type"], row["id"], row["idnat"])
    except IdNatError as exc:
        raise RowError(str(exc)) from None
    names, name_tokens = _name_words(row["given"], row["family"])
    labels, label_tokens = _label_words(
        row["profession_code"],
        row["profession_label"],
        row["specialty_code"],
        row["specialty_label"],
    )
    return (
        idnat,
        row["civility"],
        row["family"],
        row["given"],
        row["profession_code"],
        row["profession_label"],
        row["specialty_code"],
        row["specialty_label"],
        f"{names} {labels} {PRACTITIONER} {name_tokens}{label_tokens}",
    )


@lru_cache(maxsize=1 << 14)
def _place_words(city: str, postcode: str) -> str:
    parts = [fold(city)]
    if city:
        parts.append(city_token(city))
    if postcode:
        parts += [postcode, postcode_token(postcode), department_token(postcode)]
    return " ".join(p for p in parts if p)


def _organisation(identifier: str, row: Row, city: str) -> tuple[Any, ...]:
    finess = row.get("finess", "") if identifier.startswith("1") else ""
    siret = row.get("siret", "") if identifier.startswith("3") else ""
    if identifier.startswith("1") and not finess:
        finess = identifier[1:]
    if identifier.startswith("3") and not siret:
        siret = identifier[1:]
    words = f"{fold(row['name'])} {fold(row['trade_name'])}"
    search_doc = f"{words} {_place_words(city, row['postcode'])}"
    return (
        identifier,
        finess[:9],
        siret[:14],
        row["name"],
        row["trade_name"],
        _address(row),
        row["postcode"],
        city,
        search_doc,
    )


@dataclass
class Batch:
    """Rows waiting to be written, one dict per table keyed by the table's key."""

    tables: dict[TableSpec, dict[str, tuple[Any, ...]]] = field(default_factory=dict)
    fill_only: set[TableSpec] = field(default_factory=set)
    size: int = 0
    #: Words of the search documents not yet seen by this reader (the search vocabulary).
    words: set[str] = field(default_factory=set)

    def vocabulary(self, text: str) -> None:
        new = set(text.split()).difference(_SEEN)
        if new:
            _SEEN.update(new)  # filter tokens too: not looked at again
            self.words.update(w for w in new if not w.startswith("qq"))

    def has(self, spec: TableSpec, key: str) -> bool:
        rows = self.tables.get(spec)
        return rows is not None and key in rows

    def add(self, spec: TableSpec, values: tuple[Any, ...]) -> None:
        rows = self.tables.setdefault(spec, {})
        key = values[0]
        old = rows.get(key)
        if old is None:
            rows[key] = values
        else:  # merge: keep what is there, fill what is empty (see the module docstring)
            merged = []
            for name, a, b in zip(spec.columns, old, values, strict=True):
                if name in spec.flags:
                    merged.append(bool(a) or bool(b))
                else:
                    merged.append(a if a not in ("", None) else b)
            rows[key] = tuple(merged)
        self.size += 1


def _org_fill(row: Row, city: str) -> int:
    """Which organisation fields this line fills (a bit each)."""
    return (
        bool(row["name"])
        | bool(row["trade_name"]) << 1
        | bool(row["street_no"] or row["street_type"] or row["street"]) << 2
        | bool(row["postcode"]) << 3
        | bool(city) << 4
        | bool(row.get("finess")) << 5
        | bool(row.get("siret")) << 6
    )


def ps_line(row: Row, batch: Batch) -> None:
    # A practitioner's lines (one per activity) repeat the same person: built once a batch.
    idnat = row["idnat"].strip()
    if idnat and batch.has(PRACTITIONERS, idnat):
        try:
            prac: tuple[Any, ...] = (_idnat(row["id_type"], row["id"], idnat),)
        except IdNatError as exc:
            raise RowError(str(exc)) from None
    else:
        prac = _practitioner(row)
        batch.add(PRACTITIONERS, prac)
        batch.vocabulary(prac[8])
    if row["finess"]:
        org_id = structure_idnat("1", row["finess"])
    elif row["siret"]:
        org_id = structure_idnat("3", row["siret"])
    elif row["struct_tech"]:
        org_id = structure_idnat("9", row["struct_tech"])
    else:
        org_id = ""
    if org_id and not batch.has(ORGANISATIONS, org_id):
        fill = _org_fill(row, row["city"])
        seen = _ORGS_SEEN.get(org_id)
        if seen is None or fill & ~seen:
            _ORGS_SEEN[org_id] = fill | (seen or 0)
            org = _organisation(org_id, row, row["city"])
            batch.add(ORGANISATIONS, org)
            batch.vocabulary(org[8])
    key = f"{prac[0]}|{org_id}|{row['role']}"[:80]
    batch.add(ACTIVITIES, (key, prac[0], org_id, row["mode"], row["role"]))


def mss_line(row: Row, batch: Batch) -> None:
    kind = row["type"].strip().upper()
    if kind not in MAILBOX_TYPES:
        raise RowError(f"unknown mailbox type {row['type']!r} (PER, ORG, APP, CAB)")
    address = row["address"].strip()
    local, _, domain = address.rpartition("@")
    if not local or "." not in domain or " " in address:
        raise RowError("not a mail address")
    address = f"{local}@{domain.lower()}"
    idnat = ""
    if row["id"] or row["idnat"]:
        prac = _practitioner(row)
        idnat = prac[0]
        # Fill-only: a line naming one an earlier batch already wrote would add nothing.
        if idnat not in _PRACS_SEEN or batch.has(PRACTITIONERS, idnat):
            _PRACS_SEEN.add(idnat)
            batch.add(PRACTITIONERS, prac)
            batch.vocabulary(prac[8])
            batch.fill_only.add(PRACTITIONERS)
    elif kind == "PER" and not row["struct_id"]:
        raise RowError("a PER mailbox names neither a practitioner nor a structure")
    org_id = structure_idnat(row["struct_type"], row["struct_id"])
    city = _city_from_routing(row["routing"], row["postcode"])
    if org_id and org_id not in _ORGS_SEEN:  # fill-only, as above
        _ORGS_SEEN[org_id] = 0
        org = _organisation(org_id, {**row, "finess": "", "siret": ""}, city)
        batch.add(ORGANISATIONS, org)
        batch.vocabulary(org[8])
        batch.fill_only.add(ORGANISATIONS)
    search_doc = f"{_place_words(city, row['postcode'])} {mailbox_type_token(kind)}"
    batch.vocabulary(search_doc)
    batch.add(
        MAILBOXES,
        (
            address,
            kind,
            idnat,
            org_id,
            row["service"],
            _yes(row["liste_rouge"]),
            False,
            _yes(row["digitization"]),
            "mssante",
            search_doc,
        ),
    )


LINE_HANDLERS: dict[
    str, tuple[dict[str, Sequence[str]], Sequence[str], Callable[[Row, Batch], None]]
] = {
    PS_LIBREACCES: (PS_FIELDS, PS_REQUIRED, ps_line),
    MSSANTE: (MSS_FIELDS, MSS_REQUIRED, mss_line),
}

# -- SQL -------------------------------------------------------------------------------------


def upsert_sql(spec: TableSpec, dialect: str, *, fill_only: bool, source: str) -> str:
    """``INSERT … ON CONFLICT`` for one table; ``source`` is ``VALUES (…)`` or a SELECT."""
    cols = ", ".join(spec.all_columns)
    head = f"INSERT INTO {spec.name} AS t ({cols}) {source} ON CONFLICT ({spec.key}) "
    if fill_only:
        return head + "DO NOTHING"
    same = "t.generation = excluded.generation"
    sets = []
    changed = []
    for c in spec.columns[1:]:
        if c in spec.flags:
            sets.append(
                f"{c} = CASE WHEN {same} THEN (t.{c} OR excluded.{c}) ELSE excluded.{c} END"
            )
        elif c in ("preferred", "digitization", "liste_rouge"):
            sets.append(f"{c} = excluded.{c}")
        else:
            sets.append(f"{c} = CASE WHEN {same} AND t.{c} <> '' THEN t.{c} ELSE excluded.{c} END")
        changed.append(f"t.{c} <> excluded.{c}")
    sets.append("active = excluded.active")
    sets.append("generation = excluded.generation")
    any_change = " OR ".join([*changed, "NOT t.active"])
    sets.append(
        f"updated_at = CASE WHEN {same} THEN t.updated_at WHEN {any_change} "
        "THEN excluded.updated_at ELSE t.updated_at END"
    )
    return head + "DO UPDATE SET " + ", ".join(sets)


@dataclass
class Report:
    kind: str
    source: str
    generation: int = 0
    lines: int = 0
    imported: int = 0
    rejected: int = 0
    deactivated: int = 0
    rejections: list[Rejected] = field(default_factory=list)
    seconds: float = 0.0
    #: Seconds spent in each phase: "read" (waiting for the file's next batch), "write"
    #: (batches), "deactivate", "search" (documents).
    phases: dict[str, float] = field(default_factory=dict)
    #: CPU seconds of this process (not the reading child's, not PostgreSQL's) in each phase:
    #: on a shared machine wall time also measures the neighbours.
    cpu: dict[str, float] = field(default_factory=dict)

    @staticmethod
    def mark() -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    def timed(self, phase: str, since: tuple[float, float]) -> tuple[float, float]:
        now = self.mark()
        self.phases[phase] = round(self.phases.get(phase, 0.0) + now[0] - since[0], 3)
        self.cpu[phase] = round(self.cpu.get(phase, 0.0) + now[1] - since[1], 3)
        return now


class Sink(abc.ABC):
    """Where batches go: one database, one import run (one subclass per engine)."""

    dialect = ""
    #: Whether two children should read the file (:data:`TWO_READERS_BYTES`). SQLite: yes,
    #: its writing runs in this process and takes half the CPU the reading does (2 million
    #: PS_LibreAcces lines: reading 30 s, writing 15 s), so one reader kept the second core
    #: waiting: 65.3 s with one, 56.9 s with two. PostgreSQL: no, its server's upserts need
    #: the second core as much (28 s), and a second reader only made them wait: 61.6 s with
    #: one, 65.7 s with two.
    two_readers = False
    _t0 = (0.0, 0.0)
    _deferred: tuple[tuple[str, str, str], ...] = ()
    _trgm = False

    @abc.abstractmethod
    async def begin(self, kind: str, source: str) -> int: ...

    @abc.abstractmethod
    async def write(self, batch: Batch) -> None: ...

    @abc.abstractmethod
    async def finish(self, kind: str, generation: int, report: Report) -> int: ...

    @abc.abstractmethod
    async def close(self) -> None: ...


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _sql_time(when: dt.datetime) -> str:
    """How SQLAlchemy's DateTime stores a UTC time in SQLite (so comparisons agree)."""
    return when.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _stamp(values: tuple[Any, ...], generation: int, now: object) -> tuple[Any, ...]:
    return (*values, True, generation, now)


class SqliteSink(Sink):
    """The standard ``sqlite3`` driver, one connection, a commit every ``COMMIT_EVERY`` rows.

    ``synchronous=OFF`` during the import (no fsync at each commit; the final checkpoint
    writes everything once): in WAL mode a crash of the machine can lose the last commits
    but a crash of the process cannot, and an interrupted import is simply run again (it
    starts a new generation). The connection is the importer's own, so nothing else runs
    with these settings.
    """

    dialect = "sqlite"
    two_readers = True
    COMMIT_EVERY = 200_000

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        for pragma in (
            "journal_mode=WAL",
            "synchronous=OFF",
            "foreign_keys=ON",
            "busy_timeout=10000",
            "cache_size=-65536",
        ):
            self.conn.execute(f"PRAGMA {pragma}")
        self._pending = 0
        self.now = _now()
        self.generation = 0

    async def begin(self, kind: str, source: str) -> int:
        cur = self.conn.execute(
            "INSERT INTO dir_imports (kind, source, started_at, lines, rejected) "
            "VALUES (?, ?, ?, 0, 0)",
            (kind, source[:500], _sql_time(self.now)),
        )
        self.generation = int(cur.lastrowid or 0)
        self.conn.execute("BEGIN")
        first = f"SELECT 1 FROM {_FIRST_TABLE[kind]} LIMIT 1"
        self._deferred = () if self.conn.execute(first).fetchone() else DEFERRED_INDEXES[kind]
        for name, _, _ in self._deferred:
            self.conn.execute(f"DROP INDEX IF EXISTS {name}")
        self._trgm = kind == MSSANTE and bool(self._deferred)
        if self._trgm:
            self.conn.execute("DROP TRIGGER IF EXISTS dir_mailboxes_trgm_ai")
        return self.generation

    async def write(self, batch: Batch) -> None:
        now = _sql_time(self.now)
        for spec, rows in batch.tables.items():
            marks = ", ".join("?" * len(spec.all_columns))
            sql = upsert_sql(
                spec, "sqlite", fill_only=spec in batch.fill_only, source=f"VALUES ({marks})"
            )
            self.conn.executemany(sql, (_stamp(v, self.generation, now) for v in rows.values()))
        if batch.words:
            self.conn.executemany(
                "INSERT OR IGNORE INTO dir_search_words (word) VALUES (?)",
                ((w,) for w in batch.words),
            )
        self._pending += batch.size
        if self._pending >= self.COMMIT_EVERY:
            self.conn.execute("COMMIT")
            self.conn.execute("BEGIN")
            self._pending = 0

    async def finish(self, kind: str, generation: int, report: Report) -> int:
        self._t0 = report.mark()
        now = _sql_time(_now())
        gone = 0
        for spec, where in OWNED[kind]:
            cond = f" AND {where}" if where else ""
            cur = self.conn.execute(
                f"UPDATE {spec.name} SET active = 0, updated_at = ? "
                f"WHERE active AND generation < ?{cond}",
                (now, generation),
            )
            gone += cur.rowcount
        self.conn.execute(
            "UPDATE dir_imports SET finished_at = ?, lines = ?, rejected = ? WHERE id = ?",
            (now, report.lines, report.rejected, generation),
        )
        for name, table, column in self._deferred:
            self.conn.execute(f"CREATE INDEX {name} ON {table} {column}")
        if self._trgm:
            for statement in search.fts_bulk("dir_mailboxes_trgm", "rebuild"):
                self.conn.execute(statement)
            self.conn.execute(SQLITE_TRGM_TRIGGER)
        t = report.timed("deactivate", self._t0)
        for statement in self._search_statements(kind, generation):
            self.conn.execute(statement, {"since": _sql_time(self.now), "gen": generation})
            t = report.timed("search", t)
        self.conn.execute("COMMIT")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return gone

    def _search_statements(self, kind: str, generation: int) -> list[str]:
        if kind == PS_LIBREACCES:
            mailboxes = self.conn.execute("SELECT 1 FROM dir_mailboxes LIMIT 1").fetchone()
            return search.rebuild_statements("sqlite", mailboxes=mailboxes is not None)
        params = {"since": _sql_time(self.now), "gen": generation}
        for statement in search.changed_statements("sqlite"):
            self.conn.execute(statement, params if ":" in statement else ())
        changed = self.conn.execute("SELECT count(*) FROM dir_refresh").fetchone()[0]
        total = self.conn.execute("SELECT max(id) FROM dir_search").fetchone()[0] or 0
        if changed * FULL_REBUILD_SHARE > total:
            return search.rebuild_statements("sqlite")
        return search.refresh_statements(
            "sqlite",
            bulk=changed * BULK_REFRESH_SHARE > total,
            reindex=changed * REINDEX_SHARE > total,
        )

    async def close(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        self.conn.close()


class PostgresSink(Sink):
    """asyncpg: ``COPY`` each batch into temporary staging tables, then upsert from them."""

    dialect = "postgresql"
    _active = (0, 0)

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: Any = None
        self.now = _now()
        self.generation = 0

    async def _connect(self) -> Any:
        import asyncpg  # type: ignore[import-untyped]

        u = make_url(self.url)
        conn = await asyncpg.connect(
            host=u.host, port=u.port, user=u.username, password=u.password, database=u.database
        )
        # This session only: a batch's commit need not wait for its WAL to reach the disk (a
        # crash loses the last batches, never consistency; the import is run again).
        await conn.execute("SET maintenance_work_mem = '256MB'")
        await conn.execute("SET synchronous_commit = off")
        # The documents' joins and sorts fit in memory instead of spilling to disk.
        await conn.execute("SET work_mem = '64MB'")
        return conn

    async def begin(self, kind: str, source: str) -> int:
        self.conn = await self._connect()
        first = await self.conn.fetchval(f"SELECT 1 FROM {_FIRST_TABLE[kind]} LIMIT 1")
        self._deferred = () if first else DEFERRED_INDEXES[kind]
        if self._deferred and kind == MSSANTE:
            self._deferred = (*self._deferred, PG_DEFERRED_TRGM)
        for name, _, _ in self._deferred:
            await self.conn.execute(f"DROP INDEX IF EXISTS {name}")
        self.generation = int(
            await self.conn.fetchval(
                "INSERT INTO dir_imports (kind, source, started_at, lines, rejected) "
                "VALUES ($1, $2, $3, 0, 0) RETURNING id",
                kind,
                source[:500],
                self.now,
            )
        )
        for spec in (PRACTITIONERS, ORGANISATIONS, ACTIVITIES, MAILBOXES):
            cols = ", ".join(spec.all_columns)
            await self.conn.execute(
                f"CREATE TEMP TABLE stg_{spec.name} AS SELECT {cols} FROM {spec.name} WITH NO DATA"
            )
        return self.generation

    async def write(self, batch: Batch) -> None:
        async with self.conn.transaction():
            for spec, rows in batch.tables.items():
                stage = f"stg_{spec.name}"
                await self.conn.copy_records_to_table(
                    stage,
                    records=[_stamp(v, self.generation, self.now) for v in rows.values()],
                    columns=list(spec.all_columns),
                )
                cols = ", ".join(spec.all_columns)
                sql = upsert_sql(
                    spec,
                    "postgresql",
                    fill_only=spec in batch.fill_only,
                    source=f"SELECT {cols} FROM {stage}",
                )
                await self.conn.execute(sql)
                await self.conn.execute(f"TRUNCATE {stage}")
            if batch.words:
                await self.conn.executemany(
                    "INSERT INTO dir_search_words (word) VALUES ($1) ON CONFLICT DO NOTHING",
                    [(w,) for w in batch.words],
                )

    async def finish(self, kind: str, generation: int, report: Report) -> int:
        self._t0 = report.mark()
        now = _now()
        gone = 0
        async with self.conn.transaction():
            for spec, where in OWNED[kind]:
                cond = f" AND {where}" if where else ""
                status = await self.conn.execute(
                    f"UPDATE {spec.name} SET active = false, updated_at = $1 "
                    f"WHERE active AND generation < $2{cond}",
                    now,
                    generation,
                )
                gone += int(status.rsplit(" ", 1)[1])
            for name, table, column in self._deferred:
                if name != PG_DEFERRED_TRGM[0]:  # the documents do not need it: below
                    await self.conn.execute(f"CREATE INDEX {name} ON {table} {column}")
            await self._analyze()
        t = report.timed("deactivate", self._t0)
        trgm = PG_DEFERRED_TRGM[0]
        late = [f"CREATE INDEX {n} ON {tb} {c}" for n, tb, c in self._deferred if n == trgm]
        # The tables are written (their batches were committed as they came); the documents
        # follow, and the import is marked finished with them.
        finished = (
            "UPDATE dir_imports SET finished_at = $1, lines = $2, rejected = $3 WHERE id = $4",
            now,
            report.lines,
            report.rejected,
            generation,
        )
        statements = await self._search_statements(kind, generation, report.imported)
        if statements is None:
            await self._parallel_rebuild(finished, late)
        else:
            await self._refresh(statements, generation, finished, late)
        await self.conn.execute("ANALYZE dir_search")
        report.timed("search", t)
        return gone

    async def _refresh(
        self, statements: list[str], generation: int, finished: tuple[Any, ...], late: list[str]
    ) -> None:
        """The documents brought up to date in one transaction, with the import's end."""
        async with self.conn.transaction():
            for statement in late:
                await self.conn.execute(statement)
            for statement in statements:
                await self._execute(statement, generation)
            await self.conn.execute(*finished)

    async def _execute(self, statement: str, generation: int) -> None:
        """One statement of :mod:`directory.search`, its ``:since`` and ``:gen`` bound."""
        names = [n for n in (":since", ":gen") if n in statement]
        values = {":since": self.now, ":gen": generation}
        for i, name in enumerate(names, 1):
            statement = statement.replace(name, f"${i}")
        await self.conn.execute(statement, *(values[n] for n in names))

    async def _analyze(self) -> None:
        """Fresh statistics for the directory's tables only (not the whole database's)."""
        tables = (PRACTITIONERS, ORGANISATIONS, ACTIVITIES, MAILBOXES)
        await self.conn.execute("ANALYZE " + ", ".join(spec.name for spec in tables))

    async def _search_statements(
        self, kind: str, generation: int, imported: int
    ) -> list[str] | None:
        """The statements that bring the documents up to date, in one transaction; None for
        a rebuild of them all by two connections (:meth:`_parallel_rebuild`). ``imported``:
        the lines this import wrote."""
        if kind == PS_LIBREACCES:
            mailboxes = await self.conn.fetchval("SELECT 1 FROM dir_mailboxes LIMIT 1")
            if await self._documents() >= PARALLEL_MIN_DOCUMENTS:
                return None
            return search.rebuild_statements("postgresql", mailboxes=mailboxes is not None)
        total = await self.conn.fetchval("SELECT coalesce(max(id), 0) FROM dir_search")
        if self._deferred and imported * PG_REBUILD_SHARE > total:
            # The first mailboxes: each line changes a document (or adds one), so the count of
            # changed ones need not be taken (3 s on the benchmark) to know it is a rebuild.
            changed = imported
        else:
            for statement in search.changed_statements("postgresql"):
                await self._execute(statement, generation)
            changed = await self.conn.fetchval("SELECT count(*) FROM dir_refresh")
        if changed * PG_REBUILD_SHARE > total:
            if await self._documents() >= PARALLEL_MIN_DOCUMENTS:
                return None
            return search.rebuild_statements("postgresql")
        return search.refresh_statements("postgresql")

    async def _documents(self) -> int:
        """How many documents a full rebuild writes (the active practitioners and
        organisations); the two counts are kept for :meth:`_parallel_rebuild`."""
        row = await self.conn.fetchrow(
            "SELECT (SELECT count(*) FROM dir_practitioners WHERE active),"
            " (SELECT count(*) FROM dir_organisations WHERE active)"
        )
        self._active = (int(row[0]), int(row[1]))
        return sum(self._active)

    async def _parallel_rebuild(self, finished: tuple[Any, ...], late: list[str]) -> None:
        """Every document rebuilt by this connection and a second one at once
        (:func:`directory.search.pg_parallel_rebuild`), then put in place with the import
        marked finished, in one transaction. ``late``: index builds the documents do not
        need, run by the second connection while the first builds the GIN index (the
        mailboxes' trigram index of a first MSSanté import: 4.4 s on the benchmark)."""
        mailboxes = await self.conn.fetchval("SELECT 1 FROM dir_mailboxes LIMIT 1") is not None
        practitioners, organisations = self._active  # counted by _documents
        row = await self.conn.fetchrow(
            "SELECT (SELECT coalesce(max(id), 0) FROM dir_practitioners),"
            " (SELECT count(DISTINCT practitioner_idnat) FROM dir_mailboxes"
            "  WHERE active AND NOT liste_rouge AND practitioner_idnat <> ''),"
            " (SELECT count(DISTINCT organisation_identifier) FROM dir_mailboxes"
            "  WHERE active AND NOT liste_rouge AND practitioner_idnat = '')"
        )
        last, p_with, o_with = (int(v) for v in row)
        rounds = [(practitioners - p_with, organisations - o_with), (p_with, o_with)]
        splits = []
        for p_count, o_count in rounds if mailboxes else [(practitioners, organisations)]:
            # The first connection takes this share of the round's practitioners; the second
            # the others and the round's organisations, whose documents cost about half as
            # much (measured: 1.54 million practitioners 20 s, 557,000 organisations 3.6 s).
            # Row ids are taken as evenly spread among the round's practitioners.
            share = (p_count + o_count // 2) / 2 / max(p_count, 1)
            split = await self.conn.fetchval(
                "SELECT id FROM dir_practitioners WHERE active ORDER BY id OFFSET $1 LIMIT 1",
                int(min(share, 1.0) * practitioners),
            )
            splits.append(split if split is not None else last + 1)
        plan = search.pg_parallel_rebuild(mailboxes, (splits[0], splits[-1]), last)
        for statement in plan.prepare:
            await self.conn.execute(statement)
        helper = await self._connect()
        try:
            index = (plan.index[0], [*plan.index[1], *late])
            for first, second in (*plan.build, index):
                # Both finish before an error is raised: neither connection is left busy.
                results = await asyncio.gather(
                    _run(self.conn, first), _run(helper, second), return_exceptions=True
                )
                for result in results:
                    if isinstance(result, BaseException):
                        raise result
        finally:
            await helper.close()
        async with self.conn.transaction():
            for statement in plan.swap:
                await self.conn.execute(statement)
            await self.conn.execute(*finished)

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()


async def _run(conn: Any, statements: list[str]) -> None:
    for statement in statements:
        await conn.execute(statement)


def open_sink(database_url: str) -> Sink:
    if database_url.startswith("sqlite"):
        return SqliteSink(database_url.split("///", 1)[1])
    return PostgresSink(database_url)


@dataclass
class Parsed:
    """One batch read from the file, with what the report needs about its lines."""

    batch: Batch
    lines: int  # lines read so far, this batch included
    imported: int
    rejections: list[Rejected]


def parse_batches(path: Path, kind: str, part: extracts.Part | None = None) -> Iterator[Parsed]:
    """The file's lines (those of ``part`` only, when given) turned into batches of rows for
    the tables, ``BATCH`` at a time."""
    wanted, required, handler = LINE_HANDLERS[kind]
    _SEEN.clear()  # every word of this run reaches this database's vocabulary
    _ORGS_SEEN.clear()
    _PRACS_SEEN.clear()
    with extracts.open_extract(path, kind) as stream:
        lines = 0
        current = Parsed(Batch(), 0, 0, [])
        rows = extracts.read_rows(stream, wanted, required, part or extracts.Part())
        for number, row in rows:
            lines += 1
            if isinstance(row, Rejected):
                current.rejections.append(row)
                continue
            try:
                handler(row, current.batch)
            except RowError as exc:
                current.rejections.append(Rejected(number, str(exc)))
                continue
            current.imported += 1
            if current.batch.size >= BATCH:
                current.lines = lines
                yield current
                current = Parsed(Batch(), 0, 0, [])
        current.lines = lines
        yield current


def _parse_worker(path: Path, kind: str, part: extracts.Part | None, queue: Any) -> None:
    """A reading process: batches go to the writer through a short queue."""
    try:
        for parsed in parse_batches(path, kind, part):
            queue.put(parsed)
        queue.put(None)
    except extracts.ExtractError as exc:
        queue.put(exc)
    except BaseException as exc:  # report anything to the writer rather than hang it
        queue.put(extracts.ExtractError(f"{type(exc).__name__}: {exc}"))


async def _parsed_in_children(
    path: Path, kind: str, parts: Sequence[extracts.Part | None]
) -> AsyncIterator[Parsed]:
    """Read and check lines in child processes while this one writes the previous batch:
    on two cores the work overlaps. With two parts (two halves of the file), two children
    read at once and their batches are written in turn, one from each; a batch's ``lines``
    is then the lines read by both so far. Each queue holds at most two batches, so memory
    stays bounded."""
    ctx = multiprocessing.get_context("fork")
    readers = []
    for part in parts:
        queue = ctx.Queue(maxsize=2)
        child = ctx.Process(target=_parse_worker, args=(path, kind, part, queue), daemon=True)
        child.start()
        readers.append((child, queue))
    loop = asyncio.get_running_loop()
    done = [0] * len(readers)
    live = list(range(len(readers)))
    try:
        while live:
            for i in list(live):
                child, queue = readers[i]
                item = None
                while True:
                    try:
                        item = await loop.run_in_executor(None, queue.get, True, 1.0)
                        break
                    except Empty:
                        if not child.is_alive():
                            raise extracts.ExtractError("the reading process died") from None
                if item is None:
                    live.remove(i)
                    continue
                if isinstance(item, Exception):
                    raise item
                done[i] = item.lines
                item.lines = sum(done)
                yield item
    finally:
        for child, _ in readers:
            if child.is_alive():
                child.terminate()
            child.join(5)


ProgressFn = Callable[[int], None]
#: Files smaller than this are read in this process (a child costs more than it saves).
CHILD_READER_BYTES = 8 * 1024 * 1024
#: Uncompressed files at least this large are read by two children, a half each, when the
#: sink says so (:attr:`Sink.two_readers`).
TWO_READERS_BYTES = 64 * 1024 * 1024


async def import_extract(
    database_url: str,
    kind: str,
    path: Path,
    *,
    progress: ProgressFn | None = None,
    on_reject: Callable[[Rejected], None] | None = None,
) -> Report:
    """Import one extract file (``.txt`` or ``.zip``); ``progress`` gets lines done so far."""
    if kind not in LINE_HANDLERS:
        raise extracts.ExtractError(f"unknown extract kind {kind!r}")
    size = _checked_size(path, kind)
    start = time.perf_counter()
    report = Report(kind, str(path))
    sink = open_sink(database_url)
    try:
        report.generation = await sink.begin(kind, path.name)
        batches = _in_process(path, kind)
        if size >= CHILD_READER_BYTES:
            halves = None
            if sink.two_readers and size >= TWO_READERS_BYTES and not zipfile.is_zipfile(path):
                halves = extracts.halves(path, "id", LINE_HANDLERS[kind][0])
            batches = _parsed_in_children(path, kind, halves or [None])
        waited = report.mark()
        async for parsed in batches:
            report.timed("read", waited)  # waiting for the reading process's next batch
            report.lines = parsed.lines
            report.imported += parsed.imported
            for rejected in parsed.rejections:
                _reject(report, rejected, on_reject)
            if parsed.batch.size:
                t = report.mark()
                await sink.write(parsed.batch)
                report.timed("write", t)
            if progress is not None:
                progress(report.lines)
            waited = report.mark()
        report.deactivated = await sink.finish(kind, report.generation, report)
        report.rejections.sort(key=lambda r: r.line)  # two readers report in turns
    finally:
        await sink.close()
    report.seconds = time.perf_counter() - start
    return report


def _checked_size(path: Path, kind: str) -> int:
    """The file's size, once its header is known good: a bad file fails before any write."""
    if not path.is_file():
        raise extracts.ExtractError(f"no such file: {path}")
    wanted, required, _ = LINE_HANDLERS[kind]
    with extracts.open_extract(path, kind) as stream:
        for _ in extracts.read_rows(stream, wanted, required):
            break
    return path.stat().st_size


async def _in_process(path: Path, kind: str) -> AsyncIterator[Parsed]:
    for parsed in parse_batches(path, kind):
        yield parsed


def _reject(
    report: Report, rejected: Rejected, on_reject: Callable[[Rejected], None] | None
) -> None:
    report.rejected += 1
    if len(report.rejections) < KEEP_REJECTED:
        report.rejections.append(rejected)
    if on_reject is not None:
        on_reject(rejected)
