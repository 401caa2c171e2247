"""``hygie serve`` as a separate process on free loopback ports, for end-to-end tests and
benchmarks.

    with ServerProcess(users={"alice@hygie.test": "pw"}) as server:
        smtplib.SMTP("127.0.0.1", server.smtp_port).starttls(context=server.ssl_context())
        ...
    assert server.returncode == 0

The data directory is a fresh temporary directory (``hygie init``); the server's stderr and
stdout go to ``serve.log`` beside it (never inside it, so an at-rest search of the data
directory does not see the log; search the log separately). Configuration is passed the
documented way: ``HYGIE_<SECTION>_<KEY>`` environment overrides. Set
``HYGIE_KEEP_SERVER_DIR=1`` to keep the temporary directory (data and ``serve.log``) after
the run, for looking at a benchmark's server log.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

DEFAULT_DOMAIN = "hygie.test"


# Ports for test and benchmark servers come from below the kernel's ephemeral range
# (32768-60999 on Linux): a port the kernel handed out with bind(("", 0)) and that we released
# may be taken by any outgoing connection before our server binds it, which pytest-xdist
# workers opening connections all the time made happen. Each xdist worker (PYTEST_XDIST_WORKER
# "gwN") has its own block of 1,000; other processes take one of the last six blocks by pid.
PORT_BASE = 10_000
PORT_BLOCK = 1_000
_next_port: dict[int, int] = {}


def _port_block() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and worker[2:].isdigit() and int(worker[2:]) < 16:
        return PORT_BASE + int(worker[2:]) * PORT_BLOCK
    return PORT_BASE + (16 + os.getpid() % 6) * PORT_BLOCK


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1, taken in turn from this process's block
    (never one the kernel may give an outgoing connection meanwhile)."""
    block = _port_block()
    start = _next_port.get(block, block + os.getpid() % PORT_BLOCK)
    ports: list[int] = []
    for step in range(PORT_BLOCK):
        port = block + (start - block + step) % PORT_BLOCK
        if _bindable(port):
            ports.append(port)
            if len(ports) == count:
                _next_port[block] = block + (port - block + 1) % PORT_BLOCK
                return ports
    raise RuntimeError(f"no {count} free ports in {block}-{block + PORT_BLOCK - 1}")


def hygie_command() -> list[str]:
    """The ``hygie`` console script next to this interpreter, else ``python -m server.cli``."""
    script = Path(sys.executable).parent / "hygie"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "server.cli"]


def patient_registration(address: str, options: Sequence[str] = ()) -> tuple[str, ...] | None:
    """The ``hygie patient add`` that must precede ``hygie user add`` of a patient address
    ``<INS>@patient.<domain>`` (only a registered QUAL identity gets a mailbox), or None for
    any other address. Without ``options``, the identity is DUPONT Marie, born on the 12th of
    the month and year the matricule encodes, of the sex it encodes: what the tests' CDA
    documents say of their patients."""
    local, _, domain = address.lower().rpartition("@")
    if not domain.startswith("patient.") or len(local) != 15 or not local[:5].isdigit():
        return None  # not a matricule: ``hygie user add`` says why
    if not options:
        year, month = int(local[1:3]), int(local[3:5])
        month = month if 1 <= month <= 12 else 1
        born = f"{1900 + year if year >= 30 else 2000 + year}-{month:02d}-12"
        options = ("--birth-name", "DUPONT", "--given", "Marie", "--birth-date", born,
                   "--sex", "M" if local[0] == "1" else "F")  # fmt: skip
    return ("patient", "add", local.upper(), *options, "--status", "QUAL", "--no-mailbox")


class ServerError(RuntimeError):
    """``hygie`` failed to initialise or to become ready; the message has its output."""


