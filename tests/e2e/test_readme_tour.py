"""The README's tour, run literally: every ``sh`` block from "A short tour" on, in order, in one
shell, against ``make run``'s server started in a fresh clone, from a temporary home folder.
A line marked ``# interactive`` (mutt, the Textual interface) is the only thing left out. So
the README cannot drift from the product again (issue 25), and the tour leaves the clone as
``git status`` found it.

The server listens on the README's ports (2587, 2993, 2143, 8443…): they are the product's
defaults, which no other test uses."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from directory.demo import CLAIRE
from tests.support.tools import ensure_debian_tool

REPO = Path(__file__).resolve().parents[2]
TOUR_START = "## A short tour"
PORTS = (2587, 2465, 2143, 2993, 8443, 8080, 2525)
INTERACTIVE = "# interactive"


def tour_script(readme: str) -> str:
    """The ``sh`` blocks from the tour on, joined, without the commands marked interactive
    (a command continued over several lines goes with its last line's mark)."""
    blocks = re.findall(r"^```sh\n(.*?)^```$", readme[readme.index(TOUR_START):], re.M | re.S)
    kept: list[str] = []
    for block in blocks:
        command: list[str] = []
        for line in block.splitlines():
            command.append(line)
            if line.endswith("\\"):
                continue
            if not line.rstrip().endswith(INTERACTIVE):
                kept.extend(command)
            command = []
        kept.extend(command)
    return "\n".join(kept) + "\n"


def test_the_tour_script_keeps_every_block_but_interactive_commands() -> None:
    readme = "\n".join(["x", TOUR_START, "```sh", "a \\", "  b", "c \\", "  d   # interactive",
                        "e", "```", "```python", "f", "```", "```sh", "g", "```"])  # fmt: skip
    assert tour_script(readme) == "a \\\n  b\ne\ng\n"


@dataclass
class Tour:
    clone: Path
    home: Path
    data: Path
    log: Path


def _git_status(where: Path) -> str:
    return subprocess.run(["git", "status", "--porcelain", "--ignored=no"], cwd=where,
                          capture_output=True, text=True, check=True).stdout  # fmt: skip


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _environment(home: Path) -> dict[str, str]:
    """What a new user's shell has: no virtual environment on the PATH, no HYGIE_DATA."""
    path = [p for p in os.environ.get("PATH", "/usr/bin:/bin").split(":")
            if p and not p.startswith(str(REPO)) and ".venv" not in p]  # fmt: skip
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("HYGIE", "VIRTUAL_ENV"))}
    return {**keep, "HOME": str(home), "PATH": ":".join(path), "LC_ALL": "C.UTF-8"}


