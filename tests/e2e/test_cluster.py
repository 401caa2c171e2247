"""Two ``hygie serve`` nodes on one PostgreSQL behind HAProxy (issue 20 items 4 and 5).

HAProxy balances the submission and IMAP ports over the nodes in TCP mode, with the PROXY
protocol v2 and health checks on each node's ``/health`` (tests/support/haproxy.py, the
configuration docs/operations.md gives). The nodes share the data directory's files (a copy:
keys, certificates, configuration) and the database (blobs in it).

- the node sees the client's address, not HAProxy's, in what it records (``Received:``);
- a PROXY header from an address not listed in ``[server] proxy_from`` is refused;
- a client IDLE on node B is told of a message submitted on node A;
- SIGKILL of node A under a steady load of submissions through HAProxy: HAProxy takes A out,
  the clients reconnect to B, every message acknowledged is in the mailbox exactly once, and the
  IDLE session on B is told of mail submitted after the kill;
- SIGTERM of a node: ``/health`` says draining, HAProxy takes it out before it stops accepting.
"""

from __future__ import annotations

import shutil
import smtplib
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.harness import ServerProcess, free_ports
from tests.e2e.people import ALICE, BOB, ERIN, users
from tests.support.haproxy import HAProxy
from tests.support.mail import TIMEOUT, inbox_messages, make_message
from tests.support.pgcluster import PgCluster

pytestmark = pytest.mark.postgres

#: The address the test clients connect from (HAProxy and the nodes see 127.0.0.1 otherwise).
CLIENT_IP = "127.0.0.2"
#: How long a SIGKILLed node may keep clients from being served through HAProxy.
FAILOVER_SECONDS = 10.0


class Cluster:
    def __init__(self, a: ServerProcess, b: ServerProcess, proxy: HAProxy, pg: PgCluster) -> None:
        self.a, self.b, self.proxy, self.pg = a, b, proxy, pg

    def node_port(self, service: str, name: str) -> int:
        return self.proxy.node_ports[(service, name)]


def _node(base: Path, url: str, health: int, source: Path | None) -> ServerProcess:
    env = {
        "HYGIE_STORAGE_BLOB_STORE": "database",
        "HYGIE_SERVER_WORKERS": "1",  # one process per node: SIGKILL stops the whole node
        "HYGIE_SERVER_PROXY_FROM": "127.0.0.1",
        "HYGIE_SERVER_HEALTH_PORT": str(health),
        "HYGIE_SERVER_DRAIN_SECONDS": "1.5",
    }
    node = ServerProcess(users=users(ALICE, BOB, ERIN), database_url=url, env=env,
                         base_dir=base)  # fmt: skip
    if source is None:
        node.init()
    else:  # the second node: the same files (keys, CA, configuration), the same database
        shutil.copytree(source, node.data_dir)
        node._initialised = True
    return node


@pytest.fixture(scope="module")
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    pg: PgCluster = request.getfixturevalue("pg_cluster")
    url = pg.create_database(f"cluster_{uuid.uuid4().hex[:12]}")
    health_a, health_b = free_ports(2)
    base = tmp_path_factory.mktemp("cluster")
    a = _node(base / "a", url, health_a, None)
    b = _node(base / "b", url, health_b, a.data_dir)
    proxy = HAProxy({"a": (a, health_a), "b": (b, health_b)})
    try:
        a.start()
        b.start()
        proxy.start()
        proxy.wait_state("a", up=True)
        proxy.wait_state("b", up=True)
        yield Cluster(a, b, proxy, pg)
    finally:
        proxy.stop()
        for node in (a, b):
            node.close()


def _context(cluster: Cluster) -> ssl.SSLContext:
    return cluster.a.ssl_context()


def submit(cluster: Cluster, port: int, subject: str, to: str = BOB.address) -> None:
    """One message over implicit TLS on ``port`` (HAProxy's), from :data:`CLIENT_IP`."""
    message = make_message(ALICE.address, [to], subject, f"{subject}\n")
    with smtplib.SMTP_SSL("127.0.0.1", port, context=_context(cluster), timeout=TIMEOUT,
                          source_address=(CLIENT_IP, 0)) as client:  # fmt: skip
        client.login(ALICE.address, ALICE.password)
        refused = client.sendmail(ALICE.address, [to], message)
        assert refused == {}, refused