class ServerProcess:
    """One data directory and the ``hygie serve`` process that runs on it."""

    def __init__(
        self,
        *,
        users: Mapping[str, str] | None = None,
        database_url: str | None = None,
        env: Mapping[str, str] | None = None,
        domain: str = DEFAULT_DOMAIN,
        hostname: str | None = None,
        ready_timeout: float = 60.0,
        base_dir: Path | None = None,
        patients: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.users: dict[str, str] = dict(users or {})
        #: ``hygie patient add`` options per patient address of ``users`` (identity traits,
        #: médecin traitant); a patient address not listed gets the default identity.
        self.patients: dict[str, Sequence[str]] = dict(patients or {})
        self.database_url = database_url
        self.domain = domain
        self.hostname = hostname or f"mail.{domain}"
        self.ready_timeout = ready_timeout
        self._own_base = base_dir is None
        self.base_dir = base_dir or Path(tempfile.mkdtemp(prefix="hygie-server-"))
        self.data_dir = self.base_dir / "data"
        self.log_path = self.base_dir / "serve.log"
        (
            self.smtp_port,
            self.smtp_tls_port,
            self.imap_port,
            self.imap_tls_port,
            self.pki_http_port,
            self.relay_port,
            self.https_port,
        ) = free_ports(7)
        self.extra_env: dict[str, str] = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None
        self._initialised = False
        self._log_offset = 0
        self._stopping = False

    # -- configuration ---------------------------------------------------------------------------

    @property
    def ports(self) -> dict[str, int]:
        return {
            "smtp_submission": self.smtp_port,
            "smtp_submission_tls": self.smtp_tls_port,
            "imap": self.imap_port,
            "imap_tls": self.imap_tls_port,
            "pki_http": self.pki_http_port,
            "relay": self.relay_port,
            "https": self.https_port,
        }

    @property
    def ca_file(self) -> Path:
        """The root CA certificate clients must trust."""
        return self.data_dir / "pki" / "root-ca.crt"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "server not started"
        return self.proc.pid

    def env(self) -> dict[str, str]:
        """The environment of every ``hygie`` command: ports, database and extra overrides."""
        env = dict(os.environ)
        env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "HYGIE_SERVER_LISTEN": "127.0.0.1",
                "HYGIE_SMTP_SUBMISSION_PORT": str(self.smtp_port),
                "HYGIE_SMTP_SUBMISSION_TLS_PORT": str(self.smtp_tls_port),
                "HYGIE_IMAP_PORT": str(self.imap_port),
                "HYGIE_IMAP_TLS_PORT": str(self.imap_tls_port),
                "HYGIE_HTTP_PKI_PORT": str(self.pki_http_port),
                "HYGIE_RELAY_PORT": str(self.relay_port),
                "HYGIE_HTTP_HTTPS_PORT": str(self.https_port),
            }
        )
        if self.database_url:
            env["HYGIE_DATABASE_URL"] = self.database_url
        env.update(self.extra_env)
        return env

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts only this server's root CA and checks the host name."""
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    # -- the CLI ---------------------------------------------------------------------------------

    def hygie(
        self, *args: str, input: bytes | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[bytes]:
        """Run ``hygie --data DIR ARGS…``; raise :class:`ServerError` with its output on failure."""
        cmd = [*hygie_command(), "--data", str(self.data_dir), *args]
        proc = subprocess.run(
            cmd, input=input, capture_output=True, env=self.env(), timeout=timeout, check=False
        )
        if proc.returncode != 0:
            raise ServerError(
                f"{' '.join(cmd)} exited {proc.returncode}\n"
                f"stdout: {proc.stdout.decode(errors='replace')}\n"
                f"stderr: {proc.stderr.decode(errors='replace')}"
            )
        return proc

    def hygie_batch(self, *commands: tuple[tuple[str, ...], str | None]) -> None:
        """Run several ``hygie --data DIR ARGS…`` (each with its standard input, or None) in one
        process (``bench.cli_batch``): the same commands, without a second of imports each."""
        data = ["--data", str(self.data_dir)]
        jobs = [{"args": [*data, *args], "input": text} for args, text in commands]
        cmd = [sys.executable, "-m", "bench.cli_batch"]
        proc = subprocess.run(
            cmd,
            input=json.dumps(jobs).encode(),
            capture_output=True,
            env=self.env(),
            timeout=60 + 30 * len(jobs),
            check=False,
        )
        if proc.returncode != 0:
            raise ServerError(
                f"{' '.join(cmd)} exited {proc.returncode}\n"
                f"stdout: {proc.stdout.decode(errors='replace')}\n"
                f"stderr: {proc.stderr.decode(errors='replace')}"
            )

    def _user_commands(
        self, address: str, password: str
    ) -> list[tuple[tuple[str, ...], str | None]]:
        """``hygie user add``, after ``hygie patient add`` for a patient address."""
        registration = patient_registration(address, self.patients.get(address, ()))
        add = (("user", "add", address, "--password-stdin"), password + "\n")
        return [(registration, None), add] if registration is not None else [add]

    def init(self) -> None:
        """``hygie init`` on the fresh data directory, then ``hygie user add`` for each user
        (a patient's identity registered first: :func:`patient_registration`)."""
        self.hygie_batch(
            (("init", "--domain", self.domain, "--hostname", self.hostname), None),
            *(
                command
                for address, password in self.users.items()
                for command in self._user_commands(address, password)
            ),
        )
        self._initialised = True

    def add_user(self, address: str, password: str, patient: Sequence[str] = ()) -> None:
        """A new account; for a patient address, ``patient`` are the ``hygie patient add``
        options of the identity registered first (default: :func:`patient_registration`)."""
        if patient:
            self.patients[address] = patient
        self.hygie_batch(*self._user_commands(address, password))
        self.users[address] = password

    # -- the process -----------------------------------------------------------------------------

    def start(self) -> ServerProcess:
        """Initialise (first time only), start ``hygie serve`` and wait until all ports listen."""
        if not self._initialised:
            self.init()
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [*hygie_command(), "--data", str(self.data_dir), "serve"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=self.env(),
            )
        self.returncode = None
        self._stopping = False
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        pending = set(self.ports.values())
        while pending:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise ServerError(
                    f"hygie serve exited {self.proc.returncode} before it was ready\n"
                    f"{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise ServerError(
                    f"hygie serve not ready after {self.ready_timeout}s "
                    f"(ports {sorted(pending)} closed)\n{self.log_tail()}"
                )
            for port in list(pending):
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        pending.discard(port)
                except OSError:
                    pass
            if pending:
                time.sleep(0.05)
        # With worker processes the supervisor binds the ports before any worker can answer
        # (a TLS handshake would wait on a loaded machine): wait for its "ready" too.
        while not self._serving():
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise ServerError(
                    f"hygie serve exited {self.proc.returncode} before it was ready\n"
                    f"{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise ServerError(f"hygie serve's workers not ready\n{self.log_tail()}")
            time.sleep(0.05)

    def _serving(self) -> bool:
        log = self._run_log()
        if b'"worker_started"' in log:
            return b'"workers": ' in log and b'"event": "ready"' in log
        return b'"event": "ready"' in log

    def _run_log(self) -> bytes:
        return self.log_bytes()[self._log_offset :]

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)
        if signum in (signal.SIGTERM, signal.SIGINT):
            self._stopping = True  # a second one could interrupt the graceful shutdown

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait for the exit and return its code (the caller asserts it is 0)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            if not self._stopping:
                self.proc.send_signal(signal.SIGTERM)
                self._stopping = True
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise ServerError(
                    f"hygie serve still running {timeout}s after SIGTERM\n{self.log_tail()}"
                ) from None
        self.returncode = self.proc.returncode
        return self.returncode

    def kill(self) -> None:
        """SIGKILL: no chance to flush or clean up (the durability tests' power cut)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc is not None:
            self.returncode = self.proc.returncode

    def restart(self) -> ServerProcess:
        """Start again on the same data directory and ports (after :meth:`stop` or :meth:`kill`)."""
        if self.proc is not None and self.proc.poll() is None:
            self.stop()
        return self.start()

    def close(self) -> None:
        """Stop if running (killing if need be) and remove the temporary files we created."""
        try:
            if self.proc is not None and self.proc.poll() is None:
                try:
                    self.stop(timeout=15)
                except ServerError:
                    pass
        finally:
            if self._own_base and not os.environ.get("HYGIE_KEEP_SERVER_DIR"):
                shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- logs ------------------------------------------------------------------------------------

    def log_bytes(self) -> bytes:
        """Everything every ``hygie serve`` run of this data directory wrote so far."""
        return self.log_path.read_bytes() if self.log_path.exists() else b""

    def log_tail(self, limit: int = 6000) -> str:
        """The output of the current run (its last ``limit`` characters)."""
        data = self.log_bytes()[self._log_offset :]
        return "hygie serve output:\n" + data.decode(errors="replace")[-limit:]
