"""One server per module, a fresh account per test, and the Debian clients (installed with
apt-get when missing; under CI they are mandatory, elsewhere a failed install skips)."""

from __future__ import annotations

import imaplib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.imap_server.servers import Account, PreparedServer, running_server, shared_template
from tests.support.pgcluster import in_ci
from tests.support.tools import ensure_debian_tool

TIMEOUT = 30.0


@pytest.fixture(scope="module")
def server() -> Iterator[PreparedServer]:
    yield from running_server(shared_template())


@pytest.fixture
def account(server: PreparedServer) -> Account:
    return server.account()


def debian_tool(binary: str, package: str | None = None) -> str:
    try:
        return ensure_debian_tool(binary, package)
    except RuntimeError as exc:
        if in_ci():
            raise
        pytest.skip(f"{binary} unavailable: {exc}")


@pytest.fixture(scope="session")
def offlineimap() -> str:
    return debian_tool("offlineimap", "offlineimap3")


@pytest.fixture(scope="session")
def neomutt() -> str:
    return debian_tool("neomutt")


@pytest.fixture(scope="session")
def tmux() -> str:
    return debian_tool("tmux")


def imap(server: PreparedServer, account: Account) -> imaplib.IMAP4_SSL:
    """An ``imaplib`` session over implicit TLS, logged in: the tests' own view of the server."""
    client = imaplib.IMAP4_SSL(
        "127.0.0.1", server.imap_tls_port, ssl_context=server.ssl_context(), timeout=TIMEOUT
    )
    client.login(account.address, account.password)
    return client


def ca_file(server: PreparedServer) -> Path:
    return server.ca_file
