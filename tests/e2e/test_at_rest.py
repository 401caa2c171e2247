"""Encryption at rest: a marker in the subject, body and attachments of several messages never
appears in the data directory, in the PostgreSQL cluster's files, or in the server log —
neither after delivery, nor after the messages were read, nor after shutdown."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.harness import ServerProcess
from tests.e2e.people import ALICE, BOB, users
from tests.support.mail import (
    Attachment,
    imap_session,
    inbox_messages,
    make_message,
    send,
    strip_trace,
)
from tests.support.pgcluster import PgCluster
from tests.support.scan import find_in_tree
from tests.support.servers import start_server, stop_server

MARKER = f"HygieSecretMarker{uuid.uuid4().hex[:16]}"
NEEDLES = [MARKER.encode(), MARKER.lower().encode()]


@pytest.fixture(scope="module")
def rest_server(request: pytest.FixtureRequest, database: str) -> Iterator[ServerProcess]:
    srv = start_server(request, database, users(ALICE, BOB))
    yield srv
    stop_server(srv)


def stored_places(request: pytest.FixtureRequest, server: ServerProcess) -> list[Path]:
    places = [server.data_dir]
    if server.database_url and server.database_url.startswith("postgresql"):
        cluster: PgCluster = request.getfixturevalue("pg_cluster")
        cluster.checkpoint()  # dirty pages to the data files; the WAL is searched as well
        places.append(cluster.data_dir)
    return places


def assert_nowhere(request: pytest.FixtureRequest, server: ServerProcess, when: str) -> None:
    hits = find_in_tree(stored_places(request, server), NEEDLES)
    assert hits == [], f"marker in clear {when}:\n" + "\n".join(hits[:20])
    assert not any(n in server.log_bytes() for n in NEEDLES), f"marker in the server log {when}"


def messages() -> list[bytes]:
    rng = random.Random(7)
    out = []
    for i in range(4):
        body = f"Patient file {i}: {MARKER} diagnosis confidential.\n" + "filler line\n" * (50 * i)
        attachments = [
            Attachment(
                f"note-{i}.txt", f"Attached note: {MARKER}\n".encode(), "text/plain", "7bit"
            ),
            Attachment(f"scan-{i}.bin", rng.randbytes(3000 * i) + MARKER.encode()),
        ]
        out.append(
            make_message(
                ALICE.address, [BOB.address], f"Results {MARKER} #{i}", body,
                attachments=attachments,
            )
        )  # fmt: skip
    out.append(make_message(ALICE.address, [BOB.address], f"8bit {MARKER}", f"Été {MARKER} ✓\n"))
    return out


def test_marker_never_stored_in_clear(
    request: pytest.FixtureRequest, rest_server: ServerProcess
) -> None:
    sent = messages()
    for message in sent:
        send(rest_server, ALICE.address, ALICE.password, [BOB.address], message)
    assert_nowhere(request, rest_server, "after delivery")

    # Read everything back, the ways a client would (also proves the marker was really stored).
    stored = inbox_messages(rest_server, BOB.address, BOB.password)
    assert sorted(strip_trace(m) for m in stored) == sorted(sent)
    client = imap_session(rest_server, BOB.address, BOB.password, starttls=True)
    try:
        client.select("INBOX")
        for items in ("(ENVELOPE)", "(BODY.PEEK[HEADER])", "(BODY[TEXT])", "(BODYSTRUCTURE)"):
            client.fetch("1:*", items)  # any of these may be unsupported: we only want the side
    finally:  # effects (caches, seen flags) on what is stored
        client.logout()
    assert_nowhere(request, rest_server, "after reading")

    assert rest_server.stop() == 0
    assert_nowhere(request, rest_server, "after shutdown")
