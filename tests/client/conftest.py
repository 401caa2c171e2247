"""One ``hygie serve`` for the client tests (SQLite: the client only speaks the protocols),
with a practitioner certificate and an account configuration for each person."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.harness import ServerProcess
from client_tui.config import Account, Config
from tests.support.servers import start_server, stop_server

JEAN = "jean.dupont@hygie.test"
CLAIRE = "claire.martin@hygie.test"
PAUL = "paul.bernard@hygie.test"
PASSWORD = "client-test-password-1"
PASSPHRASE = "client-p12-passphrase"
RPPS = "10003456789"


@dataclass(frozen=True)
class Setup:
    server: ServerProcess
    pkcs12: Path  # Jean's practitioner certificate, bound to his mailbox


@pytest.fixture(scope="session")
def client_setup(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    server = start_server(request, "sqlite", {JEAN: PASSWORD, CLAIRE: PASSWORD, PAUL: PASSWORD})
    try:
        out = tmp_path_factory.mktemp("certs")
        proc = server.hygie(
            "pki", "issue", "person", "--rpps", RPPS, "--given-name", "Jean",
            "--surname", "Dupont", "--mailbox", JEAN, "--out", str(out), "--passphrase-stdin",
            input=PASSPHRASE.encode() + b"\n",
        )  # fmt: skip
        crt = Path(proc.stdout.decode().split(": ", 1)[1].split(", ")[0])
        yield Setup(server, crt.with_suffix(".p12"))
    finally:
        stop_server(server)


@pytest.fixture
def server(client_setup: Setup) -> ServerProcess:
    return client_setup.server


def account_for(server: ServerProcess, address: str, name: str = "", **extra: object) -> Account:
    values: dict[str, object] = {
        "name": name or address.split("@")[0].split(".")[0],
        "address": address,
        "host": "127.0.0.1",
        "imap_port": server.imap_tls_port,
        "imap_security": "tls",
        "smtp_port": server.smtp_tls_port,
        "smtp_security": "tls",
        "ca_file": str(server.ca_file),
        "auth": "password",
    }
    values.update(extra)
    return Account(**values)  # type: ignore[arg-type]


@pytest.fixture
def config_file(tmp_path: Path, server: ServerProcess) -> Path:
    """A config with Jean, Claire and Paul (passwords), Jean by default."""
    config = Config(tmp_path / "config.toml", default="jean")
    for address in (JEAN, CLAIRE, PAUL):
        account = account_for(server, address)
        config.accounts[account.name] = account
    config.save()
    return config.path
