"""Issue 24 item 2, between two operators: A moves its CA publication point (the port in its
configuration) after `hygie init`. Until A follows through, B cannot fetch the CRL that A's
server certificate names and refuses A's mail for now (454 4.7.5, it waits in A's queue);
`hygie pki` and `hygie serve` say why. After `hygie pki address --update` and a restart, the
mail goes."""

from __future__ import annotations

import time
from pathlib import Path

from bench.federation import operator, trust_each_other
from bench.harness import free_ports
from tests.e2e.test_relay import PASSWORD, send, wait_for
from tests.support.servers import stop_server

ALICE = "alice@hygie.test"
BOB = "bob@autre.test"


def test_a_moved_publication_point_is_followed_through(tmp_path: Path) -> None:
    a = operator("hygie.test", {ALICE: PASSWORD}, tmp_path)
    b = operator("autre.test", {BOB: PASSWORD}, tmp_path)
    trust_each_other(a, b, env={"HYGIE_RELAY_RETRY_BASE_SECONDS": "1",
                                "HYGIE_RELAY_RETRY_MAX_SECONDS": "1",
                                "HYGIE_RELAY_POLL_SECONDS": "0.2"})  # fmt: skip
    old_port = a.pki_http_port
    (a.pki_http_port,) = free_ports(1)  # the operator changes [http] pki_port after init
    try:
        # The CLI warns before anything is started.
        listed = a.hygie("pki", "list")
        assert f"localhost:{old_port}/pki/ into its certificates" in listed.stderr.decode()
        a.start()
        b.start()
        # hygie serve says so at start (one structured line).
        assert "pki_address_mismatch" in a.log_tail()
        send(a, ALICE, BOB, "après déménagement")
        # B cannot fetch A's CRL at the old address: A's queue holds the mail, with B's 454.
        deadline = time.monotonic() + 20
        while "4.7.5" not in (listing := a.hygie("queue", "list").stdout.decode()):
            assert time.monotonic() < deadline, listing
            time.sleep(0.3)
        assert BOB in listing

        updated = a.hygie("pki", "address", "--update").stdout.decode()
        assert f"name http://localhost:{a.pki_http_port}/pki/" in updated
        a.stop()
        a.start()
        a.hygie("queue", "retry", "--all")
        raw = wait_for(b, BOB, "après déménagement", timeout=30)
        assert b"x-tls=pass" in raw
        assert "the queue is empty" in a.hygie("queue", "list").stdout.decode()
        assert a.hygie("pki", "list").stderr == b""
    finally:
        for srv in (a, b):
            stop_server(srv)
