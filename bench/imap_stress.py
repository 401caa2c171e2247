"""IMAP stress side by side (issue 19 item 5): imaptest's default profile against Hygie and
against the reference Dovecot, in the same run, alternating.

    python -m bench.imap_stress --out bench/results [--quick] [--pairs 3] [--duration 30]
        [--users 100] [--clients 10] [--per-mailbox 30] [--procs 2] [--servers hygie,reference]

The profile (imaptest's defaults: https://imapwiki.org/ImapTest/States): ``--clients`` clients
over implicit TLS on ``--users`` accounts; each cycle picks a random mailbox (``INBOX``,
``Archive``, ``Suivi patients``) and does

    LIST "" "*" + STATUS (50 %), SELECT, FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE),
    UID FETCH (BODYSTRUCTURE BODY.PEEK[HEADER]) of one message, UID FETCH (BODY.PEEK[]) (20 %),
    UID STORE of flags and keywords (50 %), UID STORE +FLAGS.SILENT (\\Deleted) + EXPUNGE of the
    messages above ``--per-mailbox``, APPEND of a message of ``bench.corpus``

so each mailbox stays about ``--per-mailbox`` messages. Two modes: ``stay`` (each client logs
in once and cycles on that account's mailboxes) and ``login`` (each cycle is a session of its
own on a random account: TLS, LOGIN, the cycle, LOGOUT; ~9 commands a session).

Every tagged NO or BAD counts as a protocol error, except ``NO [EXPUNGEISSUED]`` (RFC 9051
§7.1: another session expunged the message; counted apart), as do untagged BAD, a SELECT
without EXISTS, an APPEND without APPENDUID and a dropped connection. Every command sent is
checked to get its own tagged answer.

The load generator is ``--procs`` processes of asyncio clients with a minimal IMAP reader
(``bench.imap_load.Connection``: lines and literals, nothing parsed beyond EXISTS, UID and the
tagged status); their CPU time is measured and reported. The servers' CPU time comes from
``/proc`` for their whole process trees (``bench.reference``). After the pairs, one more
Hygie run in ``stay`` mode is sampled with py-spy: ``imap_stress_profile.txt``.

Writes ``imap_stress.json`` and the ``imap_stress`` section of ``summary.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import queue as queue_module
import random
import re
import resource
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import partial
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from bench.corpus import corpus, shape_counts
from bench.harness import ServerProcess
from bench.imap_load import Connection, ImapError, Profiler, Reply
from bench.reference import (
    STRESS_MAILBOXES,
    ReferenceServers,
    ReferenceUnavailable,
    Target,
    commit,
    hygie_server,
    hygie_target,
    machine,
    seed_over_imap,
    workers,
)
from bench.sidebyside import (
    ThreadClock,
    contention,
    hottest,
    latency_ms,
    load_average,
    median_of,
    pair_ratio,
    pairs_of,
    write_profile,
)
from bench.summary import replace_section

MODES = ("stay", "login")
#: Command names, in the order of a cycle.
COMMANDS = (
    "LOGIN",
    "LIST",
    "STATUS",
    "SELECT",
    "FETCH",
    "FETCH2",
    "FETCH BODY[]",
    "STORE",
    "STORE \\Deleted",
    "EXPUNGE",
    "APPEND",
    "LOGOUT",
)
#: Flag and keyword changes of the STORE step (non-silent: the server answers the new flags).
STORE_CHANGES = (
    "+FLAGS (\\Flagged $Suivi)",
    "-FLAGS (\\Flagged $Suivi)",
    "+FLAGS ($Label1)",
    "-FLAGS (\\Seen $Label1)",
    "+FLAGS (\\Seen \\Answered)",
)
LIST_STATUS_P, STORE_P, FULL_BODY_P = 0.5, 0.5, 0.2
MAX_DELETE = 3  # per cycle, when a mailbox has grown above its size
EXPECTED_NO = "NO [EXPUNGEISSUED]"
_FETCH_UID = re.compile(rb"^\* \d+ FETCH \(.{0,64}?\bUID (\d+)", re.S)
_APPENDUID = re.compile(r"\[APPENDUID \d+ (\d+)\]")


class Stop(Exception):
    """The run's time is up: the client sends no more counted commands."""


