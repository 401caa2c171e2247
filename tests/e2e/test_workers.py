"""``hygie serve --workers 2`` (issue 20 items 1-2): two worker processes share every listener;
mail accepted by one worker reaches IDLE sessions held by the other, on SQLite (Unix
datagrams between the workers) and on PostgreSQL (LISTEN/NOTIFY); a worker killed with
SIGKILL is started again and nothing it had acknowledged is lost; SIGTERM stops everything
with exit code 0.

    C(idle, any worker): i1 IDLE          S: + idling
    (16 SMTP sessions, spread over both workers by the kernel, each deliver one message)
    S: * n+16 EXISTS                        on every IDLE session, whichever worker holds it
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aioimaplib
import pytest

from bench.harness import ServerProcess
from tests.e2e.people import ALICE, ERIN, users
from tests.support.mail import inbox_count, make_message, send
from tests.support.servers import start_server, stop_server

WORKERS = 2
SESSIONS = 16  # SMTP sessions: the chance that all land on one worker is 2 in 65,536
IDLERS = 4


@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest, database: str) -> Iterator[ServerProcess]:
    server = start_server(request, database, users(ALICE, ERIN),
                          env={"HYGIE_SERVER_WORKERS": str(WORKERS)})  # fmt: skip
    yield server
    stop_server(server)


def workers_of(server: ServerProcess) -> list[int]:
    """The supervisor's child processes (the workers)."""
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    return sorted(int(pid) for pid in children)


def processes_that_accepted(server: ServerProcess, since: int) -> set[str]:
    """The ``process`` field of every ``message_accepted`` line of the log after ``since``."""
    names: set[str] = set()
    with server.log_path.open("rb") as log:
        log.seek(since)
        for line in log:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("event") == "message_accepted":
                names.add(str(event.get("process")))
    return names


async def _idle_until(server: ServerProcess, target: int, started: asyncio.Event,
                      ready: list[int]) -> int:  # fmt: skip
    client = aioimaplib.IMAP4_SSL("127.0.0.1", server.imap_tls_port,
                                  ssl_context=server.ssl_context(), timeout=60)  # fmt: skip
    await client.wait_hello_from_server()
    assert (await client.login(ERIN.address, ERIN.password)).result == "OK"
    selected = await client.select("INBOX")
    exists = next(int(line.split()[0]) for line in selected.lines if line.endswith(b"EXISTS"))
    idle = await client.idle_start(timeout=120)
    ready.append(exists)
    if len(ready) == IDLERS:
        started.set()
    seen = exists
    deadline = time.monotonic() + 90
    while seen < target:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"IDLE saw {seen} of {target} messages"
        for line in await client.wait_server_push(timeout=remaining):
            text = bytes(line) if isinstance(line, (bytes, bytearray)) else str(line).encode()
            if text.endswith(b"EXISTS"):
                seen = max(seen, int(text.split()[0]))
    client.idle_done()
    assert (await asyncio.wait_for(idle, 30)).result == "OK"
    await client.logout()
    return seen


async def test_mail_on_one_worker_reaches_idle_on_every_worker(cluster: ServerProcess) -> None:
    assert len(workers_of(cluster)) == WORKERS
    before = inbox_count(cluster, ERIN.address, ERIN.password)
    log_start = cluster.log_path.stat().st_size
    started, ready = asyncio.Event(), []
    idlers = [asyncio.create_task(_idle_until(cluster, before + SESSIONS, started, ready))
              for _ in range(IDLERS)]  # fmt: skip
    await asyncio.wait_for(started.wait(), 120)
    for n in range(SESSIONS):
        message = make_message(ALICE.address, [ERIN.address], f"w-{n}-{uuid.uuid4().hex}", "x\n")
        await asyncio.to_thread(send, cluster, ALICE.address, ALICE.password, [ERIN.address],
                                message)  # fmt: skip
    assert await asyncio.gather(*idlers) == [before + SESSIONS] * IDLERS
    # Both workers took mail: each IDLE session was told of mail another process accepted.
    assert len(processes_that_accepted(cluster, log_start)) == WORKERS


def test_a_killed_worker_is_replaced_and_loses_nothing(cluster: ServerProcess) -> None:
    before = inbox_count(cluster, ERIN.address, ERIN.password)
    for n in range(4):
        message = make_message(ALICE.address, [ERIN.address], f"k-{n}-{uuid.uuid4().hex}", "x\n")
        send(cluster, ALICE.address, ALICE.password, [ERIN.address], message)
    victim = workers_of(cluster)[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while True:
        current = workers_of(cluster)
        if len(current) == WORKERS and victim not in current:
            break
        assert time.monotonic() < deadline, f"workers after the kill: {current}"
        time.sleep(0.2)
    # Every connection is served again (the kernel may hand any of them to the new worker).
    for n in range(6):
        message = make_message(ALICE.address, [ERIN.address], f"a-{n}-{uuid.uuid4().hex}", "x\n")
        send(cluster, ALICE.address, ALICE.password, [ERIN.address], message)
    assert inbox_count(cluster, ERIN.address, ERIN.password) == before + 10
