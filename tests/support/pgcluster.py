"""A throwaway PostgreSQL cluster for tests and benchmarks (design.md §3).

Debian's ``postgresql`` package ships the server binaries under
``/usr/lib/postgresql/<version>/bin``; we take the highest version, ``initdb`` a cluster in a
temporary directory and run it with ``pg_ctl`` on a free loopback port (plus a unix socket in
the same directory), with trust authentication for loopback only. ``initdb`` refuses to run as
root, so as root every server-side command runs as the ``postgres`` system user, which owns the
temporary directory.

    cluster = PgCluster()
    cluster.start()
    url = cluster.create_database("hygie_test")  # postgresql+asyncpg://postgres@127.0.0.1:…/…
    ...
    cluster.stop()
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from bench.harness import free_ports
from tests.support.tools import install_lock

PG_ROOT = Path("/usr/lib/postgresql")
SUPERUSER = "postgres"
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PgUnavailable(RuntimeError):
    """The PostgreSQL server binaries are missing and could not be installed."""


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def free_port() -> int:
    """A free TCP port on 127.0.0.1, outside the ephemeral range (``bench.harness.free_ports``)."""
    return free_ports(1)[0]


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.name))


def find_bindir() -> Path | None:
    """The ``bin`` directory of the highest installed PostgreSQL version, if any."""
    if not PG_ROOT.is_dir():
        return None
    candidates = [
        d / "bin"
        for d in PG_ROOT.iterdir()
        if re.fullmatch(r"\d+(\.\d+)?", d.name) and (d / "bin" / "initdb").is_file()
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda b: _version_key(b.parent))


def install_postgresql() -> None:
    """Install Debian's ``postgresql`` package (it may start a system cluster: harmless)."""
    if os.geteuid() != 0:
        raise PgUnavailable("PostgreSQL binaries are missing and we are not root to install them")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "postgresql"]):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise PgUnavailable(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}{proc.stderr}")


def ensure_bindir(install: bool = True) -> Path:
    bindir = find_bindir()
    if bindir is None and install:
        with install_lock():
            bindir = find_bindir()
            if bindir is None:
                install_postgresql()
                bindir = find_bindir()
    if bindir is None:
        raise PgUnavailable(f"no PostgreSQL server binaries under {PG_ROOT}")
    return bindir


class PgCluster:
    """One PostgreSQL cluster in a temporary directory, listening on 127.0.0.1 only."""

    def __init__(self, bindir: Path | None = None, port: int | None = None) -> None:
        self.bindir = bindir or ensure_bindir()
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self._as_root = os.geteuid() == 0
        self._root = Path(tempfile.mkdtemp(prefix="hygie-pg-"))
        self._initialised = False
        self._running = False

    # -- paths ---------------------------------------------------------------------------------

    @property
    def base_dir(self) -> Path:
        return self._root

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory (``PGDATA``): what an at-rest test searches."""
        return self._root / "data"

    @property
    def socket_dir(self) -> Path:
        return self._root

    @property
    def log_file(self) -> Path:
        return self._root / "postgresql.log"

    @property
    def running(self) -> bool:
        return self._running

    # -- running commands ----------------------------------------------------------------------

    def _server_cmd(self, *args: str) -> list[str]:
        """A server-side command, run as ``postgres`` when we are root (initdb refuses root)."""
        if self._as_root:
            return ["runuser", "-u", SUPERUSER, "--", *args]
        return list(args)

    def _run(self, cmd: list[str], timeout: float = 120) -> str:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, check=False, cwd=self._root
        )
        if proc.returncode != 0:
            log = (
                self.log_file.read_text(errors="replace")[-4000:] if self.log_file.exists() else ""
            )
            raise RuntimeError(
                f"{' '.join(cmd)} exited {proc.returncode}\nstdout: {proc.stdout}\n"
                f"stderr: {proc.stderr}\npostgresql.log (tail):\n{log}"
            )
        return proc.stdout

    def _init(self) -> None:
        if self._as_root:
            pw = pwd.getpwnam(SUPERUSER)
            os.chown(self._root, pw.pw_uid, pw.pw_gid)
        self._run(
            self._server_cmd(
                str(self.bindir / "initdb"),
                "--pgdata", str(self.data_dir),
                "--username", SUPERUSER,
                "--auth-local", "trust",
                "--auth-host", "trust",
                "--encoding", "UTF8",
                "--locale", "C",
                "--no-instructions",
            )
        )  # fmt: skip
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            "fsync": "on",
            "max_connections": "300",
            "logging_collector": "off",
        }
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# hygie test cluster\n")
            for key, value in settings.items():
                conf.write(f"{key} = {value}\n")
        # Trust on loopback only: initdb's pg_hba.conf already limits host lines to
        # 127.0.0.1/32 and ::1/128, and listen_addresses keeps us off every other interface.
        self._initialised = True

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> PgCluster:
        if self._running:
            return self
        if not self._initialised:
            self._init()
        self._run(
            self._server_cmd(
                str(self.bindir / "pg_ctl"),
                "--pgdata", str(self.data_dir),
                "--log", str(self.log_file),
                "--wait", "--timeout", "60",
                "start",
            )
        )  # fmt: skip
        self._running = True
        return self

    def stop(self, remove: bool = True) -> None:
        """Stop the server and, unless ``remove`` is false, delete the files. A cluster about
        to be deleted stops in immediate mode: the shutdown checkpoint of a fast stop wrote
        every database the session made, for files deleted next (5.8 s, which was the slow
        worker teardown at the end of ``make test``)."""
        if self._running:
            self._run(
                self._server_cmd(
                    str(self.bindir / "pg_ctl"),
                    "--pgdata", str(self.data_dir),
                    "--mode", "immediate" if remove else "fast", "--wait", "--timeout", "60",
                    "stop",
                )
            )  # fmt: skip
            self._running = False
        if remove:
            # Thousands of files (every database the session made): deleted by a detached
            # `rm` (2.9 s on a loaded machine), so the test process's teardown does not wait.
            trash = self._root.with_name(self._root.name + ".deleted")
            try:
                self._root.rename(trash)
            except OSError:
                shutil.rmtree(self._root, ignore_errors=True)
                return
            os.posix_spawnp("rm", ["rm", "-rf", "--", str(trash)], os.environ, setsid=True)

    def __enter__(self) -> PgCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- SQL -----------------------------------------------------------------------------------

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run SQL through ``psql`` over loopback TCP; returns the unaligned, tuples-only output."""
        return self._run(
            [
                str(self.bindir / "psql"),
                "-X", "-q", "-A", "-t",
                "-v", "ON_ERROR_STOP=1",
                "-h", self.host, "-p", str(self.port), "-U", SUPERUSER,
                "-d", dbname,
                "-c", sql,
            ],
            timeout=60,
        )  # fmt: skip

    def url(self, dbname: str, driver: str = "postgresql+asyncpg") -> str:
        return f"{driver}://{SUPERUSER}@{self.host}:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        """Create an empty database and return its ``postgresql+asyncpg://`` URL."""
        if not _IDENTIFIER.match(name):
            raise ValueError(f"not a plain database name: {name!r}")
        self.psql(f"CREATE DATABASE {name}")
        return self.url(name)

    def drop_database(self, name: str) -> None:
        if not _IDENTIFIER.match(name):
            raise ValueError(f"not a plain database name: {name!r}")
        self.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def checkpoint(self) -> None:
        """Force dirty pages to the data files, so a search of :attr:`data_dir` sees them."""
        self.psql("CHECKPOINT")
