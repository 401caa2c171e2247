"""IMAP load (issue 3 item 9): a 100,000-message mailbox, a 50-client mixed workload, and 5,000
authenticated IDLE connections, all against ``hygie serve`` over implicit TLS.

    python -m bench.imap_load --out bench/results [--messages 100000] [--clients 50]
        [--idle 5000] [--duration 20] [--repeat 5] [--no-profile]

1. The mailboxes are filled through the storage API (``bench.imap_populate``, a separate
   process) before the server starts: real encrypted messages, only SMTP and login skipped.
   Then, on a fresh connection after LOGIN: ``SELECT INBOX`` (< 100 ms), ``UID FETCH 1:*
   (FLAGS)`` (< 1 s) and ``FETCH 1:1000 (ENVELOPE)`` (< 300 ms), each read to its tagged
   reply, ``--repeat`` times (median and best).
2. ``--clients`` sessions on 10 mailboxes of 1,000 messages loop for ``--duration`` seconds over
   SELECT, FETCH (FLAGS ENVELOPE / BODY.PEEK[]), STORE, APPEND, UID EXPUNGE and SEARCH;
   operations/s and every protocol error (a BAD or NO that should not happen, a disconnect).
3. The server restarts (a clean RSS baseline); ``--idle`` connections log in (10 accounts,
   bounded concurrency: argon2id is slow on purpose), SELECT INBOX and IDLE; server RSS is
   read, then one message to all 10 accounts goes through SMTP submission and the time until
   each connection sees ``* n EXISTS`` is recorded.

Where a target is missed, the server is sampled with py-spy (``HYGIE_PYSPY``, the venv's
dev dependency, or ``/tmp/probe/bin/py-spy``) while the command repeats, and its hottest
functions are recorded. The client is one asyncio process with a minimal IMAP reader (no
imaplib threads); its CPU time is recorded. Writes ``imap_load.json`` and the IMAP section of
``summary.md`` (between ``<!-- imap -->`` and ``<!-- /imap -->``; the SMTP section is left
alone).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import resource
import shutil
import signal
import smtplib
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import psutil

from bench.harness import ServerProcess
from bench.smtp_load import client_cpu_seconds, environment
from bench.summary import replace_section

PASSWORD = "bench-imap-password"
BIG = "big@hygie.test"
MIXED_ACCOUNTS = 10
MIXED_MESSAGES = 1000
IDLE_ACCOUNTS = 10
IDLE_MESSAGES = 20
TARGETS_MS = {"select": 100.0, "uid_fetch_flags": 1000.0, "fetch_envelope": 300.0}
COMMANDS = {
    "select": "SELECT INBOX",
    "uid_fetch_flags": "UID FETCH 1:* (FLAGS)",
    "fetch_envelope": "FETCH 1:1000 (ENVELOPE)",
}
TARGET_IDLE_RSS_MIB = 500.0
IDLE_NOTIFY_MS = 50.0  # issue 3 item 5, for one session; reported, not a target at 5,000
PYSPY_DEFAULT = "/tmp/probe/bin/py-spy"
#: Project frames on every stack of a session (not informative in an inclusive profile).
ENTRY = (
    "serve (",
    "run (server/cli/main.py)",
    "ImapServer.",
    "Session.run (",
    "dispatch (",
)
#: Leaf frames of threads that wait for work (executor, aiosqlite, the selector).
WAITING = (
    "_worker (concurrent/futures/thread.py)",
    "_connection_worker_thread (aiosqlite/core.py)",
    "EpollSelector.select (selectors.py)",
    "Condition.wait (threading.py)",
)
MARK_BEGIN, MARK_END = "<!-- imap -->", "<!-- /imap -->"
REPO = Path(__file__).resolve().parent.parent
_LITERAL = re.compile(rb"\{(\d+)\+?\}$")
_EXISTS = re.compile(rb"^\* (\d+) EXISTS$")
_EXISTS_IN_STREAM = re.compile(rb"(?:^|\r\n)\* \d+ EXISTS\r\n")
_APPENDUID = re.compile(rb"\[APPENDUID \d+ (\d+)\]")


class ImapError(Exception):
    """The server hung up, or answered in a way the client cannot read."""


@dataclass
class Reply:
    status: str  # OK, NO or BAD
    text: str
    lines: list[bytes]  # untagged responses (literals inline); empty in fast mode
    octets: int
    fetches: int = 0

    def exists(self) -> int | None:
        found = [int(m.group(1)) for line in self.lines if (m := _EXISTS.match(line))]
        return found[-1] if found else None


class Connection:
    """A minimal IMAP client over asyncio streams: one command in flight at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buf = bytearray()
        self.n = 0

    @classmethod
    async def open(cls, port: int, ctx: ssl.SSLContext, wait: float = 60) -> Connection:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                "127.0.0.1", port, ssl=ctx, server_hostname="127.0.0.1", limit=2**20
            ),
            wait,
        )
        conn = cls(reader, writer)
        greeting = await asyncio.wait_for(conn.line(), wait)
        if not greeting.startswith(b"* OK"):
            raise ImapError(f"greeting {greeting[:80]!r}")
        return conn

    async def fill(self) -> None:
        data = await self.reader.read(1 << 18)
        if not data:
            raise ImapError("server closed the connection")
        self.buf += data

    async def line(self) -> bytes:
        while (eol := self.buf.find(b"\r\n")) < 0:
            await self.fill()
        line = bytes(self.buf[:eol])
        del self.buf[: eol + 2]
        return line

    def tag(self) -> str:
        self.n += 1
        return f"A{self.n:05d}"

    async def command(
        self, text: str, *, literal: bytes | None = None, fast: bool = False
    ) -> Reply:
        """Send ``text`` (with ``literal`` as a LITERAL+ after it) and read up to its tagged reply.

        ``fast`` skips splitting the untagged part into lines (a 100,000-line FETCH would cost
        the client more than the server): it only counts the FETCH responses in it.
        """
        tag = self.tag()
        if literal is None:
            self.writer.write(f"{tag} {text}\r\n".encode())
        else:
            self.writer.writelines(
                [f"{tag} {text} {{{len(literal)}+}}\r\n".encode(), literal, b"\r\n"]
            )
        return await (self.read_fast(tag) if fast else self.read_reply(tag))

    async def read_reply(self, tag: str) -> Reply:
        tagb = tag.encode() + b" "
        lines: list[bytes] = []
        octets = 0
        while True:
            logical = bytearray()
            pos = 0
            while True:
                while (eol := self.buf.find(b"\r\n", pos)) < 0:
                    await self.fill()
                m = _LITERAL.search(self.buf, pos, eol)
                if m is None:
                    logical += self.buf[pos:eol]
                    pos = eol + 2
                    break
                size = int(m.group(1))
                while len(self.buf) < eol + 2 + size:
                    await self.fill()
                logical += self.buf[pos : eol + 2 + size]
                pos = eol + 2 + size
            del self.buf[:pos]
            octets += pos
            if logical.startswith(tagb):
                status, _, text = bytes(logical[len(tagb) :]).partition(b" ")
                return Reply(status.decode(), text.decode("utf-8", "replace"), lines, octets)
            lines.append(bytes(logical))

    async def read_fast(self, tag: str) -> Reply:
        tagb = tag.encode() + b" "
        needle = b"\r\n" + tagb
        scan = 0
        while True:
            if self.buf.startswith(tagb):
                start = 0
            else:
                i = self.buf.find(needle, scan)
                start = -1 if i < 0 else i + 2
            if start >= 0:
                while (eol := self.buf.find(b"\r\n", start)) < 0:
                    await self.fill()
                status, _, text = bytes(self.buf[start + len(tagb) : eol]).partition(b" ")
                fetches = self.buf.count(b" FETCH (", 0, start)
                del self.buf[: eol + 2]
                return Reply(status.decode(), text.decode(), [], eol + 2, fetches)
            scan = max(0, len(self.buf) - len(needle))
            await self.fill()

    async def login(self, user: str, password: str) -> None:
        reply = await self.command(f'LOGIN "{user}" "{password}"')
        if reply.status != "OK":
            raise ImapError(f"LOGIN {user}: {reply.status} {reply.text}")

    def abort(self) -> None:
        transport = self.writer.transport
        with contextlib.suppress(Exception):
            transport.abort()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.command("LOGOUT"), 5)
        with contextlib.suppress(Exception):
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 2)


