"""``hygie serve`` processes for the end-to-end tests, on SQLite or on the PostgreSQL cluster.

SQLite runs use the default file blob store; PostgreSQL runs use the database blob store
(``HYGIE_STORAGE_BLOB_STORE=database``), so between them both stores are exercised end to end.
"""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Mapping

import pytest

from bench.harness import ServerProcess

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


_TOKENS: weakref.WeakKeyDictionary[ServerProcess, dict[str, str]] = weakref.WeakKeyDictionary()


def bearer_token(server: ServerProcess, who: str) -> str:
    """An access token for ``who`` from ``server`` (``hygie token issue``), one per person and
    server: each ``hygie`` command is a process start, and tests call the HTTPS routes often."""
    tokens = _TOKENS.setdefault(server, {})
    if who not in tokens:
        tokens[who] = server.hygie("token", "issue", who).stdout.decode().strip()
    return tokens[who]