class LoginRefused(Exception):
    """LOGIN answered NO or BAD (already counted as a protocol error)."""


@dataclass(frozen=True)
class WorkerSpec:
    target: Target
    mode: str
    clients: tuple[int, ...]
    duration: float
    per_mailbox: int
    seed: int
    cycles: int | None = None  # each client stops after this many cycles (tests)


@dataclass
class Stats:
    latency: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    connect: list[float] = field(default_factory=list)
    sent: int = 0
    answered: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    expected: Counter[str] = field(default_factory=Counter)
    disconnects: int = 0
    sessions: int = 0
    last_answer: float = 0.0

    def error(self, text: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 20:
            self.error_samples.append(text[:300])

    def as_dict(self) -> dict[str, Any]:
        return {
            "latency": dict(self.latency),
            "connect": self.connect,
            "sent": self.sent,
            "answered": self.answered,
            "errors": self.errors,
            "error_samples": self.error_samples,
            "expected": dict(self.expected),
            "disconnects": self.disconnects,
            "sessions": self.sessions,
            "last_answer": self.last_answer,
        }


def quoted(mailbox: str) -> str:
    return f'"{mailbox}"'


class StressClient:
    """One imaptest-like client: its own account choice, random stream and connection."""

    def __init__(self, spec: WorkerSpec, index: int, stats: Stats) -> None:
        self.spec = spec
        self.target = spec.target
        self.index = index
        self.stats = stats
        self.rng = random.Random(f"{spec.seed}/{spec.mode}/{index}")
        self.messages = corpus()
        self.ctx = self.target.client_context()
        self.deadline = float("inf")
        self.conn: Connection | None = None
        self.user = 0

    async def command(self, name: str, text: str, literal: bytes | None = None) -> Reply:
        if time.monotonic() >= self.deadline:
            raise Stop
        conn = self.conn
        assert conn is not None
        stats = self.stats
        stats.sent += 1
        t0 = time.perf_counter()
        reply = await conn.command(text, literal=literal)
        stats.latency[name].append(time.perf_counter() - t0)
        stats.answered += 1
        stats.last_answer = time.monotonic()
        if reply.status != "OK":
            status = f"{reply.status} {reply.text}"
            if status.startswith(EXPECTED_NO):
                stats.expected[f"{name}: {EXPECTED_NO}"] += 1
            else:
                stats.error(f"{self.target.name} user{self.user} {text[:70]}: {status}")
        for line in reply.lines:
            if line.startswith(b"* BAD") or (line.startswith(b"* BYE") and name != "LOGOUT"):
                stats.error(f"{self.target.name} user{self.user} {text[:70]}: {line[:120]!r}")
        return reply

    async def connect(self) -> None:
        t0 = time.perf_counter()
        self.conn = await Connection.open(self.target.imap_tls_port, self.ctx)
        self.stats.connect.append(time.perf_counter() - t0)

    async def login(self, counted: bool) -> None:
        self.user = self.rng.randint(1, self.target.users)
        address = self.target.address(self.user)
        text = f'LOGIN "{address}" "{self.target.password}"'
        if counted:
            reply = await self.command("LOGIN", text)
        else:
            assert self.conn is not None
            reply = await self.conn.command(text)
        if reply.status != "OK":
            if counted:
                raise LoginRefused(address)
            raise ImapError(f"LOGIN {address}: {reply.status} {reply.text}")
        self.stats.sessions += 1

    async def cycle(self) -> None:
        rng = self.rng
        mailbox = quoted(rng.choice(STRESS_MAILBOXES))
        if rng.random() < LIST_STATUS_P:
            await self.command("LIST", 'LIST "" "*"')
            await self.command("STATUS", f"STATUS {mailbox} (MESSAGES UIDNEXT UNSEEN)")
        selected = await self.command("SELECT", f"SELECT {mailbox}")
        if selected.status != "OK":
            return
        exists = selected.exists()
        if exists is None:
            self.stats.error(f"{self.target.name} SELECT {mailbox}: no EXISTS")
            return
        uids: list[bytes] = []
        if exists:
            listing = await self.command("FETCH", "FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE)")
            uids = [m.group(1) for line in listing.lines if (m := _FETCH_UID.match(line))]
        if uids:
            uid = rng.choice(uids).decode()
            await self.command("FETCH2", f"UID FETCH {uid} (BODYSTRUCTURE BODY.PEEK[HEADER])")
            if rng.random() < FULL_BODY_P:
                uid = rng.choice(uids).decode()
                await self.command("FETCH BODY[]", f"UID FETCH {uid} (BODY.PEEK[])")
            if rng.random() < STORE_P:
                change = rng.choice(STORE_CHANGES)
                await self.command("STORE", f"UID STORE {rng.choice(uids).decode()} {change}")
            excess = min(MAX_DELETE, len(uids) - self.spec.per_mailbox + 1)
            if excess > 0:
                victims = b",".join(rng.sample(uids, excess)).decode()
                await self.command(
                    "STORE \\Deleted", f"UID STORE {victims} +FLAGS.SILENT (\\Deleted)"
                )
                await self.command("EXPUNGE", "EXPUNGE")
        flags = " (\\Seen)" if rng.random() < 0.5 else ""
        message = rng.choice(self.messages)
        appended = await self.command("APPEND", f"APPEND {mailbox}{flags}", literal=message)
        if appended.status == "OK" and not _APPENDUID.search(appended.text):
            self.stats.error(f"{self.target.name} APPEND OK without APPENDUID: {appended.text}")

    async def prepare(self) -> None:
        """``stay`` mode: connect and log in before the clock starts."""
        if self.spec.mode == "stay":
            await self.connect()
            await self.login(counted=False)

    async def run(self, deadline: float) -> None:
        self.deadline = deadline
        done = 0
        while time.monotonic() < deadline and done != self.spec.cycles:
            done += 1
            try:
                if self.spec.mode == "stay":
                    if self.conn is None:  # after a disconnect
                        await self.connect()
                        await self.login(counted=True)
                    await self.cycle()
                else:
                    await self.session()
            except Stop:
                break
            except LoginRefused:
                if self.conn is not None:
                    self.conn.abort()
                    self.conn = None
            except (ImapError, OSError, TimeoutError) as exc:
                self.stats.disconnects += 1
                self.stats.error(f"{self.target.name} user{self.user} disconnected: {exc!r}")
                if self.conn is not None:
                    self.conn.abort()
                    self.conn = None
                await asyncio.sleep(0.05)

    async def session(self) -> None:
        """``login`` mode: one session per cycle."""
        if time.monotonic() >= self.deadline:
            raise Stop
        await self.connect()
        try:
            await self.login(counted=True)
            await self.cycle()
            reply = await self.command("LOGOUT", "LOGOUT")
        except Stop:
            await self.finish()
            raise
        if not any(line.startswith(b"* BYE") for line in reply.lines):
            self.stats.error(f"{self.target.name} LOGOUT without BYE")
        assert self.conn is not None
        self.conn.writer.close()  # the server closes its side after the tagged OK
        self.conn = None

    async def finish(self) -> None:
        """LOGOUT (not counted) and close."""
        if self.conn is not None:
            await self.conn.close()
            self.conn = None


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def worker(
    spec: WorkerSpec, queue: Queue[Any], go: Event, start_at: Synchronized[float]
) -> None:
    stats = Stats()
    clients = [StressClient(spec, i, stats) for i in spec.clients]
    try:
        await asyncio.gather(*(c.prepare() for c in clients))
    except (ImapError, OSError, TimeoutError) as exc:
        queue.put(("failed", f"{spec.target.name}: {exc!r}"))
        return
    queue.put(("ready", os.getpid()))
    await asyncio.to_thread(go.wait)
    t0 = start_at.value
    await asyncio.sleep(max(0.0, t0 - time.monotonic()))
    cpu0 = client_cpu()
    await asyncio.gather(*(c.run(t0 + spec.duration) for c in clients))
    cpu = client_cpu() - cpu0
    queue.put(("stopped", os.getpid()))
    await asyncio.gather(*(c.finish() for c in clients), return_exceptions=True)
    queue.put(("result", {**stats.as_dict(), "client_cpu_s": cpu}))


def worker_main(
    spec: WorkerSpec, queue: Queue[Any], go: Event, start_at: Synchronized[float]
) -> None:
    asyncio.run(worker(spec, queue, go, start_at))


def load_context() -> mp.context.ForkServerContext:
    """Load-generator processes come from a fork server that has imported what they need once
    (this module itself is run again in each as its main, hence not preloaded): a run starts
    them in milliseconds, and they inherit nothing of the parent's threads."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["bench.reference", "bench.sidebyside"])
    return ctx


def run_stress(
    target: Target,
    mode: str,
    *,
    clients: int = 10,
    duration: float = 30.0,
    per_mailbox: int = 30,
    procs: int = 2,
    seed: int = 19,
    cycles: int | None = None,
    profiler: Profiler | None = None,
) -> dict[str, Any]:
    """One run of the profile against ``target``; the figures of :func:`summarise`. With
    ``cycles``, each client does that many cycles (sessions, in ``login`` mode) however long
    they take, instead of running for ``duration`` seconds."""
    ctx = load_context()
    queue: Queue[Any] = ctx.Queue()
    go = ctx.Event()
    start_at: Synchronized[float] = ctx.Value("d", 0.0)
    procs = max(1, min(procs, clients))
    specs = [
        WorkerSpec(
            target,
            mode,
            tuple(range(p, clients, procs)),
            float("inf") if cycles else duration,
            per_mailbox,
            seed,
            cycles,
        )
        for p in range(procs)
    ]
    workers = [
        ctx.Process(target=worker_main, args=(s, queue, go, start_at), daemon=True) for s in specs
    ]
    for w in workers:
        w.start()
    results: list[dict[str, Any]] = []

    def receive(within: float) -> tuple[str, Any]:
        """The next message of a worker; a worker that died says so at once."""
        deadline = time.monotonic() + within
        while True:
            try:
                message: tuple[str, Any] = queue.get(timeout=0.5)
                return message
            except queue_module.Empty:
                dead = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"a load-generator process exited {dead[0]}") from None
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no word from the load generator in {within} s") from None

    try:
        for _ in workers:
            kind, value = receive(600)
            if kind == "failed":
                raise RuntimeError(f"a load-generator process could not log in: {value}")
        threads = ThreadClock(target.roots[0]) if target.name == "hygie" else None
        load_before = load_average()
        cpu0 = target.cpu_seconds()
        if threads is not None:
            threads.start()
        if profiler is not None:
            profiler.__enter__()
        t0 = time.monotonic() + 0.05
        start_at.value = t0
        go.set()
        stopped = 0
        while stopped < len(workers):  # a worker's result may come before another stops
            kind, value = receive(600 if cycles else duration + 600)
            if kind == "stopped":
                stopped += 1
            else:
                results.append(value)
        server_cpu = target.cpu_seconds() - cpu0
        busiest = threads.stop() if threads is not None else None
        if profiler is not None:
            profiler.__exit__(None, None, None)
        _, rss, processes = target.usage()
        load_after = load_average()
        while len(results) < len(workers):
            kind, value = receive(120)
            results.append(value)
    finally:
        for w in workers:
            w.join(timeout=30)
            if w.is_alive():
                w.kill()
    return summarise(
        target, mode, clients, procs, t0, results, server_cpu, busiest, rss, processes,
        (load_before, load_after),
    )  # fmt: skip


def summarise(
    target: Target,
    mode: str,
    clients: int,
    procs: int,
    t0: float,
    results: list[dict[str, Any]],
    server_cpu: float,
    busiest: float | None,
    rss: int,
    processes: int,
    load: tuple[float, float],
) -> dict[str, Any]:
    latency: defaultdict[str, list[float]] = defaultdict(list)
    connect: list[float] = []
    expected: Counter[str] = Counter()
    samples: list[str] = []
    for r in results:
        for name, values in r["latency"].items():
            latency[name].extend(values)
        connect.extend(r["connect"])
        expected.update(r["expected"])
        samples.extend(r["error_samples"])
    elapsed = max((r["last_answer"] for r in results), default=t0) - t0
    commands = sum(len(v) for v in latency.values())
    logins = len(latency.get("LOGIN", []))
    client_cpu_s = sum(r["client_cpu_s"] for r in results)

    def per_s(n: int) -> float:
        return round(n / elapsed, 1) if elapsed > 0 else 0.0

    return {
        "server": target.name,
        "label": target.label,
        "mode": mode,
        "clients": clients,
        "load_processes": procs,
        "elapsed_s": round(elapsed, 2),
        "commands": commands,
        "commands_per_s": per_s(commands),
        "logins": logins,
        "logins_per_s": per_s(logins) if mode == "login" else None,
        "sessions": sum(r["sessions"] for r in results),
        "sent": sum(r["sent"] for r in results),
        "answered": sum(r["answered"] for r in results),
        "protocol_errors": sum(r["errors"] for r in results),
        "disconnects": sum(r["disconnects"] for r in results),
        "error_samples": samples[:20],
        "expected_answers": dict(expected),
        "per_command": {
            name: {**latency_ms(latency[name]), "per_s": per_s(len(latency[name]))}
            for name in COMMANDS
            if latency.get(name)
        },
        "connect_tls": latency_ms(connect) if connect else None,
        "server_cpu_s": round(server_cpu, 3),
        "server_cpu_ms_per_command": round(1000 * server_cpu / max(commands, 1), 3),
        "server_cpu_ms_per_session": (
            round(1000 * server_cpu / logins, 2) if mode == "login" and logins else None
        ),
        "server_cores_busy": round(server_cpu / elapsed, 2) if elapsed > 0 else None,
        "server_busiest_thread_share": busiest,
        "server_rss_mib": round(rss / 2**20, 1),
        "server_processes": processes,
        "client_cpu_s": round(client_cpu_s, 3),
        "client_cores_busy": round(client_cpu_s / elapsed, 2) if elapsed > 0 else None,
        "machine_load_1min_before_after": list(load),
    }


# -- the side-by-side run -------------------------------------------------------------------------


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    servers = args.servers.split(",")
    result: dict[str, Any] = {
        "scenario": "imap_stress",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": commit(),
        "parameters": {
            "hygie_processes": workers(args),
            "users": args.users,
            "clients": args.clients,
            "mailboxes": list(STRESS_MAILBOXES),
            "messages_per_mailbox": args.per_mailbox,
            "duration_s": args.duration,
            "pairs": args.pairs,
            "load_processes": args.procs,
            "corpus": {
                "messages": len(corpus()),
                "shapes": shape_counts(),
                "mean_kib": round(sum(map(len, corpus())) / len(corpus()) / 1024, 1),
                "max_kib": round(max(map(len, corpus())) / 1024, 1),
            },
            "profile": (
                f'LIST "" "*" + STATUS {LIST_STATUS_P:.0%}, SELECT, FETCH 1:* (UID FLAGS '
                "RFC822.SIZE ENVELOPE), UID FETCH (BODYSTRUCTURE BODY.PEEK[HEADER]), UID FETCH "
                f"(BODY.PEEK[]) {FULL_BODY_P:.0%}, UID STORE flags/keywords {STORE_P:.0%}, UID "
                "STORE \\Deleted + EXPUNGE above the mailbox size, APPEND"
            ),
            "transport": "IMAP implicit TLS (RFC 8314), LOGIN",
        },
        "environment": machine(),
        "runs": [],
    }
    reference: ReferenceServers | None = None
    t_start = time.perf_counter()
    try:
        targets: list[Target] = []
        with contextlib.ExitStack() as stack:
            server: ServerProcess | None = None
            if "hygie" in servers:
                t = time.perf_counter()
                server = stack.enter_context(
                    hygie_server(args.users, args.per_mailbox, workers=args.workers)
                )
                targets.append(hygie_target(server, args.users, workers(args)))
                result["hygie_setup_s"] = round(time.perf_counter() - t, 1)
            if "reference" in servers:
                t = time.perf_counter()
                reference = ReferenceServers(args.users).start()
                ref = reference.target()
                result["reference_seed"] = asyncio.run(seed_over_imap(ref, args.per_mailbox))
                targets.append(ref)
                result["reference_setup_s"] = round(time.perf_counter() - t, 1)
            result["servers"] = {t.name: t.label for t in targets}
            for mode in args.modes.split(","):
                for pair in range(args.pairs):
                    for target in targets:
                        run = run_stress(
                            target, mode, clients=args.clients, duration=args.duration,
                            per_mailbox=args.per_mailbox, procs=args.procs, seed=pair,
                        )  # fmt: skip
                        run["pair"] = pair
                        result["runs"].append(run)
                        print(brief(run), flush=True)
            if server is not None and not args.no_profile:
                profiler = Profiler(
                    server.pid, args.out, "stress_raw", rate=100, subprocesses=workers(args) > 1
                )
                run = run_stress(
                    targets[0], "stay", clients=args.clients, duration=args.duration,
                    per_mailbox=args.per_mailbox, procs=args.procs, seed=99, profiler=profiler,
                )  # fmt: skip
                result["profiled_run"] = run
                result["profile"] = write_profile(
                    profiler,
                    args.out / "imap_stress_profile.txt",
                    f"Hygie under the IMAP stress profile, sessions staying logged in "
                    f"({args.clients} clients, {args.users} users, {run['elapsed_s']} s, "
                    f"{run['commands_per_s']} commands/s while sampled; commit "
                    f"{result['commit']}, {result['date']})",
                )
            if server is not None:
                result["hygie_exit_code_on_sigterm"] = server.stop(timeout=60)
    finally:
        if reference is not None:
            reference.stop()
    result["total_s"] = round(time.perf_counter() - t_start, 1)
    result["figures"] = figures(result)
    return result


def brief(run: dict[str, Any]) -> str:
    extra = f", {run['logins_per_s']} logins/s" if run["logins_per_s"] is not None else ""
    return (
        f"{run['label']} [{run['mode']}]: {run['commands_per_s']} commands/s{extra}, "
        f"{run['server_cpu_ms_per_command']} ms server CPU/command, "
        f"{run['protocol_errors']} protocol errors, client {run['client_cores_busy']} cores, "
        f"load {run['machine_load_1min_before_after']}"
    )


def figures(result: dict[str, Any]) -> dict[str, Any]:
    """Per mode: each server's medians over its runs, and Hygie / reference per pair."""
    out: dict[str, Any] = {}
    for mode in MODES:
        runs = [r for r in result["runs"] if r["mode"] == mode]
        if not runs:
            continue
        per_server = {}
        for name in ("hygie", "reference"):
            mine = [r for r in runs if r["server"] == name]
            if not mine:
                continue
            per_server[name] = {
                "runs": len(mine),
                "commands_per_s": median_of(mine, lambda r: r["commands_per_s"]),
                "logins_per_s": median_of(mine, lambda r: r["logins_per_s"]),
                "server_cpu_ms_per_command": median_of(
                    mine, lambda r: r["server_cpu_ms_per_command"]
                ),
                "server_cpu_ms_per_session": median_of(
                    mine, lambda r: r["server_cpu_ms_per_session"]
                ),
                "server_cores_busy": median_of(mine, lambda r: r["server_cores_busy"]),
                "server_busiest_thread_share": median_of(
                    mine, lambda r: r["server_busiest_thread_share"]
                ),
                "client_cores_busy": median_of(mine, lambda r: r["client_cores_busy"]),
                "protocol_errors": sum(r["protocol_errors"] for r in mine),
                "per_command": {
                    c: {
                        "p50_ms": median_of(mine, partial(_cmd, command=c, key="p50_ms")),
                        "p99_ms": median_of(mine, partial(_cmd, command=c, key="p99_ms")),
                        "per_s": median_of(mine, partial(_cmd, command=c, key="per_s")),
                    }
                    for c in COMMANDS
                    if any(c in r["per_command"] for r in mine)
                },
                "load_1min": [x for r in mine for x in r["machine_load_1min_before_after"]],
            }
        pairs = pairs_of(runs)
        out[mode] = {
            **per_server,
            "ratio": {
                "commands_per_s": pair_ratio(pairs, lambda r: r["commands_per_s"]),
                "logins_per_s": pair_ratio(pairs, lambda r: r["logins_per_s"]),
                "server_cpu_per_command": pair_ratio(
                    pairs, lambda r: r["server_cpu_ms_per_command"]
                ),
                "pairs": len(pairs),
            },
        }
    return out


def _cmd(run: dict[str, Any], command: str, key: str) -> float | None:
    entry = run["per_command"].get(command)
    return None if entry is None else entry[key]


# -- the report -----------------------------------------------------------------------------------


def limit_note(mode: str, name: str, f: dict[str, Any], cores: int, profile: str) -> str:
    """What bounds one server's figure in one mode, from what was measured."""
    cpu = f["server_cpu_ms_per_command"]
    ceiling = 1000 * cores / cpu if cpu else float("inf")
    text = (
        f"server {f['server_cores_busy']} of {cores} cores busy, {cpu} ms CPU/command "
        f"(≤ {ceiling:.0f} commands/s with every core), load generator "
        f"{f['client_cores_busy']} cores"
    )
    share = f.get("server_busiest_thread_share")
    if share is not None:
        text += f", busiest thread (the event loop) {share:.0%} of a core"
        if share >= 0.85:
            text += ": CPU-bound on one core"
    if mode == "login" and f.get("server_cpu_ms_per_session") is not None:
        text += f"; {f['server_cpu_ms_per_session']} ms server CPU per session (TLS to LOGOUT)"
    if name == "hygie" and profile:
        text += f"; {profile}"
    busy = (f["server_cores_busy"] or 0) + (f["client_cores_busy"] or 0)
    if busy > 0.85 * cores:
        text += "; server and load generator together fill the machine's cores"
    return text + contention(f["load_1min"], cores, f["server_cores_busy"])


def section(result: dict[str, Any]) -> str:
    p, env, figs = result["parameters"], result["environment"], result["figures"]
    cores = env["cpu_count"] or 1
    labels = result.get("servers", {})
    ref_label = labels.get("reference", "reference")
    loads = [x for r in result["runs"] for x in r["machine_load_1min_before_after"]]
    profile = hottest(result.get("profile"))
    rows, notes, commands = [], [], []
    names = {"stay": "sessions stay logged in", "login": "each cycle logs in and out"}
    for mode in MODES:
        if mode not in figs:
            continue
        fm = figs[mode]
        h, ref, ratio = fm.get("hygie"), fm.get("reference"), fm["ratio"]

        def fig(x: dict[str, Any] | None, mode: str = mode) -> str:
            if x is None:
                return "–"
            s = f"**{x['commands_per_s']}** commands/s"
            if mode == "login":
                s += f", {x['logins_per_s']} logins/s"
            return f"{s}; {x['server_cpu_ms_per_command']} ms CPU/command"

        ratio_text = f"**{ratio['commands_per_s']}**" if ratio["commands_per_s"] else "–"
        if mode == "login" and ratio["logins_per_s"]:
            ratio_text += f" (logins {ratio['logins_per_s']})"
        errors = " / ".join(str(x["protocol_errors"]) for x in (h, ref) if x is not None)
        rows.append(
            f"| {p['clients']} clients, {p['users']} users, {names[mode]} | {fig(h)} | "
            f"{fig(ref)} | {ratio_text} | {errors} |"
        )
        for name, x in (("hygie", h), ("reference", ref)):
            if x is not None:
                label = labels.get(name, name)
                note = limit_note(mode, name, x, cores, profile if mode == "stay" else "")
                notes.append(f"- {names[mode]}, {label}: {note}.")
        for c in COMMANDS:
            hc = (h or {}).get("per_command", {}).get(c)
            rc = (ref or {}).get("per_command", {}).get(c)
            if hc is None and rc is None:
                continue

            def lat(x: dict[str, Any] | None) -> str:
                return "–" if x is None else f"{x['p50_ms']} / {x['p99_ms']}"

            commands.append(f"| {mode} | `{c}` | {lat(hc)} | {lat(rc)} |")
    pairs = max((figs[m]["ratio"]["pairs"] for m in figs), default=0)
    corpus_info = p["corpus"]
    return "\n".join(
        [
            "<!-- imap_stress -->",
            "# Benchmark: IMAP stress side by side (Hygie / Dovecot)",
            "",
            "Issue 19 item 5. Produced by `make bench` (`python -m bench.imap_stress --out "
            f"bench/results`); raw figures in `imap_stress.json`. Commit {result['commit']}, "
            f"{result['date']}; {env['cpu_count']} cores ({env['cpu_model']}), Python "
            f"{env['python']}; whole run {result['total_s']} s.",
            "",
            f"imaptest's default profile over implicit TLS: {p['clients']} clients, "
            f"{p['users']} users, each cycle on a random mailbox of {len(p['mailboxes'])} "
            f"(kept at about {p['messages_per_mailbox']} messages): {p['profile']}. APPENDed "
            f"messages come from a corpus of {corpus_info['messages']} ({corpus_info['shapes']}; "
            f"mean {corpus_info['mean_kib']} KiB, max {corpus_info['max_kib']} KiB). "
            f"{pairs} pair{'s' if pairs != 1 else ''} of {p['duration_s']:.0f} s runs, "
            "alternating Hygie and "
            f"{ref_label}; each figure is the median of a server's runs, the ratio the median "
            f"over the pairs of Hygie / reference. Machine load (1-minute average) during "
            f"the runs: {min(loads, default=0)}–{max(loads, default=0)} on {cores} cores "
            "(shared with other work: when the load exceeds the cores, rates are lower bounds, "
            "and the scheduler gives a single-process server such as Hygie a smaller share of "
            "the machine than Dovecot's many processes, so the CPU per command is the fairer "
            "comparison).",
            "",
            "| load | Hygie | " + ref_label + " | ratio | protocol errors (Hygie / ref.) |",
            "|---|---|---|---|---|",
            *rows,
            "",
            "Latency by command, p50 / p99 ms (medians over the runs):",
            "",
            f"| mode | command | Hygie | {ref_label} |",
            "|---|---|---|---|",
            *commands,
            "",
            "What limits each figure:",
            *notes,
            "<!-- /imap_stress -->",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.imap_stress", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--quick", action="store_true", help="1 pair of 8 s runs, 20 users")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--per-mailbox", type=int, default=30)
    parser.add_argument("--procs", type=int, default=2, help="load-generator processes")
    parser.add_argument("--modes", default="stay,login")
    parser.add_argument("--servers", default="hygie,reference")
    parser.add_argument("--no-profile", action="store_true", help="no py-spy run of Hygie")
    parser.add_argument(
        "--workers", type=int, default=None,
        help="hygie serve --workers N (default 1; 0: one per core)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.quick:
        args.pairs, args.duration, args.users, args.per_mailbox = 1, 8.0, 20, 10
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        result = benchmark(args)
    except ReferenceUnavailable as exc:
        print(f"reference servers unavailable: {exc}", file=sys.stderr)
        return 2
    name = "imap_stress_quick.json" if args.quick else "imap_stress.json"
    (args.out / name).write_text(json.dumps(result, indent=2) + "\n")
    if not args.quick:
        replace_section(args.out, "imap_stress", section(result))
    else:
        print(section(result))
    for mode, f in result["figures"].items():
        print(f"{mode}: Hygie / reference = {f['ratio']}")
    errors = sum(r["protocol_errors"] for r in result["runs"])
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
