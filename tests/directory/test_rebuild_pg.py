"""PostgreSQL's document rebuild (issue 5 item 7): the stored ``tsv`` made of a document's
words (migration 0018) is what the text parser would make of them, and a rebuild shared by
two connections then put in place (:func:`directory.search.pg_parallel_rebuild`) leaves the
same answers, the same table and a working id sequence."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import make_url

from directory import load, synth
from directory import search as search_module
from directory.extracts import MSSANTE, PS_LIBREACCES
from directory.load import import_extract
from directory.local import set_mailbox
from directory.search import NEXT, Query, search
from directory.text import MAX_WORD, fold, squash
from storage.blobs import open_blob_store
from storage.db import Database, migrate
from tests.directory.conftest import DUPONT, MSS_EDGE, PS_EDGE
from tests.support.pgcluster import PgCluster

QUERIES = (
    {"text": "dupont"},
    {"text": "dupont cardio lyon"},
    {"text": "dupont", "mailbox_type": "PER"},
    {"kind": "O", "postcode": "69"},
    {"postcode": "69"},
    {"text": "ma", "kind": "P"},
)


@pytest.fixture
async def pg_url(pg_cluster: PgCluster) -> AsyncIterator[str]:
    name = f"t_{uuid.uuid4().hex}"
    url = pg_cluster.create_database(name)
    await migrate(url)
    yield url
    pg_cluster.drop_database(name)


async def _connect(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(make_url(url).set(drivername="postgresql").render_as_string(False))


async def _answers(url: str, tmp_path: Path) -> list[list[str]]:
    db = Database(url, open_blob_store("file", tmp_path / "blobs"))
    await db.start()
    try:
        return [sorted(h.ref for h in await search(db, Query(**q))) for q in QUERIES]  # type: ignore[arg-type]
    finally:
        await db.close()


async def _shape(url: str) -> dict[str, object]:
    """What the schema says of dir_search: its indexes, default and sequence owner."""
    conn = await _connect(url)
    try:
        indexes = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'dir_search'"
            " ORDER BY indexname"
        )
        return {
            "indexes": [(r[0], r[1]) for r in indexes],
            "primary": await conn.fetchval(
                "SELECT conname FROM pg_constraint WHERE conrelid = 'dir_search'::regclass"
                " AND contype = 'p'"
            ),
            "defaults": [
                tuple(r)
                for r in await conn.fetch(
                    "SELECT a.attname, pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d"
                    " JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum"
                    " WHERE d.adrelid = 'dir_search'::regclass ORDER BY d.adnum"
                )
            ],
            "columns": [
                tuple(r)
                for r in await conn.fetch(
                    "SELECT attname, format_type(atttypid, atttypmod), attnotnull"
                    " FROM pg_attribute WHERE attrelid = 'dir_search'::regclass AND attnum > 0"
                    " AND NOT attisdropped ORDER BY attnum"
                )
            ],
            "sequence": await conn.fetchval("SELECT pg_get_serial_sequence('dir_search', 'id')"),
            "leftover": await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", NEXT),
            "trigrams": await conn.fetchval(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_dir_mailboxes_address_trgm'"
            ),
        }
    finally:
        await conn.close()


async def test_a_parallel_rebuild_gives_the_same_answers_and_table(
    pg_cluster: PgCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fixtures imported twice into two databases, once with the single-transaction
    rebuild and once with the one shared by two connections (forced on these few documents,
    for both imports): same answers, same indexes, constraint and sequence; a mailbox
    added afterwards gets a fresh document id."""
    urls = []
    for name in ("single", "parallel"):
        db_name = f"t_{name}_{uuid.uuid4().hex[:12]}"
        url = pg_cluster.create_database(db_name)
        await migrate(url)
        urls.append((db_name, url))
    try:
        (_, single), (_, parallel) = urls
        for kind, path in ((PS_LIBREACCES, PS_EDGE), (MSSANTE, MSS_EDGE)):
            await import_extract(single, kind, path)
        plans: list[object] = []
        real = search_module.pg_parallel_rebuild

        def counted(
            mailboxes: bool, split: tuple[int, int], org_base: int
        ) -> search_module.ParallelRebuild:
            plans.append((mailboxes, split, org_base))
            return real(mailboxes, split, org_base)

        monkeypatch.setattr(search_module, "pg_parallel_rebuild", counted)
        monkeypatch.setattr(load, "PARALLEL_MIN_DOCUMENTS", 0)
        monkeypatch.setattr(load, "PG_REBUILD_SHARE", 10**9)  # the MSSanté import rebuilds too
        for kind, path in ((PS_LIBREACCES, PS_EDGE), (MSSANTE, MSS_EDGE)):
            report = await import_extract(parallel, kind, path)
            assert report.phases["search"] > 0
        assert len(plans) == 2  # both imports took the two-connection rebuild
        expected = await _answers(single, tmp_path / "a")
        assert DUPONT in expected[0] and all(expected), expected
        assert await _answers(parallel, tmp_path / "b") == expected
        shape = await _shape(parallel)
        assert shape == await _shape(single)
        assert shape["primary"] == "pk_dir_search"
        defaults = shape["defaults"]
        assert isinstance(defaults, list) and [d[0] for d in defaults] == ["id", "tsv"]
        assert shape["sequence"] == "public.dir_search_id_seq"
        assert shape["leftover"] is False
        assert "gin_trgm_ops" in str(shape["trigrams"])
        conn = await _connect(parallel)
        try:
            finished = await conn.fetch("SELECT finished_at FROM dir_imports ORDER BY id")
            assert len(finished) == 2 and all(r[0] is not None for r in finished)
            top = await conn.fetchval("SELECT max(id) FROM dir_search")
            # Analysed before the swap: the statistics searches plan with came along.
            assert await conn.fetchval(
                "SELECT count(*) FROM pg_stats WHERE tablename = 'dir_search' AND attname = 'tsv'"
            )
        finally:
            await conn.close()
        # A local mailbox rewrites its owner's document with the next id of the sequence.
        db = Database(parallel, open_blob_store("file", tmp_path / "c"))
        await db.start()
        try:
            await set_mailbox(db, "cabinet.dupont@hygie.test", "CAB", practitioner_idnat=DUPONT)
            conn = await _connect(parallel)
            try:
                assert await conn.fetchval("SELECT max(id) FROM dir_search") > top
            finally:
                await conn.close()
            found = await search(db, Query(text="dupont", mailbox_type="CAB"))
            assert DUPONT in [h.ref for h in found]
        finally:
            await db.close()
    finally:
        for db_name, _ in urls:
            pg_cluster.drop_database(db_name)