class Idle:
    """An IMAP session in IDLE on one node (through that node's own HAProxy frontend)."""

    def __init__(self, cluster: Cluster, node: str) -> None:
        raw = socket.create_connection(("127.0.0.1", cluster.node_port("imap_tls", node)),
                                       timeout=TIMEOUT, source_address=(CLIENT_IP, 0))  # fmt: skip
        self.sock = _context(cluster).wrap_socket(raw, server_hostname="127.0.0.1")
        self.file = self.sock.makefile("rb")
        self.read_line()  # greeting
        self.command(f'a LOGIN "{ERIN.address}" "{ERIN.password}"')
        self.command("b SELECT INBOX")
        self.sock.sendall(b"c IDLE\r\n")
        assert self.read_line().startswith(b"+"), "no continuation for IDLE"

    def read_line(self) -> bytes:
        line = self.file.readline()
        assert line, "connection closed"
        return line

    def command(self, text: str) -> list[bytes]:
        tag = text.split(" ", 1)[0].encode()
        self.sock.sendall(text.encode() + b"\r\n")
        lines = []
        while True:
            line = self.read_line()
            lines.append(line)
            if line.startswith(tag + b" "):
                assert line.startswith(tag + b" OK"), lines
                return lines

    def wait_exists(self, timeout: float) -> float:
        """Seconds until an ``* n EXISTS`` arrives (AssertionError after ``timeout``)."""
        start = time.monotonic()
        self.sock.settimeout(timeout)
        try:
            while True:
                line = self.read_line()
                if line.startswith(b"* ") and line.rstrip().endswith(b"EXISTS"):
                    return time.monotonic() - start
        except TimeoutError:
            raise AssertionError(f"no EXISTS within {timeout} s") from None
        finally:
            self.sock.settimeout(TIMEOUT)

    def close(self) -> None:
        try:
            self.sock.sendall(b"DONE\r\n")
            self.sock.close()
        except OSError:
            pass


def test_nodes_see_the_client_address_not_haproxys(cluster: Cluster) -> None:
    subject = f"proxied {uuid.uuid4().hex[:8]}"
    submit(cluster, cluster.proxy.smtp_tls_port, subject)
    messages = [m for m in inbox_messages(cluster.proxy, BOB.address, BOB.password)
                if subject.encode() in m]  # fmt: skip
    assert len(messages) == 1
    assert f"([{CLIENT_IP}])".encode() in messages[0], messages[0][:600]


def test_a_proxy_header_from_an_unlisted_address_is_refused(cluster: Cluster) -> None:
    # 127.0.0.2 is not in [server] proxy_from: its PROXY header claims another client.
    header = b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 587\r\n"
    with socket.create_connection(("127.0.0.1", cluster.a.smtp_port), timeout=10,
                                  source_address=(CLIENT_IP, 0)) as sock:  # fmt: skip
        greeting = sock.recv(200)
        assert greeting.startswith(b"220"), greeting
        sock.sendall(header)
        assert sock.recv(200) == b"", "the connection should have been closed"
    log = cluster.a.log_bytes()
    assert b"proxy_refused" in log and CLIENT_IP.encode() in log


def test_idle_on_b_sees_mail_submitted_on_a(cluster: Cluster) -> None:
    idle = Idle(cluster, "b")
    try:
        submit(cluster, cluster.node_port("submission_tls", "a"), "a vers b", to=ERIN.address)
        assert idle.wait_exists(1.0) <= 1.0
    finally:
        idle.close()


