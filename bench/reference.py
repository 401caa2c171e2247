"""The servers a side-by-side benchmark compares: Hygie and the reference Postfix + Dovecot.

    with ReferenceServers() as reference, hygie_server(users=100) as server:
        targets = [hygie_target(server), reference.target()]

- :class:`ReferenceServers` starts Postfix 3.7 and Dovecot 2.3 from Debian through the shared
  scripts (``setup.sh --fresh``, ``stop.sh`` in ``../shared/reference-servers``, or
  ``$HYGIE_REFERENCE_SERVERS``; they install the packages with apt-get when missing, so they need
  root), on loopback: domain ``peer.test``, users ``user1`` … ``userN``, password ``pass``.
- :func:`hygie_server` is a fresh ``hygie serve`` (``bench.harness``) with the same users
  ``userN@hygie.test`` (password ``pass-hygie-bench``: Hygie wants at least 8 characters).
- Both get the same mailboxes (:func:`seed_plan`): Hygie's default folders exist on both, plus
  ``Suivi patients``; ``INBOX``, ``Archive`` and ``Suivi patients`` hold ``per_mailbox``
  messages of :mod:`bench.corpus` each, with the same flags. Hygie is filled through its storage
  API before it starts (as ``bench.imap_populate`` does: encrypted, durable, only the IMAP
  dialogue skipped); Dovecot over IMAP APPEND.
- :class:`Target` is what a load generator needs of either: ports, addresses, TLS context, and
  the server's CPU time and memory read from ``/proc`` for its whole process tree — Hygie's
  process and children; Dovecot's and Postfix's masters and every process they fork, including
  the ones that exited meanwhile (their time is in the master's ``cutime``/``cstime`` once
  reaped), so one imap process per connection is counted in full.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from bench.corpus import corpus
from bench.harness import ServerProcess
from bench.imap_load import Connection, ImapError

PASSWORD = "pass"  # the reference servers' password, set by setup.sh
#: Hygie refuses passwords under 8 characters; its users get this one.
HYGIE_PASSWORD = "pass-hygie-bench"
REFERENCE_DOMAIN = "peer.test"
HYGIE_DOMAIN = "hygie.test"
STATE = Path("/tmp/hygie-reference")
REFERENCE_IMAPS_PORT = 10993
REFERENCE_SMTP_PORT = 10025
#: Folders every Hygie account starts with (storage.accounts.DEFAULT_FOLDERS), created on
#: Dovecot too so that LIST answers the same list.
DEFAULT_FOLDERS = ("INBOX", "Sent", "Drafts", "Trash", "Archive")
EXTRA_FOLDER = "Suivi patients"
#: The mailboxes the IMAP stress profile works on (each holds ``per_mailbox`` messages).
STRESS_MAILBOXES = ("INBOX", "Archive", EXTRA_FOLDER)
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# -- process trees from /proc -------------------------------------------------------------------


def _proc_table() -> dict[int, tuple[int, float, int]]:
    """pid → (ppid, CPU seconds of the process and its reaped children, RSS bytes)."""
    table: dict[int, tuple[int, float, int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # exited meanwhile
        fields = stat[stat.rfind(b")") + 2 :].split()
        # proc(5): state ppid … utime(14) stime(15) cutime(16) cstime(17) … rss(24)
        ticks = int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
        table[int(entry.name)] = (int(fields[1]), ticks / CLK_TCK, int(fields[21]) * PAGE)
    return table


def _tree(table: dict[int, tuple[int, float, int]], roots: tuple[int, ...]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    todo = [r for r in roots if r in table]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


def tree_usage(roots: tuple[int, ...]) -> tuple[float, int, int]:
    """(CPU seconds, RSS bytes, process count) of ``roots`` and all their descendants."""
    table = _proc_table()
    pids = _tree(table, roots)
    return (
        sum(table[p][1] for p in pids),
        sum(table[p][2] for p in pids),
        len(pids),
    )


# -- what a load generator needs of a server ------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One server under test, as plain data (it crosses into load-generator processes)."""

    name: str  # "hygie" or "reference"
    label: str  # what the report calls it
    imap_tls_port: int
    smtp_port: int  # submission with STARTTLS
    domain: str
    password: str
    users: int
    cafile: str | None  # None: do not verify (the reference's self-signed certificate)
    roots: tuple[int, ...]  # pids whose process trees are the server

    def address(self, n: int) -> str:
        return f"user{n}@{self.domain}"

    def client_context(self) -> ssl.SSLContext:
        if self.cafile is None:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        else:
            ctx = ssl.create_default_context(cafile=self.cafile)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    def usage(self) -> tuple[float, int, int]:
        return tree_usage(self.roots)

    def cpu_seconds(self) -> float:
        return self.usage()[0]