@pytest.fixture(scope="module")
def tour(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tour]:
    for binary, extra in (("swaks", ["libnet-ssleay-perl"]), ("curl", []), ("openssl", [])):
        ensure_debian_tool(binary, extra_packages=extra)
    busy = [port for port in PORTS if _listening(port)]
    assert not busy, f"the README's ports are taken (another `make run`?): {busy}"
    root = tmp_path_factory.mktemp("tour")
    clone, home = root / "hygie", root / "home"
    home.mkdir()
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(clone)],
                   check=True)  # fmt: skip
    # The files a change under test has not committed yet (a clean CI clone: none).
    for name in ("README.md", "Makefile", ".gitignore"):
        (clone / name).write_bytes((REPO / name).read_bytes())
    # The clone shares this checkout's virtual environment (built by `make test`): `make run`
    # is told not to rebuild it (-o), everything else runs as a newcomer's would.
    (clone / ".venv").symlink_to(REPO / ".venv")
    log = root / "make-run.log"
    env = _environment(home)
    with log.open("wb") as out:
        make = subprocess.Popen(["make", "-o", ".venv/bin/.installed", "run"], cwd=clone,
                                env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not all(_listening(p) for p in PORTS):
            assert make.poll() is None, "make run stopped:\n" + log.read_text("utf-8", "replace")
            assert time.monotonic() < deadline, "make run: no server after 120 s:\n" + (
                log.read_text("utf-8", "replace"))
            time.sleep(0.3)
        yield Tour(clone, home, clone / "hygie-data", log)
    finally:
        os.killpg(make.pid, signal.SIGTERM)
        try:
            make.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(make.pid, signal.SIGKILL)
            make.wait()


def _dossier(data: Path) -> list[dict[str, object]]:
    token = subprocess.run(
        [str(REPO / ".venv/bin/hygie"), "--data", str(data), "token", "issue",
         "279035121518989@patient.hygie.test"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    context = ssl.create_default_context(cafile=str(data / "pki/root-ca.crt"))
    request = urllib.request.Request("https://localhost:8443/dossier/documents",
                                     headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    with urllib.request.urlopen(request, context=context, timeout=30) as response:  # noqa: S310
        body = json.loads(response.read())
    documents = body["documents"] if isinstance(body, dict) else body
    assert isinstance(documents, list)
    return documents


def test_the_readme_tour_runs_as_written(tour: Tour) -> None:
    make_run = tour.log.read_text("utf-8", "replace")
    assert f'export PATH="{tour.clone}/.venv/bin:$PATH"' in make_run
    assert "2525" in make_run  # the relay port is in the banner
    before = _git_status(tour.clone)
    script = tour_script((tour.clone / "README.md").read_text("utf-8"))
    assert "swaks" in script and "hygie-client --account claire send" in script
    assert "mutt" not in script
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tour.clone,
                          env=_environment(tour.home), capture_output=True, text=True,
                          timeout=600, check=False)  # fmt: skip
    transcript = proc.stdout + proc.stderr
    assert proc.returncode == 0, transcript
    # What the reader is promised at each step.
    assert "Subject: Compte rendu de consultation" in proc.stdout  # imaplib read it back
    assert "Received: " in proc.stdout
    assert re.search(r"STATUS \S*INBOX\S* \(MESSAGES [0-9]+\)", proc.stdout), proc.stdout
    assert "DUPONT" in proc.stdout  # directory search
    assert '"resourceType":"Bundle"' in proc.stdout.replace(" ", "")  # FHIR
    # The client's account stores absolute paths (it works from any folder).
    config = (tour.home / ".config/hygie-client/config.toml").read_text("utf-8")
    assert f'ca_file = "{tour.data}/pki/root-ca.crt"' in config
    # The document Claire sent carries her national identifier as its author (issue 25.7).
    authors = [d.get("author") for d in _dossier(tour.data)]
    assert {"idnat": CLAIRE, "name": "Dr Claire MARTIN"} in authors, authors
    # Nothing of the tour landed in the repository.
    assert _git_status(tour.clone) == before


def test_an_empty_password_is_bad_usage(tour: Tour) -> None:
    """Exit 2 (bad usage), not 1 (the server refused), and the line says why."""
    env = _environment(tour.home)
    hygie_client = str(REPO / ".venv/bin/hygie-client")
    subprocess.run([hygie_client, "account", "add", "empty", "--address",
                    "claire.martin@hygie.test", "--host", "localhost", "--ca-file",
                    str(tour.data / "pki/root-ca.crt")], env=env, check=True,
                   capture_output=True)  # fmt: skip
    proc = subprocess.run([hygie_client, "--account", "empty", "send", "--secret-stdin",
                           "--to", "jean.dupont@hygie.test", "--subject", "x"], input="\n",
                          env=env, capture_output=True, text=True, check=False)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "no password on standard input" in proc.stderr


def test_a_missing_ca_file_is_named_with_where_it_was_looked_for(tour: Tour) -> None:
    env = _environment(tour.home)
    proc = subprocess.run([str(REPO / ".venv/bin/hygie-client"), "account", "add", "lost",
                           "--address", "claire.martin@hygie.test", "--host", "localhost",
                           "--ca-file", "hygie-data/pki/root-ca.crt"], cwd=tour.home, env=env,
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert proc.returncode == 2
    assert f"(looked for {tour.home}/hygie-data/pki/root-ca.crt)" in proc.stderr
