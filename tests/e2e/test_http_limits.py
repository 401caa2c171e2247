"""The HTTPS listener's limits on a running `hygie serve` (issue 26; server/http/limits.py):
each oversized request gets its status and reason, and a client holding many connections open
a byte at a time (slowloris) gets a 503 beyond its share, while another client is served and
the server's memory stays bounded. The connection slots are each process's own: these tests run
one process (``[server] workers = 1``); another starts two workers and checks that the HTTPS
listener takes the sockets the supervisor hands down, like the mail listeners."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.harness import ServerProcess
from server.http.limits import HttpLimits
from tests.support.servers import start_server, stop_server

pytestmark = pytest.mark.e2e
PER_PEER = 20
LIMITS = HttpLimits()


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    srv = start_server(request, "sqlite", {}, env={
        "HYGIE_HTTP_MAX_CONNECTIONS_PER_PEER": str(PER_PEER), "HYGIE_SERVER_WORKERS": "1"})
    yield srv
    stop_server(srv)


def connect(server: ServerProcess, source: str = "127.0.0.1") -> ssl.SSLSocket:
    raw = socket.create_connection(
        ("127.0.0.1", server.https_port), timeout=10, source_address=(source, 0)
    )
    return server.ssl_context().wrap_socket(raw, server_hostname="localhost")


def exchange(server: ServerProcess, request: bytes) -> tuple[int, bytes]:
    """C: the request; S: the status line and the body (the connection is then closed)."""
    with connect(server) as tls:
        tls.sendall(request)
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
            if b"\r\n\r\n" in answer and answer.split(b"\r\n\r\n", 1)[1]:
                break
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def test_too_many_header_fields_is_a_431(server: ServerProcess) -> None:
    fields = b"".join(b"X-F%d: 1\r\n" % i for i in range(LIMITS.max_headers + 1))
    status, body = exchange(
        server, b"GET /fhir/metadata HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n"
    )
    assert (status, body) == (431, b"at most 100 header fields\n")


def test_a_head_over_16_kib_is_a_431(server: ServerProcess) -> None:
    big = b"X-Big: " + b"a" * LIMITS.max_head + b"\r\n"
    status, body = exchange(server, b"GET /fhir/metadata HTTP/1.1\r\nHost: x\r\n" + big + b"\r\n")
    assert (status, body) == (431, b"request head too large\n")


def test_a_long_target_is_a_414_and_many_query_fields_a_400(server: ServerProcess) -> None:
    target = b"/fhir/Practitioner?family=" + b"a" * LIMITS.max_target
    status, body = exchange(server, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (status, body) == (414, b"the request target is at most 8192 bytes\n")
    target = b"/fhir/Practitioner?" + b"&".join([b"_pretty=1"] * (LIMITS.max_query_fields + 1))
    status, body = exchange(server, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (status, body) == (400, b"at most 100 query parameters\n")


def test_a_declared_large_body_is_refused_before_it_is_sent(server: ServerProcess) -> None:
    request = (
        b"POST /fhir/Practitioner/_search HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000000\r\n\r\n"
    )
    status, body = exchange(server, request)  # not a byte of the body was sent
    assert (status, body) == (413, b"the request body is at most 65536 bytes\n")


def rss(server: ServerProcess) -> int:
    for line in Path(f"/proc/{server.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_slowloris_gets_its_share_and_others_are_served(server: ServerProcess) -> None:
    """127.0.0.2 opens 50 connections and drips a header line into each every half second;
    beyond its 20, each gets a 503 at once. 127.0.0.1 is served meanwhile, quickly."""
    normal = b"GET /fhir/metadata HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    assert exchange(server, normal)[0] == 200
    before = rss(server)
    held: list[ssl.SSLSocket] = []
    refused = 0
    try:
        for _ in range(50):
            tls = connect(server, "127.0.0.2")
            tls.sendall(b"GET /fhir/metadata HTTP/1.1\r\n")
            tls.settimeout(0.3)
            try:
                answer = tls.recv(4096)
            except TimeoutError:
                held.append(tls)  # the server waits for the rest of the head
                continue
            assert answer.startswith(b"HTTP/1.1 503 "), answer
            assert answer.endswith(b"too many connections\n")
            refused += 1
            tls.close()
        assert (len(held), refused) == (PER_PEER, 50 - PER_PEER)
        latencies = []
        for round_ in range(6):
            for tls in held:
                tls.sendall(b"X-Drip-%d: 1\r\n" % round_)
            started = time.monotonic()
            status, _ = exchange(server, normal)
            latencies.append(time.monotonic() - started)
            assert status == 200
            time.sleep(0.5)
        assert max(latencies) < 1.0, latencies
        assert rss(server) - before < 32 * 2**20
    finally:
        for tls in held:
            tls.close()


def test_two_workers_serve_https_on_the_handed_down_sockets(
    request: pytest.FixtureRequest,
) -> None:
    """``--workers 2``: the supervisor binds the HTTPS port once per worker (SO_REUSEPORT) and
    each worker serves on its own socket; new connections, spread by the kernel, all get the
    patient pages."""
    srv = start_server(request, "sqlite", {}, env={"HYGIE_SERVER_WORKERS": "2"})
    try:
        # The supervisor's sockets listen from the start; the workers serve once ready.
        deadline = time.monotonic() + 60
        while srv.log_bytes().count(b'"event": "worker_ready"') < 2:
            assert time.monotonic() < deadline, srv.log_tail()
            time.sleep(0.1)
        page = b"GET /espace/connexion HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        answers = [exchange(srv, page) for _ in range(12)]
        assert {status for status, _ in answers} == {200}
        assert all(b"Mon espace sant" in body for _, body in answers)
    finally:
        stop_server(srv)