async def test_stored_words_are_what_the_text_parser_makes_of_them(
    pg_url: str, tmp_path: Path
) -> None:
    """Migration 0018 builds ``tsv`` from the words without the parser: on synthetic files
    (accents, hyphens, apostrophes, towns of several words) and the edge-case fixtures,
    every document's vector equals the parser's, positions aside."""
    ps, mss = tmp_path / "ps.txt", tmp_path / "mss.txt"
    with ps.open("w", encoding="utf-8") as fh:
        synth.write(PS_LIBREACCES, 3000, fh)
    with mss.open("w", encoding="utf-8") as fh:
        synth.write(MSSANTE, 1000, fh)
    for kind, path in ((PS_LIBREACCES, ps), (MSSANTE, mss), (MSSANTE, MSS_EDGE)):
        await import_extract(pg_url, kind, path)
    conn = await _connect(pg_url)
    try:
        total = await conn.fetchval("SELECT count(*) FROM dir_search")
        differ = await conn.fetchval(
            "SELECT count(*) FROM dir_search WHERE tsv <> strip(to_tsvector('simple', doc))"
        )
    finally:
        await conn.close()
    assert total > 3000
    assert differ == 0


def test_words_are_cut_to_a_lexeme_postgresql_can_hold() -> None:
    """PostgreSQL holds lexemes of at most 2,047 bytes; a longer word would corrupt the
    vector ``array_to_tsvector`` makes, so folded words are cut to ``MAX_WORD``."""
    long = "É" + "a" * 5000
    assert [len(w) for w in fold(f"{long} dupont").split()] == [MAX_WORD, 6]
    assert len(squash(f"saint {long}")) == MAX_WORD
    assert fold("Hélène D'ARCY-Noël") == "helene d arcy noel"


