"""Hostile directory import files (issue 26; directory/extracts.py): invalid UTF-8, a line of
200 MB without a newline, a line of 30,000 fields, a header of 20,000 columns. Imported with
`hygie directory import` into a running `hygie serve`'s database: the good lines are
imported, each bad one is rejected with its reason, a bad header fails the import with its
reason, and the importing processes' memory stays bounded."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from bench.harness import ServerProcess, hygie_command
from directory import synth
from directory.extracts import MAX_COLUMNS, MAX_LINE, PS_HEADER, PS_LIBREACCES
from tests.support.servers import start_server, stop_server

pytestmark = pytest.mark.e2e
ROWS = 2000
HUGE = 200 * 2**20


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    srv = start_server(request, "sqlite", {})
    yield srv
    stop_server(srv)


def _hwm(pid: int) -> int:
    """The process's peak RSS (VmHWM, bytes), 0 once it has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def run_import(server: ServerProcess, path: Path) -> tuple[int, str, int]:
    """Exit code, output and the largest peak RSS (bytes) of the import and of its reading
    processes, sampled from /proc while they run (getrusage's would count the test process's
    own size: a child's peak includes its parent's memory before exec)."""
    cmd = [*hygie_command(), "--data", str(server.data_dir), "directory", "import",
           PS_LIBREACCES, str(path)]  # fmt: skip
    out = path.with_suffix(".out")
    peak = 0
    with out.open("wb") as sink:
        proc = subprocess.Popen(cmd, env=server.env(), stdout=sink, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            try:
                family = [proc.pid, *(c.pid for c in psutil.Process(proc.pid).children(True))]
            except psutil.NoSuchProcess:
                family = []
            peak = max([peak, *(_hwm(pid) for pid in family)])
            time.sleep(0.05)
    return proc.returncode, out.read_text(errors="replace"), peak


def test_bad_lines_are_rejected_and_memory_stays_bounded(
    server: ServerProcess, tmp_path: Path
) -> None:
    path = tmp_path / "ps.txt"
    with path.open("wb") as fh:
        fh.write(("|".join(PS_HEADER) + "|\n").encode())
        good = [line.encode() for line in synth.ps_rows(ROWS)]
        fh.writelines(good[: ROWS // 2])
        fh.write(b"8|\xff\xfe not utf-8|" + b"|" * (len(PS_HEADER) - 2) + b"\n")
        fh.write(b"|" * 30_000 + b"\n")  # 30,000 fields (the last "|" ends the line)
        chunk = b"x" * 2**20
        for _ in range(HUGE // len(chunk)):  # 200 MB, no newline until its end
            fh.write(chunk)
        fh.write(b"\n")
        fh.writelines(good[ROWS // 2 :])
    code, output, peak = run_import(server, path)
    assert code == 0, output
    assert peak < 200 * 2**20, f"the import took {peak / 2**20:.0f} MB"
    found = re.search(r"(\d+) rejected", output)
    assert found and int(found.group(1)) == 3, output
    assert "not UTF-8" in output
    assert "30000 fields where the header has 56" in output
    assert f"longer than {MAX_LINE // 1024} KiB" in output
    assert f"{ROWS} imported" in output  # the good lines on both sides of the bad ones


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (b"|".join([b"c"] * 20_000) + b"\n", f"more than {MAX_COLUMNS} columns"),
        (b"a|" * (MAX_LINE // 2 + 10), f"header line is longer than {MAX_LINE // 1024} KiB"),
        (b"Nom d'exercice|\xff\xfe|\n", "the header is not UTF-8"),
    ],
    ids=["columns", "long", "utf-8"],
)
def test_a_bad_header_fails_the_import_with_its_reason(
    server: ServerProcess, tmp_path: Path, header: bytes, reason: str
) -> None:
    path = tmp_path / "ps.txt"
    path.write_bytes(header + "".join(synth.ps_rows(10)).encode())
    code, output, peak = run_import(server, path)
    assert code != 0 and reason in output, output
    assert peak < 200 * 2**20
