"""``hygie serve`` processes for the end-to-end tests, on SQLite or on the PostgreSQL cluster.

SQLite runs use the default file blob store; PostgreSQL runs use the database blob store
(``HYGIE_STORAGE_BLOB_STORE=database``), so between them both stores are exercised end to end.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import pytest

from bench.harness import ServerProcess
from server.auth.oauth import DevIssuer
from server.config import load_config

# The two databases every storage and e2e test runs on; the PostgreSQL runs carry the marker.
DATABASES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]

# Large enough for the 5 MiB attachment (base64: ~6.8 MiB), small enough to exceed quickly.
MAX_MESSAGE_SIZE = 8 * 1024 * 1024


def start_server(
    request: pytest.FixtureRequest,
    database: str,
    users: Mapping[str, str],
    env: Mapping[str, str] | None = None,
) -> ServerProcess:
    extra = {"HYGIE_SMTP_MAX_MESSAGE_SIZE": str(MAX_MESSAGE_SIZE), **(env or {})}
    url = None
    if database == "postgresql":
        cluster = request.getfixturevalue("pg_cluster")
        url = cluster.create_database(f"e2e_{uuid.uuid4().hex[:16]}")
        extra.setdefault("HYGIE_STORAGE_BLOB_STORE", "database")
    server = ServerProcess(users=users, database_url=url, env=extra)
    try:
        return server.start()
    except BaseException:
        server.close()
        raise


def stop_server(server: ServerProcess) -> None:
    """SIGTERM; ``hygie serve`` must exit 0 (issue 2 item 3)."""
    try:
        code = server.stop()
    finally:
        server.close()
    assert code == 0, f"hygie serve exited {code} on SIGTERM\n{server.log_tail()}"


def bearer_token(server: ServerProcess, who: str, ttl_seconds: int = 300) -> str:
    """What ``hygie token issue WHO`` prints for ``server``, made in this process (the same
    issuer key and configuration) instead of a process start per token."""
    return DevIssuer(load_config(server.data_dir, server.env())).issue(who, ttl_seconds=ttl_seconds)
