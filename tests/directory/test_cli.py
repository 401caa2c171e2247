"""`hygie directory …` as a user runs it: synth, import (report, progress bar only on a
terminal), search table, one-line errors with a non-zero exit; `hygie init --demo` puts the
demo accounts in the directory."""

from __future__ import annotations

import asyncio
import os
import pty
import subprocess
from pathlib import Path

import pytest

from bench.harness import hygie_command
from directory.ins import IdentityStatus
from directory.lookup import mailbox_active, may_send_as
from directory.patients import identity_status
from storage.blobs import open_blob_store
from storage.db import Database
from tests.directory.conftest import PS_EDGE

pytestmark = pytest.mark.e2e


def hygie(data: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [*hygie_command(), "--data", str(data), *args],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "data"
    hygie(path, "init")
    return path


def test_synth_import_search(data: Path) -> None:
    ps = data.parent / "ps.txt"
    hygie(data, "directory", "synth", "--kind", "ps-libreacces", "--rows", "2000", "--out", str(ps))
    lines = ps.read_text("utf-8").splitlines()
    assert lines[0].startswith("Type d'identifiant PP|Identifiant PP|Identification nationale PP|")
    assert len(lines) == 2001 and all(line.endswith("|") for line in lines)
    out = hygie(data, "directory", "import", "ps-libreacces", str(ps))
    assert "2000 lines, 2000 imported, 0 rejected" in out.stdout
    assert "importing" not in out.stderr  # no progress bar when not on a terminal
    found = hygie(data, "directory", "search", "med", "--profession", "10", "--limit", "5")
    table = found.stdout.splitlines()
    assert table[0].split() == ["id", "name", "profession", "place", "mailbox"]
    assert 1 < len(table) <= 6 and all("Médecin" in row for row in table[1:])


def test_rejected_lines_are_reported_with_numbers(data: Path) -> None:
    report = data.parent / "rejected.txt"
    out = hygie(data, "directory", "import", "ps-libreacces", str(PS_EDGE), "--report", str(report))
    assert "2 rejected" in out.stdout
    assert "line 5: bad RPPS check digit" in out.stderr
    assert report.read_text("utf-8").splitlines() == [
        "line 5: bad RPPS check digit",
        "line 6: 5 fields where the header has 56",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["directory", "import", "mssante", "/nonexistent.txt"], "no such file"),
        (["directory", "import", "rpps", "x.txt"], "'rpps' is not one of"),
        (["directory", "search", "x"], "at least one word"),
        (["directory", "synth", "--kind", "mssante", "--rows", "-3"], "Invalid value"),
        (["directory", "mailbox", "a@hygie.test", "--type", "XYZ"], "Invalid value"),
    ],
)
def test_bad_input_is_one_line_and_non_zero(data: Path, args: list[str], message: str) -> None:
    proc = hygie(data, *args, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_file_with_the_wrong_header_is_refused(data: Path) -> None:
    bad = data.parent / "wrong.txt"
    bad.write_text("Nom|Prénom|\nA|B|\n", "utf-8")
    proc = hygie(data, "directory", "import", "mssante", str(bad), check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"hygie: error: {bad}: column 'Type de BAL' not found in the header"
    ]


def test_progress_bar_on_a_terminal(data: Path) -> None:
    mss = data.parent / "mss.txt"
    hygie(data, "directory", "synth", "--kind", "mssante", "--rows", "500", "--out", str(mss))
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*hygie_command(), "--data", str(data), "directory", "import", "mssante", str(mss)],
        stdin=slave, stdout=slave, stderr=slave,
    )  # fmt: skip
    os.close(slave)
    output = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    assert proc.wait(60) == 0
    os.close(master)
    assert b"importing mss.txt" in output
    assert b"500 lines, 500 imported" in output


def test_demo_accounts_are_directory_entries(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    hygie(data, "init", "--demo")
    out = hygie(data, "directory", "search", "claire martin", "--specialty", "SM04").stdout
    assert "claire.martin@hygie.test" in out

    async def check() -> None:
        db = Database(f"sqlite+aiosqlite:///{data / 'hygie.db'}", open_blob_store("file", data))
        try:
            for local in ("jean.dupont", "claire.martin", "secretariat.cardiologie"):
                assert await mailbox_active(db, f"{local}@hygie.test") is True
            assert await may_send_as(
                db, "claire.martin@hygie.test", "secretariat.cardiologie@hygie.test"
            )
            assert await identity_status(db, "279035121518989") is IdentityStatus.QUAL
        finally:
            await db.close()

    asyncio.run(check())
