"""``Database.lookup``: the RCPT path's point reads, on both engines."""

from __future__ import annotations

import asyncio
from pathlib import Path

from storage.blobs import DatabaseBlobStore
from storage.db import Database, migrate


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
