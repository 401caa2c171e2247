"""Attachments opened in the system viewer leave no decrypted copy behind (issue 17 finding 6):
Claire opens a report Jean sent her through a real ``hygie serve``; the copy the viewer gets is
private (0600 in a 0700 folder under ``$XDG_RUNTIME_DIR``) and is gone once the viewer exits,
or when she quits while it is still open; a crash, SIGTERM or a killed client leave nothing
either (atexit, the signal, the next client's sweep)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from textual.widgets import DataTable, Static

from bench.harness import ServerProcess
from client_tui.app import HygieClient
from client_tui.config import load_config
from client_tui.mail_screen import MailScreen
from tests.client.pilot import row_of, table_subjects, wait_until
from tests.client.test_app_pilot import SIZE, jean_sends, sign_in

REPORT = b"%PDF-1.4 compte rendu MARKER-viewer-17-6"


def viewer_script(tmp_path: Path) -> tuple[Path, Path]:
    """A viewer that notes the path and modes it was given, then stays open until the test
    creates ``close-N`` (N: its turn), as a document viewer stays open until closed."""
    seen = tmp_path / "seen"
    viewer = tmp_path / "viewer"
    viewer.write_text(f"""#!/bin/sh
echo "$1 $(stat -c %a "$1") $(stat -c %a "$(dirname "$1")") $(cat "$1")" >> {seen}
turn=$(wc -l < {seen})
n=0
while [ ! -e {tmp_path}/close-$turn ] && [ $n -lt 1200 ]; do sleep 0.1; n=$((n+1)); done
""")
    viewer.chmod(0o755)
    return viewer, seen


def views(seen: Path) -> list[list[str]]:
    return [line.split(" ", 3) for line in seen.read_text().splitlines()] if seen.exists() else []


async def test_an_opened_attachment_leaves_no_copy(
    server: ServerProcess, config_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setattr("client_tui.viewer.MIN_SECONDS", 1.0)
    viewer, seen = viewer_script(tmp_path)
    monkeypatch.setattr("client_tui.mail_screen.shutil.which",
                        lambda name: str(viewer) if name == "xdg-open" else None)  # fmt: skip
    report = tmp_path / "compte-rendu.pdf"
    report.write_bytes(REPORT)
    subject = f"Compte rendu {uuid.uuid4().hex[:6]}"
    await jean_sends(server, subject, attachment=report)

    app = HygieClient(load_config(config_file), account_name="claire")
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot)
        await wait_until(pilot, lambda: subject in table_subjects(pilot), "the message list")
        assert isinstance(app.screen, MailScreen)
        table = app.screen.query_one("#messages", DataTable)
        table.move_cursor(row=row_of(pilot, subject))
        table.focus()
        await pilot.press("enter")
        attachments = app.screen.query_one("#reader-attachments", Static)
        await wait_until(pilot, lambda: "compte-rendu.pdf" in str(attachments.render()), "it")

        # The viewer gets a private copy under $XDG_RUNTIME_DIR ...
        await pilot.press("o")
        await wait_until(pilot, lambda: len(views(seen)) == 1, "the viewer")
        [[first, file_mode, folder_mode, content]] = views(seen)
        assert Path(first).parent.parent == runtime / "hygie-client"
        assert (file_mode, folder_mode) == ("600", "700")
        assert content.encode() == REPORT
        # ... that stays while it is open, and goes when it is closed.
        await pilot.pause(1.5)
        assert Path(first).exists()
        (tmp_path / "close-1").touch()
        await wait_until(pilot, lambda: not Path(first).exists(), "the copy removed", 20)

        # Opened again, and the client quits while the viewer still shows it.
        await pilot.press("o")
        await wait_until(pilot, lambda: len(views(seen)) == 2, "the viewer again")
        second = Path(views(seen)[1][0])
        assert second.exists()
        await pilot.press("q")
    assert not second.exists() and not second.parent.exists()
    assert list((runtime / "hygie-client").iterdir()) == []
    (tmp_path / "close-2").touch()


def _client_process(runtime: Path, code: str) -> subprocess.Popen[str]:
    """A Python process that writes a viewer copy as the client does, then runs ``code``."""
    script = (
        "import sys, time\n"
        "from client_tui.compose import Attachment\n"
        "from client_tui.viewer import ViewerCopies\n"
        "copies = ViewerCopies()\n"
        f"path = copies.write(Attachment('cr.pdf', 'application/pdf', {REPORT!r}))\n"
        "print(path, flush=True)\n" + code
    )
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    # A client started from a terminal: SIGHUP at its default even when this test run was
    # started under nohup (the client rightly leaves an ignored SIGHUP ignored).
    return subprocess.Popen([sys.executable, "-c", script], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=_default_hangup)  # fmt: skip


def _default_hangup() -> None:
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


@pytest.mark.parametrize("how", ["exception", "sigterm", "sighup", "sigkill"])
def test_a_crashed_client_leaves_no_copy(tmp_path: Path, how: str) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    code = "raise RuntimeError('crash')\n" if how == "exception" else "time.sleep(60)\n"
    process = _client_process(runtime, code)
    assert process.stdout is not None
    path = Path(process.stdout.readline().strip())
    if how != "exception":
        assert path.read_bytes() == REPORT  # written, readable by this user only
        process.send_signal({"sigterm": signal.SIGTERM, "sighup": signal.SIGHUP,
                             "sigkill": signal.SIGKILL}[how])  # fmt: skip
    process.wait(timeout=30)
    assert process.returncode != 0
    if how == "sigkill":  # no chance to clean: the next client sweeps the dead one's folder
        assert path.exists()
        later = _client_process(runtime, "")
        assert later.stdout is not None
        later.stdout.readline()
        later.wait(timeout=30)
        deadline = time.monotonic() + 5
        while path.parent.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    assert not path.exists() and not path.parent.exists()
    assert list((runtime / "hygie-client").iterdir()) == []