class Load(threading.Thread):
    """A client submitting through HAProxy without pause; a failed attempt is retried on a
    new connection under a new subject (it may or may not have been stored: not counted)."""

    def __init__(self, cluster: Cluster, n: int, prefix: str = "load") -> None:
        super().__init__(daemon=True)
        self.cluster, self.n, self.prefix = cluster, n, prefix
        self.acknowledged: list[tuple[float, str]] = []
        self.failures: list[tuple[float, str]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        attempt = 0
        while not self.stopping.is_set():
            attempt += 1
            subject = f"{self.prefix} {self.n}-{attempt}"
            try:
                submit(self.cluster, self.cluster.proxy.smtp_tls_port, subject)
            except (OSError, smtplib.SMTPException) as exc:
                self.failures.append((time.monotonic(), type(exc).__name__))
                time.sleep(0.1)
                continue
            self.acknowledged.append((time.monotonic(), subject))


def _subjects(messages: list[bytes], prefix: str = "load") -> list[str]:
    found = []
    for raw in messages:
        for line in raw.split(b"\r\n"):
            if line.startswith(f"Subject: {prefix} ".encode()):
                found.append(line[9:].decode())
    return found


def test_sigkill_of_a_node_under_load(cluster: Cluster) -> None:
    idle = Idle(cluster, "b")
    loads = [Load(cluster, n) for n in range(4)]
    for load in loads:
        load.start()
    time.sleep(3)
    before = sum(len(load.acknowledged) for load in loads)
    assert before > 0, [load.failures for load in loads]
    killed = time.monotonic()
    cluster.a.kill()  # SIGKILL: no drain, no goodbye
    taken_out = cluster.proxy.wait_state("a", up=False)
    time.sleep(4)
    for load in loads:
        load.stopping.set()
    for load in loads:
        load.join(60)
    after = [t for load in loads for t, _ in load.acknowledged if t > killed]
    assert after, "no submission acknowledged after the kill"
    # Service came back through B: the first acknowledgement after the kill, soon.
    assert min(after) - killed < FAILOVER_SECONDS, (min(after) - killed, taken_out)

    # Every acknowledged message is in the mailbox, once.
    acknowledged = [s for load in loads for _, s in load.acknowledged]
    stored = _subjects(inbox_messages(cluster.proxy, BOB.address, BOB.password))
    missing = [s for s in acknowledged if s not in stored]
    doubled = [s for s in set(stored) if stored.count(s) > 1]
    assert not missing, missing
    assert not doubled, doubled

    # The IDLE session on B was drained of the load's EXISTS (not ERIN's); mail after the kill.
    submit(cluster, cluster.proxy.smtp_tls_port, "après la panne", to=ERIN.address)
    assert idle.wait_exists(1.0) <= 1.0
    idle.close()
    cluster.a.start()  # back for the next test
    cluster.proxy.wait_state("a", up=True)


def test_postgresql_restarted_under_load(cluster: Cluster) -> None:
    loads = [Load(cluster, n, prefix="pg") for n in range(4)]
    for load in loads:
        load.start()
    time.sleep(2)
    assert sum(len(load.acknowledged) for load in loads) > 0
    cluster.pg.stop(remove=False)  # fast shutdown: every session of both nodes is cut
    time.sleep(1)
    cluster.pg.start()
    back = time.monotonic()
    time.sleep(8)
    for load in loads:
        load.stopping.set()
    for load in loads:
        load.join(60)
    after = [t for load in loads for t, _ in load.acknowledged if t > back]
    assert after, ("no submission acknowledged after PostgreSQL came back",
                   [load.failures[-3:] for load in loads])  # fmt: skip
    assert min(after) - back < FAILOVER_SECONDS, min(after) - back
    acknowledged = [s for load in loads for _, s in load.acknowledged]
    stored = _subjects(inbox_messages(cluster.proxy, BOB.address, BOB.password), "pg")
    missing = [s for s in acknowledged if s not in stored]
    doubled = [s for s in set(stored) if stored.count(s) > 1]
    assert not missing, missing
    assert not doubled, doubled
    cluster.proxy.wait_state("a", up=True)
    cluster.proxy.wait_state("b", up=True)


def test_sigterm_takes_the_node_out_before_it_stops(cluster: Cluster) -> None:
    node = cluster.b
    node.signal(15)
    # /health answers 503 at once; HAProxy takes b out while b still accepts (drain_seconds).
    cluster.proxy.wait_state("b", up=False, timeout=5)
    assert node.proc is not None and node.proc.poll() is None, "b stopped before being taken out"
    # Meanwhile every new connection through HAProxy goes to a, and is served.
    submit(cluster, cluster.proxy.smtp_tls_port, f"pendant l'arrêt {uuid.uuid4().hex[:6]}")
    stop_server_keep(node)
    node.start()
    cluster.proxy.wait_state("b", up=True)


def stop_server_keep(node: ServerProcess) -> None:
    code = node.stop()
    assert code == 0, node.log_tail()
