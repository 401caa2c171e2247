"""``Database.lookup``: the RCPT path's point reads, on both engines."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from storage.blobs import DatabaseBlobStore
from storage.db import Database, migrate
from tests.support.pgcluster import PgCluster


async def test_concurrent_lookups_answer_each_caller(database_url: str, tmp_path: Path) -> None:
    await migrate(database_url)
    db = Database(database_url, DatabaseBlobStore())
    await db.start()
    try:
        answers = await asyncio.gather(*(db.lookup("SELECT ? + 1", i) for i in range(40)))
        assert answers == [[(i + 1,)] for i in range(40)]
        pg = db._pg_lookups
        if pg is not None:  # a few connections, reused: not one per lookup
            assert 1 <= len(pg._all) <= pg.size
    finally:
        await db.close()


async def test_postgresql_scans_start_at_the_first_block(pg_cluster: PgCluster) -> None:
    """Without ``synchronize_seqscans``, a query without ORDER BY (the directory's dense search
    pages) could start where another session's scan of the table is, and pages could repeat or
    skip documents. Both kinds of connection (point lookups, the engine's pool) turn it off."""
    url = pg_cluster.create_database(f"t_{uuid.uuid4().hex}")
    await migrate(url)
    db = Database(url, DatabaseBlobStore())
    await db.start()
    try:
        assert await db.lookup("SHOW synchronize_seqscans") == [("off",)]
        assert await db.raw_rows("SHOW synchronize_seqscans") == [("off",)]
    finally:
        await db.close()
