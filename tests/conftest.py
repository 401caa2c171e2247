"""Fixtures shared by every suite: the throwaway PostgreSQL cluster, a fresh database on each
engine, and the ``swaks`` binary. The logic lives in ``tests/support``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.pgcluster import PgCluster, PgUnavailable, in_ci
from tests.support.servers import DATABASES
from tests.support.tools import ensure_debian_tool


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """One PostgreSQL cluster for the whole session; each test takes its own database in it."""
    try:
        cluster = PgCluster().start()
    except PgUnavailable as exc:
        if in_ci():  # under CI the PostgreSQL runs are mandatory
            raise
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    yield cluster
    cluster.stop()


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to a fresh, empty database: a SQLite file, or a new database in ``pg_cluster``."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'hygie.db'}"
        return
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    name = f"t_{uuid.uuid4().hex}"
    yield cluster.create_database(name)
    cluster.drop_database(name)


@pytest.fixture(scope="session")
def swaks() -> str:
    """Path of ``swaks`` (with Net::SSLeay for its TLS), installed from Debian if missing."""
    return ensure_debian_tool("swaks", extra_packages=["libnet-ssleay-perl"])