# -- the reference servers ------------------------------------------------------------------------


def scripts_dir() -> Path:
    """Where ``setup.sh`` and ``stop.sh`` are: ``$HYGIE_REFERENCE_SERVERS``, else the shared
    directory beside the checkout (``../shared`` of /work/main), else /work/shared."""
    env = os.environ.get("HYGIE_REFERENCE_SERVERS")
    repo = Path(__file__).resolve().parent.parent
    candidates = [Path(env)] if env else []
    candidates += [
        repo.parent / "shared" / "reference-servers",
        Path("/work/shared/reference-servers"),
    ]
    for path in candidates:
        if (path / "setup.sh").is_file():
            return path
    raise ReferenceUnavailable(
        "reference-servers/setup.sh not found (set HYGIE_REFERENCE_SERVERS to its directory)"
    )


class ReferenceUnavailable(RuntimeError):
    """The reference servers cannot be started here; the message says why."""


def _pid(path: Path) -> int:
    return int(path.read_text().strip())


def _version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return "unknown"
    return out.stdout.strip().split()[0] if out.stdout.strip() else "unknown"


class ReferenceServers:
    """Postfix and Dovecot started fresh by the shared ``setup.sh``, stopped by ``stop.sh``."""

    def __init__(self, users: int = 100) -> None:
        self.users = users
        self.scripts = scripts_dir()
        self.started = False

    def start(self) -> ReferenceServers:
        if os.geteuid() != 0:
            raise ReferenceUnavailable(
                "the reference servers need root (setup.sh installs packages and chowns)"
            )
        if (STATE / "run/dovecot/master.pid").exists():
            self._run("stop.sh")  # a previous run's instance: setup.sh refuses to start over it
        env = dict(os.environ, NUSERS=str(self.users))
        self._run("setup.sh", "--fresh", env=env)
        self.started = True
        return self

    def _run(self, script: str, *args: str, env: dict[str, str] | None = None) -> None:
        proc = subprocess.run(
            ["bash", str(self.scripts / script), *args],
            capture_output=True, text=True, env=env, timeout=900, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise ReferenceUnavailable(
                f"{script} {' '.join(args)} exited {proc.returncode}:\n"
                f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
            )

    def stop(self) -> None:
        if self.started:
            self._run("stop.sh")
            self.started = False

    @property
    def roots(self) -> tuple[int, ...]:
        return (
            _pid(STATE / "run/dovecot/master.pid"),
            _pid(STATE / "postfix-spool/pid/master.pid"),
        )

    def versions(self) -> dict[str, str]:
        return {
            "postfix": _version(["postconf", "-c", str(STATE / "postfix"), "-h", "mail_version"]),
            "dovecot": _version(["dovecot", "--version"]),
        }

    def target(self) -> Target:
        v = self.versions()
        return Target(
            name="reference",
            label=f"Postfix {v['postfix']} / Dovecot {v['dovecot']}",
            imap_tls_port=REFERENCE_IMAPS_PORT,
            smtp_port=REFERENCE_SMTP_PORT,
            domain=REFERENCE_DOMAIN,
            password=PASSWORD,
            users=self.users,
            cafile=None,
            roots=self.roots,
        )

    def maildir_count(self, users: range) -> int:
        """Messages in the users' INBOX maildirs (``new`` and ``cur``)."""
        total = 0
        for n in users:
            base = STATE / f"mail/user{n}/Maildir"
            for sub in ("new", "cur"):
                with contextlib.suppress(FileNotFoundError):
                    total += sum(1 for _ in os.scandir(base / sub))
        return total

    def __enter__(self) -> ReferenceServers:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# -- Hygie ----------------------------------------------------------------------------------------


def hygie_users(users: int) -> dict[str, str]:
    return {f"user{n}@{HYGIE_DOMAIN}": HYGIE_PASSWORD for n in range(1, users + 1)}


@contextlib.contextmanager
def hygie_server(
    users: int, per_mailbox: int, env: dict[str, str] | None = None, workers: int | None = None
) -> Iterator[ServerProcess]:
    """A fresh ``hygie serve`` (``--workers``: ``workers``, else one process) whose users'
    mailboxes are seeded before it starts."""
    env = dict(env or {})
    if workers is not None:
        env["HYGIE_SERVER_WORKERS"] = str(workers)
    server = ServerProcess(users=hygie_users(users), env=env, ready_timeout=120)
    try:
        server.init()
        if per_mailbox:  # before it starts: the storage API needs no server
            asyncio.run(seed_hygie(server.data_dir, users, per_mailbox, server.env()))
        server.start()
        yield server
    finally:
        server.close()


def workers(args: Any) -> int:
    """The worker processes of the Hygie under test: ``--workers`` (0: one per core), else
    one (``ServerProcess``'s default)."""
    count: int | None = getattr(args, "workers", None)
    if count is None:
        return 1
    return count or (os.cpu_count() or 1)


def hygie_target(server: ServerProcess, users: int, processes: int | None = None) -> Target:
    label = "Hygie" if processes is None else f"Hygie ({processes} process{'es' * (processes > 1)})"
    return Target(
        name="hygie",
        label=label,
        imap_tls_port=server.imap_tls_port,
        smtp_port=server.smtp_port,
        domain=HYGIE_DOMAIN,
        password=HYGIE_PASSWORD,
        users=users,
        cafile=str(server.ca_file),
        roots=(server.pid,),
    )


# -- the same mailboxes on both -------------------------------------------------------------------


def seed_plan(user: int, mailbox: str, per_mailbox: int) -> list[tuple[int, list[str]]]:
    """(corpus index, flags) of each message seeded in ``mailbox`` of user ``user``."""
    rng = random.Random(f"{user}/{mailbox}")
    size = len(corpus())
    plan = []
    for _ in range(per_mailbox):
        flags = []
        if rng.random() < 0.7:
            flags.append("\\Seen")
        if rng.random() < 0.1:
            flags.append("\\Flagged")
        if rng.random() < 0.1:
            flags.append("$Suivi")
        plan.append((rng.randrange(size), flags))
    return plan


async def seed_hygie(
    data_dir: Path, users: int, per_mailbox: int, environ: dict[str, str] | None = None
) -> dict[str, Any]:
    """Create ``Suivi patients`` and fill the stress mailboxes of a stopped Hygie through the
    storage API: encrypted, durable, as ``bench.imap_populate`` does (only IMAP skipped)."""
    from server.config import load_config
    from server.delivery.trace import describe
    from storage.blobs import open_blob_store
    from storage.db import Database
    from storage.mailstore import MailStore

    config = load_config(data_dir, environ)
    blobs = open_blob_store(config.storage.blob_store, config.path(config.storage.blob_dir))
    db = Database(config.database_url, blobs, group_commit_max=128)
    await db.start()
    store = MailStore(db)
    messages = corpus()
    metas = [describe(raw) for raw in messages]
    t0 = time.perf_counter()
    count = 0
    gate = asyncio.Semaphore(64)

    async def one(folder: Any, public_key: bytes, index: int, flags: list[str]) -> None:
        nonlocal count
        async with gate:
            await store.append(folder, public_key, messages[index], metas[index], flags)
            count += 1

    try:
        jobs = []
        for n in range(1, users + 1):
            recipient = await store.resolve(f"user{n}@{HYGIE_DOMAIN}")
            if recipient is None:
                raise SystemExit(f"no such account: user{n}@{HYGIE_DOMAIN}")
            await store.create_folder(recipient.account_id, EXTRA_FOLDER)
            for name in STRESS_MAILBOXES:
                folder = await store.folder(recipient.account_id, name)
                assert folder is not None, name
                for index, flags in seed_plan(n, name, per_mailbox):
                    jobs.append(one(folder, recipient.public_key, index, flags))
        await asyncio.gather(*jobs)
    finally:
        await db.close()
    return {"messages": count, "elapsed_s": round(time.perf_counter() - t0, 2)}


async def seed_over_imap(target: Target, per_mailbox: int, concurrency: int = 8) -> dict[str, Any]:
    """Create Hygie's folders and fill the stress mailboxes over IMAP (for Dovecot)."""
    messages = corpus()
    ctx = target.client_context()
    gate = asyncio.Semaphore(concurrency)
    t0 = time.perf_counter()
    count = 0

    async def one_user(n: int) -> None:
        nonlocal count
        async with gate:
            conn = await Connection.open(target.imap_tls_port, ctx)
            try:
                await conn.login(target.address(n), target.password)
                for name in (*DEFAULT_FOLDERS[1:], EXTRA_FOLDER):
                    reply = await conn.command(f'CREATE "{name}"')
                    if reply.status != "OK" and "ALREADYEXISTS" not in reply.text:
                        raise ImapError(f"CREATE {name}: {reply.status} {reply.text}")
                for name in STRESS_MAILBOXES:
                    for index, flags in seed_plan(n, name, per_mailbox):
                        reply = await conn.command(
                            f'APPEND "{name}" ({" ".join(flags)})', literal=messages[index]
                        )
                        if reply.status != "OK":
                            raise ImapError(f"APPEND {name}: {reply.status} {reply.text}")
                        count += 1
            finally:
                await conn.close()

    await asyncio.gather(*(one_user(n) for n in range(1, target.users + 1)))
    return {"messages": count, "elapsed_s": round(time.perf_counter() - t0, 2)}


# -- reports shared by the side-by-side benchmarks ------------------------------------------------


def machine() -> dict[str, Any]:
    from bench.smtp_load import environment

    env = environment("sqlite", "file")
    env.pop("database")
    env.pop("blob_store")
    return env


def commit() -> str:
    repo = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
    except OSError:
        return "unknown"
    sha = out.stdout.strip() or "unknown"
    # results and prose written meanwhile (e.g. by the previous benchmark) do not count
    dirty = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no", "--",
         ".", ":!bench/results", ":!*.md"],
        capture_output=True, text=True, timeout=10, check=False,
    ).stdout.strip()  # fmt: skip
    return f"{sha}+changes" if dirty else sha


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reference", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start the reference servers fresh and seed them")
    start.add_argument("--users", type=int, default=100)
    start.add_argument("--per-mailbox", type=int, default=30)
    sub.add_parser("stop", help="stop the reference servers")
    args = parser.parse_args(argv)
    if args.command == "start":
        reference = ReferenceServers(args.users).start()
        report = asyncio.run(seed_over_imap(reference.target(), args.per_mailbox))
        print(json.dumps({"target": reference.target().label, "seeded": report}))
    else:
        subprocess.run(["bash", str(scripts_dir() / "stop.sh")], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
