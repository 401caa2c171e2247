"""``hygie-client`` against a real ``hygie serve`` for the conformance cases that are the
client's (6, 18, 23): a configuration file per person and the command run as a script."""

from __future__ import annotations

import email
import imaplib
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

from bench.harness import ServerProcess
from client_tui.config import Config
from tests.client.conftest import account_for
from tests.client.test_send_command import hygie_client

__all__ = ["client_config", "fetch_all", "hygie_client"]


def client_config(path: Path, server: ServerProcess, address: str) -> Path:
    """A ``hygie-client`` configuration holding the one account ``address`` (a password)."""
    config = Config(path, default="me")
    config.accounts["me"] = account_for(server, address, name="me")
    config.save()
    return config.path


def fetch_all(server: ServerProcess, address: str, password: str,
              folder: str = "INBOX") -> list[EmailMessage]:  # fmt: skip
    """Every message of ``folder`` of ``address``, read over IMAPS, oldest first."""
    client = imaplib.IMAP4_SSL("127.0.0.1", server.imap_tls_port, ssl_context=server.ssl_context())
    try:
        client.login(address, password)
        typ, _ = client.select(f'"{folder}"', readonly=True)
        assert typ == "OK", folder
        _, data = client.uid("SEARCH", "ALL")
        found: list[EmailMessage] = []
        for uid in (data[0] or b"").split():
            _, parts = client.uid("FETCH", uid.decode(), "(BODY.PEEK[])")
            raw = next(p[1] for p in parts if isinstance(p, tuple))
            message = email.message_from_bytes(raw, policy=default_policy)
            assert isinstance(message, EmailMessage)
            found.append(message)
        return found
    finally:
        client.logout()
