"""Fixtures of the dialogue tests: one server per module (``SERVER_ENV`` in a module adds
environment overrides), a fresh account per test, and connections ``tc``/``tc2`` on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.imap_server.dialogue import Script
from tests.imap_server.servers import Account, PreparedServer, running_server, shared_template

Connect = Callable[..., Script]


@pytest.fixture(scope="session")
def template() -> Path:
    return shared_template()


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest, template: Path) -> Iterator[PreparedServer]:
    yield from running_server(template, getattr(request.module, "SERVER_ENV", None))


@pytest.fixture
def account(server: PreparedServer) -> Account:
    """This test's own account: its mailboxes hold only the default folders."""
    return server.account()


@pytest.fixture
def connect(server: PreparedServer) -> Iterator[Connect]:
    """``connect("tc2")``: another connection, greeting not yet read (``starttls_port=True``
    for the plaintext port)."""
    scripts: list[Script] = []

    def make(name: str = "tc", *, starttls_port: bool = False) -> Script:
        script = Script.connect(server, starttls_port=starttls_port, name=name)
        scripts.append(script)
        return script

    yield make
    for script in scripts:
        script.close()


@pytest.fixture
def tc(connect: Connect, account: Account) -> Script:
    """Logged in as ``account`` over implicit TLS."""
    return connect("tc").open(account.address, account.password)


@pytest.fixture
def tc2(connect: Connect, account: Account) -> Script:
    """A second session of the same account (what another client of the user sees)."""
    return connect("tc2").open(account.address, account.password)
