"""HAProxy (Debian's package, installed with apt like PostgreSQL) in TCP mode in front of
``hygie serve`` nodes, for the cluster tests and ``make bench`` (issue 20 items 4, 5, 7).

The configuration is the one docs/operations.md gives, with test ports: each service port is
balanced over the nodes, with the PROXY protocol v2 towards them (``send-proxy-v2``) and
health checks on each node's ``/health`` port (``option httpchk``), so that a node that stops
answering, or says it is draining, is taken out. One extra frontend per node and service
(``imap_tls_a``…) reaches that node only: the tests use them to open an IDLE session on a
chosen node, as an operator's monitoring would.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from bench.harness import ServerProcess, free_ports
from tests.support.tools import ensure_debian_tool

#: The services HAProxy balances (ServerProcess attribute of each node's port).
SERVICES = {
    "submission": "smtp_port",
    "submission_tls": "smtp_tls_port",
    "imap": "imap_port",
    "imap_tls": "imap_tls_port",
}
#: Health checks: interval, and how many in a row take a node out or put it back.
CHECK_INTER_MS = 300
CHECK_FALL = 2
CHECK_RISE = 2


def render(
    nodes: Mapping[str, tuple[ServerProcess, int]],
    ports: Mapping[str, int],
    node_ports: Mapping[tuple[str, str], int],
    *,
    stats_socket: Path,
    bind: str = "127.0.0.1",
) -> str:
    """The haproxy.cfg: ``nodes`` maps a name to (node, its health port); ``ports`` a service
    to the balanced port; ``node_ports`` (service, node name) to that node's own frontend."""
    lines = [
        "global",
        "    maxconn 4096",
        f"    stats socket {stats_socket} mode 600 level admin",
        "",
        "defaults",
        "    mode tcp",
        "    option tcplog",
        "    timeout connect 2s",
        "    timeout client 5m",
        "    timeout server 5m",
        "    timeout check 1s",
        # A connection refused by a dead node is tried again on another one.
        "    retries 2",
        "    option redispatch",
        "",
    ]
    check = f"check port {{health}} inter {CHECK_INTER_MS} fall {CHECK_FALL} rise {CHECK_RISE}"
    for service, attribute in SERVICES.items():
        lines += [
            f"listen {service}",
            f"    bind {bind}:{ports[service]}",
            "    balance leastconn",
            "    option httpchk GET /health",
            "    http-check expect status 200",
        ]
        for name, (node, health) in nodes.items():
            port = getattr(node, attribute)
            lines.append(
                f"    server {name} 127.0.0.1:{port} send-proxy-v2 {check.format(health=health)}"
            )
        lines.append("")
        for name, (node, _) in nodes.items():
            own = node_ports.get((service, name))
            if own is None:
                continue
            port = getattr(node, attribute)
            lines += [
                f"listen {service}_{name}",
                f"    bind {bind}:{own}",
                f"    server {name} 127.0.0.1:{port} send-proxy-v2",
                "",
            ]
    return "\n".join(lines)


class HAProxy:
    """One ``haproxy`` process in front of ``nodes`` (name → (node, health port))."""

    def __init__(
        self,
        nodes: Mapping[str, tuple[ServerProcess, int]],
        *,
        per_node: Sequence[str] = ("imap_tls", "submission_tls"),
    ) -> None:
        self.binary = ensure_debian_tool("haproxy")
        self.nodes = dict(nodes)
        self.ports = dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True))
        wanted = [(s, n) for s in per_node for n in self.nodes]
        ports = free_ports(len(wanted)) if wanted else []
        self.node_ports = dict(zip(wanted, ports, strict=True))
        self.dir = Path(tempfile.mkdtemp(prefix="hygie-haproxy-"))
        self.config = self.dir / "haproxy.cfg"
        self.log_path = self.dir / "haproxy.log"
        self.stats_socket = self.dir / "admin.sock"
        self.proc: subprocess.Popen[bytes] | None = None
        # What tests.support.mail's helpers read of a server: they talk to HAProxy.
        self.smtp_port = self.ports["submission"]
        self.smtp_tls_port = self.ports["submission_tls"]
        self.imap_port = self.ports["imap"]
        self.imap_tls_port = self.ports["imap_tls"]

    def ssl_context(self) -> ssl.SSLContext:
        first = next(iter(self.nodes.values()))[0]
        return first.ssl_context()

    def start(self) -> HAProxy:
        self.config.write_text(
            render(self.nodes, self.ports, self.node_ports, stats_socket=self.stats_socket)
        )
        check = subprocess.run(
            [self.binary, "-c", "-f", str(self.config)], capture_output=True, text=True
        )
        assert check.returncode == 0, check.stdout + check.stderr
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "-db", "-f", str(self.config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            )  # fmt: skip
        deadline = time.monotonic() + 20
        pending = {*self.ports.values(), *self.node_ports.values()}
        while pending:
            assert self.proc.poll() is None, self.log_path.read_text()
            assert time.monotonic() < deadline, f"haproxy not listening on {sorted(pending)}"
            for port in list(pending):
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        pending.discard(port)
                except OSError:
                    pass
            time.sleep(0.05)
        return self

    def states(self) -> dict[tuple[str, str], str]:
        """(service, node) → HAProxy's status of that node (``UP``, ``DOWN``, ``UP 1/2``…)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.stats_socket))
            sock.sendall(b"show stat\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        rows = data.decode().splitlines()
        header = rows[0].lstrip("# ").split(",")
        status = header.index("status")
        found = {}
        for row in rows[1:]:
            fields = row.split(",")
            if len(fields) > status and fields[0] in SERVICES and fields[1] in self.nodes:
                found[(fields[0], fields[1])] = fields[status]
        return found

    def wait_state(self, name: str, up: bool, timeout: float = 20) -> float:
        """Until every balanced service has node ``name`` UP (or DOWN); the seconds it took."""
        start = time.monotonic()
        while True:
            states = {k: v for k, v in self.states().items() if k[1] == name}
            if states and all(v.startswith("UP" if up else "DOWN") for v in states.values()):
                return time.monotonic() - start
            assert time.monotonic() - start < timeout, (name, up, states, self.log()[-3000:])
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> HAProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
