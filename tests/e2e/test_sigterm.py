"""``hygie serve`` on SIGTERM (and SIGINT): stops accepting, finishes the transaction in
flight, exits 0; the message whose DATA straddled the signal is delivered."""

from __future__ import annotations

import signal
import socket
import time
import uuid

import pytest

from tests.e2e.people import ALICE, BOB, users
from tests.support.dialogue import SmtpDialogue
from tests.support.mail import find_by_subject, inbox_messages, strip_trace
from tests.support.servers import start_server, stop_server


def refuses_connections(port: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                pass
        except OSError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_idle_server_exits_0(
    request: pytest.FixtureRequest, database: str, signum: signal.Signals
) -> None:
    server = start_server(request, database, users(ALICE))
    try:
        server.signal(signum)
        assert server.proc is not None
        assert server.proc.wait(30) == 0, server.log_tail()
    finally:
        server.close()


def test_sigterm_finishes_the_transaction_in_flight(
    request: pytest.FixtureRequest, database: str
) -> None:
    server = start_server(request, database, users(ALICE, BOB))
    try:
        subject = f"in-flight-{uuid.uuid4().hex[:12]}"
        tc = SmtpDialogue.connect(server.smtp_port)
        tc.greet_and_tls(server.ssl_context())
        assert tc.auth_plain(ALICE.address, ALICE.password).code == 235
        tc.C(f"MAIL FROM:<{ALICE.address}>")
        tc.S("250")
        tc.C(f"RCPT TO:<{BOB.address}>")
        tc.S("250")
        tc.C("DATA")
        tc.S("354")
        head = f"From: <{ALICE.address}>\r\nTo: <{BOB.address}>\r\nSubject: {subject}\r\n\r\n"
        tc.send_raw(head.encode() + b"first half\r\n")

        server.signal(signal.SIGTERM)  # while the DATA is half sent
        assert refuses_connections(server.smtp_tls_port), "still accepting after SIGTERM"

        tc.send_raw(b"second half\r\n.\r\n")
        # The transaction in flight is finished (issue 2: "finishes what is in flight"): the
        # message is stored whole and acknowledged, then the server closes with 421.
        end = tc.reply()
        assert end.code == 250, end
        tc.close()
        assert server.proc is not None
        assert server.proc.wait(30) == 0, server.log_tail()

        server.restart()
        found = find_by_subject(inbox_messages(server, BOB.address, BOB.password), subject)
        [stored] = found
        assert strip_trace(stored).endswith(b"\r\n\r\nfirst half\r\nsecond half\r\n")
    finally:
        stop_server(server)
