"""Durable acceptance: 20 concurrent senders, ``kill -9`` mid-stream, restart. Every message
that got its ``250`` is there exactly once and whole; a message whose ``250`` was lost with the
connection may be there or not, but if it is, it is whole and there once (design.md §3)."""

from __future__ import annotations

import random
import re
import smtplib
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest

from bench.harness import ServerProcess
from tests.e2e.people import ALICE, BOB, CAROL, users
from tests.support.mail import imap_session, make_message, smtp_session, strip_trace
from tests.support.servers import start_server, stop_server

SENDERS = 20
PER_SENDER = 400  # upper bound; the kill comes long before
KILL_AFTER_ACKS = 150  # acknowledged messages before the power cut
RECIPIENTS = [BOB, CAROL]


@pytest.fixture(scope="module")
def durable_server(request: pytest.FixtureRequest, database: str) -> Iterator[ServerProcess]:
    srv = start_server(request, database, users(ALICE, *RECIPIENTS))
    yield srv
    stop_server(srv)


class Senders:
    """20 smtplib sessions, each sending until the connection dies; records what got 250."""

    def __init__(self, server: ServerProcess, run: str) -> None:
        self.server = server
        self.run = run
        self.lock = threading.Lock()
        self.attempted: dict[str, bytes] = {}
        self.acked: dict[str, bytes] = {}
        self.errors: Counter[str] = Counter()
        self.threads = [threading.Thread(target=self.sender, args=(i,)) for i in range(SENDERS)]

    def message(self, i: int, n: int, rng: random.Random) -> tuple[str, str, bytes]:
        marker = f"dur-{self.run}-{i:02d}-{n:04d}"
        recipient = RECIPIENTS[(i + n) % len(RECIPIENTS)].address
        body = f"{marker}\n" + "".join(
            f"{marker} line {k}: " + "é" * rng.randrange(0, 60) + "x" * rng.randrange(0, 300) + "\n"
            for k in range(rng.randrange(1, 80))
        )
        return marker, recipient, make_message(ALICE.address, [recipient], marker, body)

    def sender(self, i: int) -> None:
        rng = random.Random(i)
        try:
            with smtp_session(self.server, ALICE.address, ALICE.password) as client:
                for n in range(PER_SENDER):
                    marker, recipient, message = self.message(i, n, rng)
                    with self.lock:
                        self.attempted[marker] = message
                    client.sendmail(ALICE.address, [recipient], message, ["BODY=8BITMIME"])
                    with self.lock:  # sendmail returned: the server said 250
                        self.acked[marker] = message
        except (smtplib.SMTPException, OSError) as exc:
            with self.lock:
                self.errors[type(exc).__name__] += 1

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def join(self) -> None:
        for t in self.threads:
            t.join(timeout=60)
            assert not t.is_alive(), "a sender hung after the server died"


def stored_by_marker(server: ServerProcess) -> dict[str, list[bytes]]:
    found: dict[str, list[bytes]] = {}
    for account in RECIPIENTS:
        client = imap_session(server, account.address, account.password)
        try:
            typ, data = client.select("INBOX", readonly=True)
            assert typ == "OK"
            if int(data[0]) == 0:
                continue
            typ, data = client.fetch("1:*", "(BODY.PEEK[])")
            assert typ == "OK", data
            for item in data:
                if isinstance(item, tuple):
                    raw = strip_trace(item[1])
                    m = re.search(rb"^Subject: (dur-[\w-]+)\r$", raw, re.MULTILINE)
                    assert m, raw[:500]
                    found.setdefault(m.group(1).decode(), []).append(raw)
        finally:
            client.logout()
    return found


def test_sigkill_mid_stream_loses_nothing_acknowledged(durable_server: ServerProcess) -> None:
    senders = Senders(durable_server, uuid.uuid4().hex[:8])
    senders.start()
    deadline = time.monotonic() + 60
    while len(senders.acked) < KILL_AFTER_ACKS:
        assert time.monotonic() < deadline, f"only {len(senders.acked)} acks in 60 s"
        assert any(t.is_alive() for t in senders.threads), senders.errors
        time.sleep(0.01)
    durable_server.kill()  # SIGKILL, mid-stream
    senders.join()
    with senders.lock:
        acked, attempted = dict(senders.acked), dict(senders.attempted)
    assert len(attempted) > len(acked), "the kill did not land mid-stream"
    assert sum(senders.errors.values()) == SENDERS, senders.errors

    durable_server.restart()
    stored = stored_by_marker(durable_server)

    missing = sorted(set(acked) - set(stored))
    assert missing == [], f"{len(missing)} acknowledged messages lost, e.g. {missing[:5]}"
    duplicated = sorted(m for m, copies in stored.items() if len(copies) > 1)
    assert duplicated == [], f"duplicated after restart: {duplicated[:5]}"
    unknown = sorted(set(stored) - set(attempted))
    assert unknown == [], unknown[:5]
    damaged = sorted(m for m, [copy] in stored.items() if copy != attempted[m])
    assert damaged == [], f"truncated or altered: {damaged[:5]}"