# -- the server ---------------------------------------------------------------------------------


def server_rss(pid: int) -> int:
    p = psutil.Process(pid)
    return sum(q.memory_info().rss for q in [p, *p.children(recursive=True)])


def server_cpu(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


class Profiler:
    """py-spy sampling the server while a block runs; its hottest functions afterwards."""

    def __init__(
        self, pid: int, out: Path, name: str, rate: int = 200, *, subprocesses: bool = False
    ) -> None:
        self.pid, self.rate = pid, rate
        self.subprocesses = subprocesses  # ``hygie serve --workers N``: the workers too
        self.path = out / f"imap_profile_{name}.txt"
        beside = Path(sys.executable).parent / "py-spy"  # the dev dependency, in the venv
        self.exe = (
            os.environ.get("HYGIE_PYSPY")
            or (str(beside) if beside.is_file() else None)
            or shutil.which("py-spy")
            or PYSPY_DEFAULT
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Profiler:
        if not Path(self.exe).exists():
            return self
        self.proc = subprocess.Popen(
            [self.exe, "record", "--pid", str(self.pid), "--rate", str(self.rate),
             "--format", "raw", "--nonblocking", "--output", str(self.path),
             *(["--subprocesses"] if self.subprocesses else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(0.5)  # attach before the work starts
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def summary(self, top: int = 10) -> dict[str, Any] | None:
        """Self and inclusive sample shares per function (inclusive: project code only)."""
        if not self.path.exists():
            return None
        own: Counter[str] = Counter()
        incl: Counter[str] = Counter()
        total = 0
        for line in self.path.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            n = int(count)
            frames = [f for f in stack.split(";") if "(" in f and not f.startswith("process ")]
            frames = [f for f in frames if not f.startswith("thread ")]
            if not frames:
                continue
            leaf = short_frame(frames[-1])
            if any(leaf.startswith(w) for w in WAITING):
                continue  # an idle thread: py-spy does not always see that it sleeps
            total += n
            own[leaf] += n
            for f in dict.fromkeys(short_frame(f) for f in frames):
                if any(p in f for p in ("server/", "storage/")) and not f.startswith(ENTRY):
                    incl[f] += n
        if not total:
            return None

        def share(c: Counter[str]) -> list[tuple[str, float]]:
            return [(f, round(100 * n / total, 1)) for f, n in c.most_common(top)]

        return {
            "busy_samples": total,
            "raw": self.path.name,
            "self_percent": share(own),
            "project_inclusive_percent": share(incl),
        }


def short_frame(frame: str) -> str:
    """``fn (/long/path/pkg/mod.py:12)`` → ``fn (pkg/mod.py)``, stable across lines."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    path = re.sub(r"^.*/lib/python3\.\d+/(site-packages/)?", "", path)
    path = re.sub(r"^.*/work/main/", "", path)
    path = path.removeprefix(f"{REPO}/")  # a worktree elsewhere
    return f"{name} ({path})"


# -- 1. the large mailbox -----------------------------------------------------------------------


async def large_mailbox(
    server: ServerProcess, messages: int, repeat: int, out: Path, profile: bool
) -> dict[str, Any]:
    ctx = server.ssl_context()
    samples: dict[str, list[float]] = {k: [] for k in COMMANDS}
    cpu: dict[str, list[float]] = {k: [] for k in COMMANDS}
    facts: dict[str, Any] = {}
    errors: list[str] = []

    async def one_round() -> None:
        conn = await Connection.open(server.imap_tls_port, ctx)
        try:
            await conn.login(BIG, PASSWORD)
            for name, text in COMMANDS.items():
                c0, t0 = server_cpu(server.pid), time.perf_counter()
                reply = await conn.command(text, fast=name != "select")
                samples[name].append(time.perf_counter() - t0)
                cpu[name].append(server_cpu(server.pid) - c0)
                if reply.status != "OK":
                    errors.append(f"{text}: {reply.status} {reply.text}")
                if name == "select":
                    facts["select_exists"] = reply.exists()
                else:
                    facts[f"{name}_responses"] = reply.fetches
                facts[f"{name}_octets"] = reply.octets
        finally:
            await conn.close()

    for _ in range(repeat):
        await one_round()
    result: dict[str, Any] = {"messages": messages, "errors": errors, **facts}
    missed = []
    for name, values in samples.items():
        ms = [round(1000 * v, 1) for v in values]
        target = TARGETS_MS[name]
        med = statistics.median(ms)
        result[name] = {
            "command": COMMANDS[name],
            "samples_ms": ms,
            "median_ms": med,
            "best_ms": min(ms),
            "first_ms": ms[0],
            "server_cpu_ms_median": round(1000 * statistics.median(cpu[name]), 1),
            "target_ms": target,
            "pass": med < target,
        }
        if med >= target:
            missed.append(name)
    for name in missed if profile else []:
        prof = Profiler(server.pid, out, name)
        conn = await Connection.open(server.imap_tls_port, ctx)
        try:
            await conn.login(BIG, PASSWORD)
            if name != "select":
                await conn.command("SELECT INBOX", fast=True)
            with prof:
                for _ in range(3):
                    await conn.command(COMMANDS[name], fast=True)
        finally:
            await conn.close()
        result[name]["profile"] = prof.summary()
    return result


# -- 2. the mixed workload ----------------------------------------------------------------------


def workload_message(rng: random.Random, client: int, n: int) -> bytes:
    return (
        f"From: Bench Client {client} <client{client}@hygie.test>\r\n"
        f"To: <mixed@hygie.test>\r\nSubject: Brouillon {client}-{n}\r\n"
        f"Date: {format_datetime(datetime.now(UTC))}\r\n"
        f"Message-ID: <mixed-{client}-{n}-{rng.getrandbits(32):08x}@hygie.test>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + "Texte du brouillon, constantes normales.\r\n"
        * rng.randint(20, 80)
    ).encode()


@dataclass
class MixedStats:
    ops: Counter[str] = field(default_factory=Counter)
    latency: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    disconnects: int = 0


async def mixed_client(
    server: ServerProcess,
    index: int,
    address: str,
    stats: MixedStats,
    start: asyncio.Event,
    ready: Callable[[], None],
    login_gate: asyncio.Semaphore,
    deadline: list[float],
) -> None:
    rng = random.Random(index)
    try:
        async with login_gate:
            conn = await Connection.open(server.imap_tls_port, server.ssl_context())
            await conn.login(address, PASSWORD)
    except (ImapError, OSError, TimeoutError) as exc:
        stats.errors.append(f"client {index} login: {exc!r}")
        ready()
        return
    ready()
    await start.wait()

    async def op(kind: str, text: str, literal: bytes | None = None) -> Reply:
        t0 = time.perf_counter()
        reply = await conn.command(text, literal=literal)
        stats.latency[kind].append(time.perf_counter() - t0)
        stats.ops[kind] += 1
        if reply.status != "OK":
            stats.errors.append(f"client {index} {text[:60]}: {reply.status} {reply.text}")
        return reply

    n = 0
    try:
        while time.perf_counter() < deadline[0]:
            n += 1
            reply = await op("select", "SELECT INBOX")
            exists = reply.exists() or 0
            base = min(exists, MIXED_MESSAGES)  # never expunged: their numbers are stable
            if base == 0:
                stats.errors.append(f"client {index}: SELECT INBOX shows no messages")
                break
            seq = rng.randint(1, max(1, base - 5))
            await op("fetch", f"FETCH {seq}:{seq + 4} (FLAGS ENVELOPE)")
            await op("fetch", f"FETCH {rng.randint(1, base)} (BODY.PEEK[])")
            sign = "+" if n % 2 else "-"
            await op("store", f"STORE {rng.randint(1, base)} {sign}FLAGS (\\Flagged)")
            appended = await op(
                "append", "APPEND INBOX (\\Seen)", literal=workload_message(rng, index, n)
            )
            m = _APPENDUID.search(appended.text.encode())
            if m is not None:
                uid = m.group(1).decode()
                await op("store", f"UID STORE {uid} +FLAGS.SILENT (\\Deleted)")
                await op("expunge", f"UID EXPUNGE {uid}")
            elif appended.status == "OK":
                stats.errors.append(f"client {index}: APPEND OK without APPENDUID")
            if n % 2:
                await op("search_flags", "UID SEARCH UNSEEN")
            else:  # a header search: the server decrypts each message it looks at
                lo = max(1, base - 99)
                await op("search_subject", f'SEARCH {lo}:{base} SUBJECT "Ordonnance"')
    except (ImapError, OSError, TimeoutError) as exc:
        stats.disconnects += 1
        stats.errors.append(f"client {index} disconnected: {exc!r}")
        conn.abort()
        return
    await conn.close()


async def mixed_workload(
    server: ServerProcess, clients: int, duration: float, out: Path, profile: bool
) -> dict[str, Any]:
    stats = MixedStats()
    start = asyncio.Event()
    gate = asyncio.Semaphore(8)
    logged_in = 0
    all_in = asyncio.Event()

    def ready() -> None:
        nonlocal logged_in
        logged_in += 1
        if logged_in == clients:
            all_in.set()

    deadline = [float("inf")]
    tasks = [
        asyncio.create_task(
            mixed_client(
                server, i, f"mixed{i % MIXED_ACCOUNTS}@hygie.test", stats, start, ready, gate,
                deadline,
            )
        )
        for i in range(clients)
    ]  # fmt: skip
    t_login = time.perf_counter()
    await all_in.wait()
    login_s = time.perf_counter() - t_login
    prof = Profiler(server.pid, out, "mixed", rate=100) if profile else None
    if prof is not None:
        prof.__enter__()
    c0, cc0 = server_cpu(server.pid), client_cpu_seconds()
    t0 = time.perf_counter()
    deadline[0] = t0 + duration
    start.set()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t0
    s_cpu, c_cpu = server_cpu(server.pid) - c0, client_cpu_seconds() - cc0
    if prof is not None:
        prof.__exit__(None, None, None)
    total = sum(stats.ops.values())
    per_kind = {}
    for kind, values in sorted(stats.latency.items()):
        v = sorted(values)
        per_kind[kind] = {
            "count": len(v),
            "per_s": round(len(v) / elapsed, 1),
            "p50_ms": round(1000 * statistics.median(v), 1),
            "p99_ms": round(1000 * v[min(len(v) - 1, int(0.99 * len(v)))], 1),
        }
    return {
        "clients": clients,
        "mailboxes": MIXED_ACCOUNTS,
        "messages_per_mailbox": MIXED_MESSAGES,
        "duration_s": round(elapsed, 2),
        "login_phase_s": round(login_s, 2),
        "operations": total,
        "operations_per_s": round(total / elapsed, 1),
        "per_command": per_kind,
        "protocol_errors": len(stats.errors),
        "disconnects": stats.disconnects,
        "error_samples": stats.errors[:20],
        "server_cores_busy": round(s_cpu / elapsed, 2),
        "server_cpu_ms_per_op": round(1000 * s_cpu / max(total, 1), 2),
        "client_cores_busy": round(c_cpu / elapsed, 2),
        "pass": not stats.errors and total > 0,
        "profile": prof.summary() if prof is not None else None,
    }


# -- 3. IDLE --------------------------------------------------------------------------------------


async def idle_connections(
    server: ServerProcess, count: int, open_budget: float, out: Path, profile: bool
) -> dict[str, Any]:
    ctx = server.ssl_context()
    accounts = [f"idle{i}@hygie.test" for i in range(IDLE_ACCOUNTS)]
    conns: list[Connection] = []
    failures: list[str] = []
    gate = asyncio.Semaphore(12)
    rss_before = server_rss(server.pid)
    peak = [rss_before]
    stop_poll = asyncio.Event()

    async def poll_rss() -> None:
        while not stop_poll.is_set():
            with contextlib.suppress(psutil.Error):
                peak[0] = max(peak[0], server_rss(server.pid))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop_poll.wait(), 0.25)

    cpu_open = server_cpu(server.pid)
    t_open = time.perf_counter()
    open_deadline = t_open + open_budget

    async def open_one(i: int) -> None:
        async with gate:
            if time.perf_counter() > open_deadline:
                return
            conn: Connection | None = None
            try:
                conn = await Connection.open(server.imap_tls_port, ctx)
                await conn.login(accounts[i % len(accounts)], PASSWORD)
                reply = await conn.command("SELECT INBOX")
                if reply.status != "OK":
                    raise ImapError(f"SELECT: {reply.status} {reply.text}")
                conn.writer.write(b"I1 IDLE\r\n")
                while not (await asyncio.wait_for(conn.line(), 60)).startswith(b"+"):
                    pass
                conns.append(conn)
            except (ImapError, OSError, TimeoutError) as exc:
                failures.append(repr(exc))
                if conn is not None:
                    conn.abort()

    poller = asyncio.create_task(poll_rss())
    await asyncio.gather(*(open_one(i) for i in range(count)))
    open_s = time.perf_counter() - t_open
    cpu_open = server_cpu(server.pid) - cpu_open
    await asyncio.sleep(3)  # argon2id buffers freed, sessions settled
    rss_idle = server_rss(server.pid)
    proc = psutil.Process(server.pid)
    fds, threads = proc.num_fds(), proc.num_threads()
    stop_poll.set()
    await poller

    # One message to every IDLE account: one SMTP transaction, RCPT per account.
    arrivals: list[float] = []
    t_sent = [0.0]

    async def watch(conn: Connection) -> None:
        while _EXISTS_IN_STREAM.search(conn.buf) is None:
            await conn.fill()
        arrivals.append(time.perf_counter() - t_sent[0])

    smtp = await asyncio.to_thread(smtp_session, server, accounts[0])
    watchers = [asyncio.create_task(watch(c)) for c in conns]
    prof = Profiler(server.pid, out, "idle_notify") if profile else None
    if prof is not None:
        prof.__enter__()
    c0 = server_cpu(server.pid)
    raw = (
        f"From: <{accounts[0]}>\r\nTo: undisclosed-recipients:;\r\nSubject: IDLE fan-out\r\n"
        "Message-ID: <idle-fanout@hygie.test>\r\n\r\nNouveau message.\r\n"
    ).encode()
    t_sent[0] = time.perf_counter()
    await asyncio.to_thread(smtp.sendmail, accounts[0], accounts, raw)
    acked = time.perf_counter() - t_sent[0]
    _, pending = await asyncio.wait(watchers, timeout=60)
    fanout_cpu = server_cpu(server.pid) - c0
    if prof is not None:
        prof.__exit__(None, None, None)
    for t in pending:
        t.cancel()
    with contextlib.suppress(Exception):
        await asyncio.to_thread(smtp.quit)
    for conn in conns:
        conn.abort()
    lat = sorted(arrivals) or [float("nan")]
    opened = len(conns)
    per_conn = (rss_idle - rss_before) / max(opened, 1)
    projected = (rss_before + per_conn * count) / 2**20
    return {
        "requested": count,
        "opened": opened,
        "open_failures": len(failures),
        "failure_samples": failures[:10],
        "accounts": IDLE_ACCOUNTS,
        "open_s": round(open_s, 1),
        "opened_per_s": round(opened / open_s, 1) if open_s else None,
        "open_budget_s": open_budget,
        "server_cpu_ms_per_open": round(1000 * cpu_open / max(len(conns), 1), 1),
        "server_cores_busy_opening": round(cpu_open / open_s, 2) if open_s else None,
        "server_rss_before_mib": round(rss_before / 2**20, 1),
        "server_rss_idling_mib": round(rss_idle / 2**20, 1),
        "server_rss_peak_during_logins_mib": round(peak[0] / 2**20, 1),
        "server_kib_per_connection": round(per_conn / 1024, 1),
        "server_rss_projected_at_requested_mib": round(projected, 1),
        "server_fds": fds,
        "server_threads": threads,
        "target_rss_mib": TARGET_IDLE_RSS_MIB,
        "pass": opened == count and rss_idle / 2**20 < TARGET_IDLE_RSS_MIB,
        "projected_pass": projected < TARGET_IDLE_RSS_MIB,
        "notify": {
            "smtp_ack_ms": round(1000 * acked, 1),
            "received": len(arrivals),
            "p50_ms": round(1000 * statistics.median(lat), 1),
            "p99_ms": round(1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))], 1),
            "max_ms": round(1000 * lat[-1], 1),
            "server_cpu_s": round(fanout_cpu, 2),
            "one_session_reference_ms": IDLE_NOTIFY_MS,
        },
        "profile": prof.summary() if prof is not None else None,
    }


def smtp_session(server: ServerProcess, user: str) -> smtplib.SMTP:
    smtp = smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=120)
    smtp.starttls(context=server.ssl_context())
    smtp.login(user, PASSWORD)
    return smtp


# -- the run --------------------------------------------------------------------------------------


def raise_fd_limit(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard == resource.RLIM_INFINITY else min(hard, max(soft, wanted))
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def populate(server: ServerProcess, messages: int) -> dict[str, Any]:
    targets = [f"{BIG}={messages}"]
    targets += [f"mixed{i}@hygie.test={MIXED_MESSAGES}" for i in range(MIXED_ACCOUNTS)]
    targets += [f"idle{i}@hygie.test={IDLE_MESSAGES}" for i in range(IDLE_ACCOUNTS)]
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "bench.imap_populate", "--data", str(server.data_dir), *targets],
        env=server.env(), capture_output=True, text=True, check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"bench.imap_populate failed:\n{proc.stderr[-4000:]}")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    big = report[BIG]
    return {
        "elapsed_s": round(time.perf_counter() - t0, 1),
        "big_mailbox_s": big["elapsed_s"],
        "big_mailbox_messages_per_s": big["messages_per_s"],
        "via": "storage.mailstore.MailStore.deliver in a separate process, server stopped",
    }


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    fd_limit = raise_fd_limit(2 * args.idle + 1000)  # inherited by the server process
    users = {BIG: PASSWORD}
    users |= {f"mixed{i}@hygie.test": PASSWORD for i in range(MIXED_ACCOUNTS)}
    users |= {f"idle{i}@hygie.test": PASSWORD for i in range(IDLE_ACCOUNTS)}
    base = Path(tempfile.mkdtemp(prefix="hygie-imap-bench-"))
    server = ServerProcess(users=users, base_dir=base, ready_timeout=120)
    result: dict[str, Any] = {
        "scenario": "imap_load",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "parameters": {
            "messages": args.messages,
            "clients": args.clients,
            "idle": args.idle,
            "duration_s": args.duration,
            "repeat": args.repeat,
            "transport": "IMAP implicit TLS (RFC 8314), LOGIN, one asyncio client process",
            "fd_limit": fd_limit,
        },
    }
    t_start = time.perf_counter()
    try:
        server.init()
        result["populate"] = populate(server, args.messages)
        server.start()
        result["server_rss_after_start_mib"] = round(server_rss(server.pid) / 2**20, 1)
        profile = not args.no_profile
        result["large_mailbox"] = asyncio.run(
            large_mailbox(server, args.messages, args.repeat, args.out, profile)
        )
        result["mixed"] = asyncio.run(
            mixed_workload(server, args.clients, args.duration, args.out, profile)
        )
        server.stop()
        server.start()  # a clean RSS baseline for the IDLE connections
        result["idle"] = asyncio.run(
            idle_connections(server, args.idle, args.idle_open_budget, args.out, profile)
        )
        result["server_exit_code_on_sigterm"] = server.stop(timeout=120)
        log = server.log_bytes()
        result["server_log_errors"] = [
            line.decode(errors="replace")[:300]
            for line in log.splitlines()
            if b'"level": "error"' in line or b"Traceback" in line
        ][:10]
    finally:
        server.close()
        if not os.environ.get("HYGIE_KEEP_SERVER_DIR"):
            shutil.rmtree(base, ignore_errors=True)
    result["total_s"] = round(time.perf_counter() - t_start, 1)
    result["environment"] = environment("sqlite", "file")
    return result


# -- the report -----------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def hot(profile: dict[str, Any] | None, n: int = 4) -> str:
    if not profile:
        return "no profile"
    own = ", ".join(f"{f} {p}%" for f, p in profile["self_percent"][:n])
    mine = ", ".join(f"{f} {p}%" for f, p in profile["project_inclusive_percent"][:n])
    return f"hottest (self): {own}; project code (inclusive): {mine} [{profile['raw']}]"


def limits(result: dict[str, Any]) -> list[str]:
    notes = []
    big = result["large_mailbox"]
    for name in COMMANDS:
        r = big[name]
        if not r["pass"]:
            share = r["server_cpu_ms_median"] / r["median_ms"] if r["median_ms"] else 0
            notes.append(
                f"- `{r['command']}`: median {r['median_ms']} ms, of which the server spent "
                f"{r['server_cpu_ms_median']} ms CPU ({share:.0%}: "
                f"{'CPU-bound in the server' if share > 0.7 else 'partly waiting'}); "
                f"{hot(r.get('profile'))}."
            )
    mixed = result["mixed"]
    notes.append(
        f"- Mixed workload: server {mixed['server_cores_busy']} cores busy "
        f"({mixed['server_cpu_ms_per_op']} ms CPU/op), client {mixed['client_cores_busy']}; "
        f"{hot(mixed.get('profile'))}."
    )
    idle = result["idle"]
    ssl_kib = asyncio.sslproto.SSLProtocol.max_size / 1024
    notes.append(
        f"- IDLE memory: {idle['server_kib_per_connection']} KiB of server RSS per idling "
        f"connection, of which asyncio's TLS transport (`asyncio.sslproto.SSLProtocol`, Python "
        f"{sys.version_info.major}.{sys.version_info.minor}) allocates a {ssl_kib:.0f} KiB "
        f"read buffer for each connection; {TARGET_IDLE_RSS_MIB:.0f} MiB for "
        f"{idle['requested']} connections needs under "
        f"{(TARGET_IDLE_RSS_MIB - idle['server_rss_before_mib']) * 1024 / idle['requested']:.0f} "
        "KiB each."
    )
    if idle["opened"] < idle["requested"]:
        notes.append(
            f"- IDLE: only {idle['opened']} of {idle['requested']} connections opened within "
            f"the {idle['open_budget_s']} s budget ({idle['opened_per_s']}/s): each LOGIN is an "
            "argon2id verification (64 MiB, t=3, p=4); the server spent "
            f"{idle['server_cpu_ms_per_open']} ms of CPU per connection opened (TLS handshake, "
            f"argon2id, key unwrap, SELECT) with {idle['server_cores_busy_opening']} cores busy, "
            "and more client concurrency does not raise the rate. "
            f"Projected from the {idle['server_kib_per_connection']} KiB per connection "
            f"measured: {idle['server_rss_projected_at_requested_mib']} MiB at "
            f"{idle['requested']} ({verdict(idle['projected_pass'])} against the target)."
        )
    notify = idle["notify"]
    notes.append(
        f"- IDLE fan-out: {notify['received']} sessions told in p50 {notify['p50_ms']} ms, max "
        f"{notify['max_ms']} ms ({notify['server_cpu_s']} s of server CPU: each session "
        f"re-reads its folder's changes); {hot(idle.get('profile'))}."
    )
    return notes


def section(result: dict[str, Any]) -> str:
    big, mixed, idle = result["large_mailbox"], result["mixed"], result["idle"]
    env = result["environment"]
    rows = [
        f"| {big[n]['command']} | {big[n]['median_ms']} | {big[n]['best_ms']} | "
        f"< {big[n]['target_ms']:.0f} | {verdict(big[n]['pass'])} |"
        for n in COMMANDS
    ]
    pc = mixed["per_command"]
    kinds = ", ".join(f"{k} {v['per_s']}/s (p50 {v['p50_ms']} ms)" for k, v in pc.items())
    notify = idle["notify"]
    return "\n".join(
        [
            MARK_BEGIN,
            "# Benchmark: IMAP load",
            "",
            "Targets (issue 3 item 9). Produced by `make bench` "
            "(`python -m bench.imap_load --out bench/results`); raw figures in "
            "`imap_load.json`. Implicit TLS, fresh connection after LOGIN, SQLite, file blobs.",
            "",
            f"Machine: {env['cpu_count']} cores ({env['cpu_model']}), {env['memory_gib']} GiB, "
            f"Python {env['python']}, {result['date']}; whole run {result['total_s']} s.",
            "",
            f"Mailbox of {big['messages']} messages (filled through the storage API in "
            f"{result['populate']['big_mailbox_s']} s, "
            f"{result['populate']['big_mailbox_messages_per_s']} msg/s), "
            f"{result['parameters']['repeat']} runs each:",
            "",
            "| command | median ms | best ms | target ms | result |",
            "|---|---|---|---|---|",
            *rows,
            "",
            f"Mixed workload, {mixed['clients']} clients on {mixed['mailboxes']} mailboxes of "
            f"{mixed['messages_per_mailbox']} messages, {mixed['duration_s']} s: "
            f"**{mixed['operations_per_s']} operations/s** ({kinds}); protocol errors "
            f"**{mixed['protocol_errors']}** (disconnects {mixed['disconnects']}): "
            f"{verdict(mixed['pass'])}.",
            "",
            f"IDLE: **{idle['opened']} / {idle['requested']}** authenticated TLS connections "
            f"idling (opened in {idle['open_s']} s, {idle['opened_per_s']}/s); server RSS "
            f"**{idle['server_rss_idling_mib']} MiB** (before: {idle['server_rss_before_mib']} "
            f"MiB, {idle['server_kib_per_connection']} KiB per connection; peak during the "
            f"logins {idle['server_rss_peak_during_logins_mib']} MiB), target < "
            f"{idle['target_rss_mib']:.0f} MiB: {verdict(idle['pass'])}. One delivery to all "
            f"{idle['accounts']} accounts reached {notify['received']} sessions: p50 "
            f"{notify['p50_ms']} ms, p99 {notify['p99_ms']} ms, max {notify['max_ms']} ms after "
            f"the SMTP DATA was sent (250 after {notify['smtp_ack_ms']} ms).",
            "",
            "What limits it:",
            *limits(result),
            MARK_END,
            "",
        ]
    )


def write_summary(out: Path, result: dict[str, Any]) -> Path:
    """Replace (or add) the IMAP section of ``summary.md``; other sections stay as they are."""
    return replace_section(out, "imap", section(result))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.imap_load", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--idle", type=int, default=5000)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--idle-open-budget", type=float, default=240.0,
        help="seconds allowed to open the IDLE connections (argon2id logins are slow)",
    )  # fmt: skip
    parser.add_argument("--no-profile", action="store_true", help="do not run py-spy")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    result = benchmark(args)
    (args.out / "imap_load.json").write_text(json.dumps(result, indent=2) + "\n")
    summary = write_summary(args.out, result)
    big, mixed, idle = result["large_mailbox"], result["mixed"], result["idle"]
    print(
        "; ".join(f"{big[n]['command']} {big[n]['median_ms']:.1f} ms" for n in COMMANDS)
        + f"; mixed {mixed['operations_per_s']} op/s, {mixed['protocol_errors']} errors; "
        f"IDLE {idle['opened']}/{idle['requested']} at {idle['server_rss_idling_mib']} MiB. "
        f"Written {args.out / 'imap_load.json'} and {summary}."
    )
    ok = not big["errors"] and mixed["protocol_errors"] == 0 and idle["opened"] > 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
