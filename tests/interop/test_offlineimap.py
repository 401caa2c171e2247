"""``offlineimap3`` (Debian) syncs INBOX both ways with a local Maildir: a new local message is
uploaded, a server-side flag change and new mail come down, a local deletion is expunged on
the server."""

from __future__ import annotations

import imaplib
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.imap_server.messages import text_message
from tests.imap_server.servers import Account, PreparedServer
from tests.interop.conftest import imap


class Sync:
    def __init__(self, binary: str, server: PreparedServer, account: Account, home: Path) -> None:
        self.binary = binary
        self.maildir = home / "mail"
        self.config = home / "offlineimaprc"
        self.config.write_text(
            f"""[general]
accounts = hygie
metadata = {home / "metadata"}
ui = quiet

[Account hygie]
localrepository = local
remoterepository = remote

[Repository local]
type = Maildir
localfolders = {self.maildir}

[Repository remote]
type = IMAP
remotehost = localhost
remoteport = {server.imap_tls_port}
ssl = yes
sslcacertfile = {server.ca_file}
remoteuser = {account.address}
remotepass = {account.password}
folderfilter = lambda folder: folder == "INBOX"
expunge = yes
"""
        )

    def run(self) -> None:
        proc = subprocess.run(
            [self.binary, "-c", str(self.config), "-o", "-u", "basic"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, f"offlineimap failed:\n{proc.stdout}\n{proc.stderr}"
        assert "ERROR" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr

    @property
    def inbox(self) -> Path:
        return self.maildir / "INBOX"

    def local_messages(self) -> dict[str, Path]:
        """Subject → file, for every message in the local INBOX (new and cur)."""
        out: dict[str, Path] = {}
        for sub in ("new", "cur"):
            for path in (self.inbox / sub).glob("*"):
                m = re.search(rb"^Subject: (.*?)\r?$", path.read_bytes(), re.MULTILINE)
                if m:
                    out[m.group(1).decode()] = path
        return out


def server_subjects(client: imaplib.IMAP4) -> dict[str, bytes]:
    """Subject → flags of every message in the server's INBOX."""
    typ, data = client.select("INBOX")
    assert typ == "OK", data
    if data[0] == b"0":
        return {}
    typ, data = client.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK", data
    out: dict[str, bytes] = {}
    for item in data:
        if isinstance(item, tuple):
            subject = item[1].decode().strip().removeprefix("Subject: ")
            flags = re.search(rb"FLAGS \(([^)]*)\)", item[0])
            out[subject] = flags.group(1) if flags else b""
    return out


@pytest.fixture
def sync(offlineimap: str, server: PreparedServer, account: Account, tmp_path: Path) -> Sync:
    return Sync(offlineimap, server, account, tmp_path)


def test_two_way_sync(sync: Sync, server: PreparedServer, account: Account) -> None:
    client = imap(server, account)
    try:
        client.append("INBOX", "", None, text_message("From the server"))
        sync.run()
        assert "From the server" in sync.local_messages()

        # A message written locally is uploaded.
        name = f"{int(time.time())}.{os.getpid()}_1.{socket.gethostname()}"
        (sync.inbox / "new" / name).write_bytes(text_message("Written locally"))
        sync.run()
        assert "Written locally" in server_subjects(client)

        # A flag set on the server and new mail come down.
        client.select("INBOX")
        typ, data = client.search(None, 'SUBJECT "From the server"')
        assert typ == "OK" and data[0], data
        client.store(data[0].decode(), "+FLAGS", "(\\Flagged)")
        client.append("INBOX", "", None, text_message("Second from the server"))
        sync.run()
        local = sync.local_messages()
        assert "Second from the server" in local
        info = local["From the server"].name.rpartition(":2,")[2]
        assert "F" in info, local["From the server"].name

        # A local deletion is expunged on the server.
        local["Written locally"].unlink()
        sync.run()
        assert "Written locally" not in server_subjects(client)
        assert set(server_subjects(client)) == {"From the server", "Second from the server"}
    finally:
        client.logout()