async def test_searches_keep_answering_while_a_rebuild_is_put_in_place(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A live server searches while the daily import swaps the documents' table: every
    search answers (from the old table or the new one), none fails."""
    monkeypatch.setattr(load, "PARALLEL_MIN_DOCUMENTS", 0)
    monkeypatch.setattr(load, "PG_REBUILD_SHARE", 10**9)
    for kind, path in ((PS_LIBREACCES, PS_EDGE), (MSSANTE, MSS_EDGE)):
        await import_extract(pg_url, kind, path)
    db = Database(pg_url, open_blob_store("file", tmp_path / "blobs"))
    await db.start()
    answers: list[list[str]] = []
    stop = asyncio.Event()

    async def searching() -> None:
        while not stop.is_set():
            for q in QUERIES[:3]:
                answers.append([h.ref for h in await search(db, Query(**q))])  # type: ignore[arg-type]
            await asyncio.sleep(0)

    try:
        task = asyncio.create_task(searching())
        for _ in range(3):
            for kind, path in ((PS_LIBREACCES, PS_EDGE), (MSSANTE, MSS_EDGE)):
                await import_extract(pg_url, kind, path)
        stop.set()
        await task  # re-raises any error a search met
    finally:
        stop.set()
        await db.close()
    assert len(answers) > 30
    assert all(DUPONT in found for found in answers)


async def test_a_failed_rebuild_leaves_the_old_documents_and_the_next_import_mends_it(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One connection fails in the middle of the build: the import fails with that error,
    after the other connection has finished; the old documents stay searchable, the import
    is not marked finished, and the next import rebuilds (dropping the half-built table)."""
    monkeypatch.setattr(load, "PARALLEL_MIN_DOCUMENTS", 0)
    await import_extract(pg_url, PS_LIBREACCES, PS_EDGE)
    real = search_module.pg_parallel_rebuild

    def broken(
        mailboxes: bool, split: tuple[int, int], org_base: int
    ) -> search_module.ParallelRebuild:
        plan = real(mailboxes, split, org_base)
        first, second = plan.build[0]
        return search_module.ParallelRebuild(
            plan.prepare, [(first, [*second, "SELECT 1 / 0"])], plan.index, plan.swap
        )

    monkeypatch.setattr(search_module, "pg_parallel_rebuild", broken)
    with pytest.raises(asyncpg.DivisionByZeroError):
        await import_extract(pg_url, PS_LIBREACCES, PS_EDGE)
    db = Database(pg_url, open_blob_store("file", tmp_path / "blobs"))
    await db.start()
    try:
        assert DUPONT in [h.ref for h in await search(db, Query(text="dupont"))]
    finally:
        await db.close()
    conn = await _connect(pg_url)
    try:
        finished = [
            r[0] for r in await conn.fetch("SELECT finished_at FROM dir_imports ORDER BY id")
        ]
        assert finished[0] is not None and finished[1] is None
        assert await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", NEXT)
    finally:
        await conn.close()
    monkeypatch.setattr(search_module, "pg_parallel_rebuild", real)
    await import_extract(pg_url, PS_LIBREACCES, PS_EDGE)
    assert (await _shape(pg_url))["leftover"] is False
