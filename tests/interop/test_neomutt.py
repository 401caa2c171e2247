"""``neomutt`` (Debian) in ``tmux``: open INBOX over imaps trusting the data directory's CA,
read a message, delete another and sync with ``$``, and check both the screen and the server."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.imap_server.messages import text_message
from tests.imap_server.servers import Account, PreparedServer
from tests.interop.conftest import imap

DEADLINE = 30.0


class Terminal:
    """A detached tmux session running one program; the screen is read with capture-pane."""

    def __init__(self, tmux: str, command: list[str], env: dict[str, str]) -> None:
        self.tmux = tmux
        self.name = f"hygie-{uuid.uuid4().hex[:8]}"
        args = [f"{k}={v}" for k, v in env.items()]
        subprocess.run(
            [tmux, "new-session", "-d", "-s", self.name, "-x", "160", "-y", "40",
             "env", *args, *command],
            check=True,
        )  # fmt: skip

    def screen(self) -> str:
        proc = subprocess.run(
            [self.tmux, "capture-pane", "-p", "-t", self.name],
            capture_output=True,
            text=True,
            check=False,
        )
        return proc.stdout

    def keys(self, *keys: str) -> None:
        subprocess.run([self.tmux, "send-keys", "-t", self.name, *keys], check=True)

    def wait_for(self, condition: Callable[[str], bool], what: str) -> str:
        deadline = time.monotonic() + DEADLINE
        while True:
            screen = self.screen()
            if condition(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"screen never showed {what}:\n{screen}")
            time.sleep(0.1)

    def close(self) -> None:
        subprocess.run(
            [self.tmux, "kill-session", "-t", self.name], capture_output=True, check=False
        )


def muttrc(path: Path, server: PreparedServer, account: Account) -> Path:
    user = account.address.replace("@", "%40")
    path.write_text(
        f"""set folder = "imaps://{user}@localhost:{server.imap_tls_port}/"
set spoolfile = "+INBOX"
set imap_user = "{account.address}"
set imap_pass = "{account.password}"
set ssl_ca_certificates_file = "{server.ca_file}"
set certificate_file = "{path.parent / "certificates"}"
set ssl_force_tls = yes
set ssl_starttls = yes
set imap_check_subscribed = no
set mail_check = 1
set timeout = 1
set confirmappend = no
set delete = yes
set quit = yes
set move = no
set mark_old = no
set wait_key = no
set pager_stop = yes
set sort = date-sent
set header_cache = ""
set message_cachedir = ""
set record = ""
set sidebar_visible = no
set help = no
"""
    )
    return path


@pytest.fixture
def mutt(
    neomutt: str, tmux: str, server: PreparedServer, account: Account, tmp_path: Path
) -> Iterator[Terminal]:
    rc = muttrc(tmp_path / "muttrc", server, account)
    env = {"TERM": "xterm-256color", "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    terminal = Terminal(tmux, [neomutt, "-n", "-F", str(rc)], env)
    yield terminal
    terminal.close()


@pytest.fixture
def two_messages(server: PreparedServer, account: Account) -> None:
    client = imap(server, account)
    try:
        client.append(
            "INBOX",
            "",
            None,
            text_message(
                "Consultation report",
                "The echocardiogram is normal.\n",
                date="Mon, 17 Nov 2025 09:30:00 +0100",
            ),
        )
        client.append(
            "INBOX",
            "",
            None,
            text_message(
                "Old newsletter",
                "Nothing to read here.\n",
                date="Tue, 18 Nov 2025 09:30:00 +0100",
            ),
        )
    finally:
        client.logout()


def test_read_and_delete(
    two_messages: None, mutt: Terminal, server: PreparedServer, account: Account
) -> None:
    mutt.wait_for(
        lambda s: "Consultation report" in s and "Old newsletter" in s, "the two subjects"
    )
    # Sorted by date: the report is the first line. Open it.
    mutt.keys("=")  # first-entry
    mutt.keys("Enter")
    mutt.wait_for(lambda s: "The echocardiogram is normal." in s, "the report's body")
    mutt.keys("q")
    mutt.wait_for(lambda s: "Old newsletter" in s, "the index again")

    mutt.keys("*")  # last-entry
    mutt.keys("d")
    mutt.keys("$")
    mutt.wait_for(lambda s: "Old newsletter" not in s, "the index without the newsletter")

    client = imap(server, account)
    try:
        typ, data = client.select("INBOX")
        assert (typ, data) == ("OK", [b"1"])
        typ, data = client.fetch("1", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK"
        assert b"Consultation report" in data[0][1]  # type: ignore[index]
        assert b"\\Seen" in data[0][0]  # type: ignore[index]  # neomutt read it
    finally:
        client.logout()
    mutt.keys("q")
