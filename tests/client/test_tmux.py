"""``hygie-client`` in a real terminal (tmux, 80×24): sign in, see the message list, open a
message, quit. The screen is read with ``tmux capture-pane`` as a person would read it."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.harness import ServerProcess
from tests.client.conftest import PASSWORD
from tests.client.test_app_pilot import jean_sends
from tests.support.tools import ensure_debian_tool


class Tmux:
    """One tmux server on its own socket, so nothing else's sessions are touched."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.socket = f"hygie-client-test-{uuid.uuid4().hex[:8]}"

    def run(self, *args: str) -> str:
        proc = subprocess.run([self.binary, "-L", self.socket, *args],
                              capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
        return proc.stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "client")

    def wait_for(self, text: str, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if text in screen:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never appeared on the screen:\n{screen}")
            time.sleep(0.3)

    def close(self) -> None:
        self.run("kill-server")


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    terminal = Tmux(ensure_debian_tool("tmux"))
    yield terminal
    terminal.close()


async def test_client_in_tmux(server: ServerProcess, config_file: Path, tmux: Tmux) -> None:
    subject = f"Liaison {uuid.uuid4().hex[:6]}"  # short: the subject column ends at 80
    await jean_sends(server, subject)
    script = Path(sys.executable).parent / "hygie-client"
    command = f"{shlex.quote(str(script))} --config {shlex.quote(str(config_file))} " \
              "--account claire; echo CLIENT-EXITED $?; sleep 30"  # fmt: skip
    tmux.run("new-session", "-d", "-s", "client", "-x", "80", "-y", "24",
             "-e", "TERM=xterm-256color", command)  # fmt: skip

    tmux.wait_for("sign-in by password")  # the last line of the account card
    assert "Sign in" in tmux.wait_for("claire.martin@hygie.test")
    tmux.run("send-keys", "-t", "client", "-l", PASSWORD)
    tmux.run("send-keys", "-t", "client", "Enter")

    screen = tmux.wait_for(subject)
    assert "INBOX" in screen and "Compose" in screen  # folders and the footer's keys
    assert "Jean Dupont" in screen or "jean.dupont" in screen

    tmux.run("send-keys", "-t", "client", "Enter")  # opens the newest message
    screen = tmux.wait_for("le bilan est normal")
    assert "Subject" in screen

    tmux.run("send-keys", "-t", "client", "q")
    screen = tmux.wait_for("CLIENT-EXITED")
    assert "CLIENT-EXITED 0" in screen
    assert "Traceback" not in screen
