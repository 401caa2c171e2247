"""A migrated database on SQLite and on PostgreSQL, with the edge-case fixtures imported."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage.blobs import open_blob_store
from storage.db import Database, migrate

FIXTURES = Path(__file__).parent / "fixtures"
PS_EDGE = FIXTURES / "ps_edge.txt"
MSS_EDGE = FIXTURES / "mss_edge.txt"
#: The practitioners of the fixtures (synthetic RPPS with valid check digits).
DUPONT = "810000000116"
MARTIN = "810000000132"


@pytest.fixture
async def migrated(database_url: str) -> str:
    await migrate(database_url)
    return database_url


@pytest.fixture
async def db(migrated: str, tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(migrated, open_blob_store("file", tmp_path / "blobs"))
    await database.start()
    yield database
    await database.close()
