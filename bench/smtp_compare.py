"""SMTP submission side by side (issue 19 item 5): the same load against Hygie and against
Postfix → Dovecot LMTP, in the same run, alternating, measured until every message is delivered
and pushed to an IDLE client.

    python -m bench.smtp_compare --out bench/results [--quick] [--pairs 3] [--messages 2000]
        [--sessions 20] [--per-connection 10,100] [--size 10240] [--users 100]

Load: ``--sessions`` concurrent submission sessions (STARTTLS + AUTH PLAIN, PIPELINING when
offered); each connection authenticates as one of the ``--users`` accounts, sends
``--per-connection`` messages of ``--size`` bytes, QUITs, and the session opens the next
connection until ``--messages`` are sent. Message ``i`` goes to ``user{i % users + 1}`` of the
server's domain, so the 100 recipients share the messages evenly.

Delivery is seen the same way on both servers: one IMAP IDLE session per recipient's INBOX
(opened before the runs, kept through them) counts the ``* n EXISTS`` it is pushed; a run ends
when they add up to every message sent. For the reference, files in the maildirs are also
counted (polled every 50 ms): when Dovecot's LMTP wrote the last one.

Per run and server: messages/s end to end (first connection to the last EXISTS), accepted/s
(to the last 250), latency by step (TLS connection, AUTH, one message's MAIL…250), server CPU
per message from ``/proc`` (Hygie's process tree; every Dovecot and Postfix process, the
exited ones included), client CPU. Then the medians over the pairs and Hygie / reference. One
more Hygie run with ``--per-connection`` 10 is sampled with py-spy: ``smtp_compare_profile.txt``.

Writes ``smtp_compare.json`` and the ``smtp_compare`` section of ``summary.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import re
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from bench.harness import ServerProcess
from bench.imap_load import Connection, ImapError, Profiler
from bench.imap_stress import client_cpu
from bench.reference import (
    ReferenceServers,
    ReferenceUnavailable,
    Target,
    commit,
    hygie_server,
    hygie_target,
    machine,
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
from bench.smtp_load import Session
from bench.summary import replace_section

_EXISTS = re.compile(rb"^\* (\d+) EXISTS")
STEPS = ("connect+STARTTLS", "AUTH", "message", "QUIT")


def build_message(index: int, sender: str, recipient: str, size: int) -> bytes:
    """A ``size``-byte text message (±1 line), From the authenticated sender."""
    head = (
        f"From: <{sender}>\r\nTo: <{recipient}>\r\nSubject: Compte rendu {index}\r\n"
        f"Message-ID: <compare-{index}-{time.monotonic_ns()}@bench.test>\r\n"
        "Date: Mon, 17 Nov 2025 09:30:00 +0100\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
    ).encode()
    line = f"Compte rendu {index:06d}: constantes normales, pas de traitement. ".encode()
    line = (line * 2)[:76] + b"\r\n"
    return head + line * max(1, (size - len(head)) // len(line))


# -- delivery seen through IDLE -------------------------------------------------------------------


class IdleWatch:
    """One IDLE session per user's INBOX; ``total`` is how many messages they were told of."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.base: list[int] = []
        self.seen: list[int] = []
        self.conns: list[Connection] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.changed = asyncio.Event()
        self.errors: list[str] = []

    @property
    def total(self) -> int:
        return sum(s - b for s, b in zip(self.seen, self.base, strict=True))

    async def open(self, concurrency: int = 8) -> float:
        """Log every user in, SELECT INBOX, IDLE; returns the seconds it took."""
        t0 = time.perf_counter()
        gate = asyncio.Semaphore(concurrency)
        users = self.target.users
        self.base = [0] * users
        self.seen = [0] * users
        self.conns = [None] * users  # type: ignore[list-item]

        async def one(i: int) -> None:
            async with gate:
                conn = await Connection.open(
                    self.target.imap_tls_port, self.target.client_context()
                )
                await conn.login(self.target.address(i + 1), self.target.password)
                reply = await conn.command("SELECT INBOX")
                if reply.status != "OK" or reply.exists() is None:
                    raise ImapError(f"SELECT INBOX: {reply.status} {reply.text}")
                self.base[i] = self.seen[i] = reply.exists() or 0
                conn.writer.write(b"W1 IDLE\r\n")
                while not (await asyncio.wait_for(conn.line(), 60)).startswith(b"+"):
                    pass
                self.conns[i] = conn

        await asyncio.gather(*(one(i) for i in range(users)))
        self.tasks = [asyncio.create_task(self.read(i)) for i in range(users)]
        return time.perf_counter() - t0

    async def read(self, i: int) -> None:
        conn = self.conns[i]
        try:
            while True:
                line = await conn.line()
                m = _EXISTS.match(line)
                if m is not None:
                    self.seen[i] = int(m.group(1))
                    self.changed.set()
                elif line.startswith((b"* BYE", b"* BAD", b"W1 ")):
                    self.errors.append(f"user{i + 1}: {line[:100]!r}")
                    return
        except (ImapError, OSError) as exc:
            self.errors.append(f"user{i + 1}: {exc!r}")

    def rebase(self) -> None:
        self.base = list(self.seen)

    async def wait_total(self, total: int, within: float) -> float | None:
        """perf_counter() when :attr:`total` reached ``total``, or None after ``within`` s."""
        deadline = time.perf_counter() + within
        while self.total < total:
            self.changed.clear()
            left = deadline - time.perf_counter()
            if left <= 0 or self.errors:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(left, 1.0))
        return time.perf_counter()

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for conn in self.conns:
            if conn is not None:
                conn.abort()


async def maildir_done(reference: ReferenceServers, users: int, total: int) -> float:
    """perf_counter() when the maildirs hold ``total`` messages (polled every 50 ms)."""
    # nothing to await on a directory (inotify is not in the standard library): poll
    while reference.maildir_count(range(1, users + 1)) < total:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    return time.perf_counter()


# -- the load -------------------------------------------------------------------------------------


@dataclass
class LoadStats:
    steps: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    sent: int = 0
    connections: int = 0
    last_ack: float = 0.0
    errors: list[str] = field(default_factory=list)


async def open_session(target: Target, user: str, stats: LoadStats) -> Session:
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", target.smtp_port)
    session = Session(reader, writer)
    await session.expect(220)
    await session.command("EHLO bench.test", 250)
    await session.command("STARTTLS", 220)
    await writer.start_tls(target.client_context(), server_hostname="127.0.0.1")
    ehlo = await session.command("EHLO bench.test", 250)
    session.pipelining = any(line[4:].upper().startswith(b"PIPELINING") for line in ehlo)
    t1 = time.perf_counter()
    stats.steps["connect+STARTTLS"].append(t1 - t0)
    token = base64.b64encode(f"\0{user}\0{target.password}".encode()).decode()
    await session.command(f"AUTH PLAIN {token}", 235)
    stats.steps["AUTH"].append(time.perf_counter() - t1)
    return session


async def submit(
    target: Target, messages: int, sessions: int, per_connection: int, size: int
) -> LoadStats:
    stats = LoadStats()
    chunks = iter(range(0, messages, per_connection))
    users = target.users

    async def worker() -> None:
        for start in chunks:  # shared iterator: each chunk taken once (one event loop)
            k = start // per_connection
            sender = target.address(k % users + 1)
            session = await open_session(target, sender, stats)
            stats.connections += 1
            for i in range(start, min(start + per_connection, messages)):
                recipient = target.address(i % users + 1)
                message = build_message(i, sender, recipient, size)
                t0 = time.perf_counter()
                await session.send(sender, recipient, message)
                done = time.perf_counter()
                stats.steps["message"].append(done - t0)
                stats.last_ack = done
                stats.sent += 1
            t0 = time.perf_counter()
            await session.close()
            stats.steps["QUIT"].append(time.perf_counter() - t0)

    results = await asyncio.gather(*(worker() for _ in range(sessions)), return_exceptions=True)
    stats.errors = [repr(r) for r in results if isinstance(r, BaseException)]
    return stats


async def one_run(
    target: Target,
    watch: IdleWatch,
    reference: ReferenceServers | None,
    args: argparse.Namespace,
    per_connection: int,
    profiler: Profiler | None = None,
) -> dict[str, Any]:
    messages = args.messages
    watch.rebase()
    maildir_task = None
    if reference is not None:
        start_count = reference.maildir_count(range(1, target.users + 1))
        maildir_task = asyncio.create_task(
            maildir_done(reference, target.users, start_count + messages)
        )
    threads = ThreadClock(target.roots[0]) if target.name == "hygie" else None
    if profiler is not None:
        profiler.__enter__()
    load_before = load_average()
    cpu0, client0 = target.cpu_seconds(), client_cpu()
    if threads is not None:
        threads.start()
    t0 = time.perf_counter()
    stats = await submit(target, messages, args.sessions, per_connection, args.size)
    t_idle = await watch.wait_total(stats.sent, within=args.delivery_timeout)
    server_cpu = target.cpu_seconds() - cpu0
    client = client_cpu() - client0
    busiest = threads.stop() if threads is not None else None
    if profiler is not None:
        profiler.__exit__(None, None, None)
    load_after = load_average()
    t_maildir = None
    if maildir_task is not None:
        try:
            t_maildir = await asyncio.wait_for(maildir_task, 30)
        except TimeoutError:
            t_maildir = None
    end = t_idle or time.perf_counter()
    elapsed = end - t0
    accepted = stats.last_ack - t0 if stats.sent else None
    _, rss, processes = target.usage()
    return {
        "server": target.name,
        "label": target.label,
        "per_connection": per_connection,
        "messages": messages,
        "sent": stats.sent,
        "connections": stats.connections,
        "delivered_idle": watch.total,
        "all_delivered": t_idle is not None and stats.sent == messages,
        "errors": stats.errors[:10] + watch.errors[:10],
        "elapsed_s": round(elapsed, 3),
        "messages_per_s": round(stats.sent / elapsed, 1) if t_idle else None,
        "accepted_s": round(accepted, 3) if accepted else None,
        "accepted_per_s": round(stats.sent / accepted, 1) if accepted else None,
        "maildir_complete_s": round(t_maildir - t0, 3) if t_maildir else None,
        "steps": {name: latency_ms(stats.steps[name]) for name in STEPS if stats.steps[name]},
        "server_cpu_s": round(server_cpu, 3),
        "server_cpu_ms_per_message": round(1000 * server_cpu / max(stats.sent, 1), 3),
        "server_cores_busy": round(server_cpu / elapsed, 2) if elapsed > 0 else None,
        "server_busiest_thread_share": busiest,
        "server_rss_mib": round(rss / 2**20, 1),
        "server_processes": processes,
        "client_cpu_s": round(client, 3),
        "client_cores_busy": round(client / elapsed, 2) if elapsed > 0 else None,
        "machine_load_1min_before_after": [load_before, load_after],
    }


async def side_by_side(
    args: argparse.Namespace,
    targets: list[Target],
    reference: ReferenceServers | None,
    server: ServerProcess | None,
    result: dict[str, Any],
) -> None:
    watches = {}
    for target in targets:
        watch = IdleWatch(target)
        result.setdefault("idle_open_s", {})[target.name] = round(await watch.open(), 1)
        watches[target.name] = watch
    try:
        for per_connection in args.per_connection:
            for pair in range(args.pairs):
                for target in targets:
                    ref = reference if target.name == "reference" else None
                    run = await one_run(target, watches[target.name], ref, args, per_connection)
                    run["pair"] = pair
                    result["runs"].append(run)
                    print(brief(run), flush=True)
        if server is not None and not args.no_profile:
            profiler = Profiler(
                server.pid, args.out, "smtp_raw", rate=100, subprocesses=workers(args) > 1
            )
            per_connection = args.per_connection[0]
            run = await one_run(targets[0], watches["hygie"], None, args, per_connection, profiler)
            result["profiled_run"] = run
            result["profile"] = write_profile(
                profiler,
                args.out / "smtp_compare_profile.txt",
                f"Hygie under SMTP submission ({args.sessions} sessions, {per_connection} × "
                f"{args.size // 1024} KiB messages per connection, {args.messages} messages, "
                f"until pushed to IDLE; {run['messages_per_s']} msg/s while sampled; commit "
                f"{result['commit']}, {result['date']})",
            )
    finally:
        for watch in watches.values():
            await watch.close()


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    servers = args.servers.split(",")
    result: dict[str, Any] = {
        "scenario": "smtp_compare",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": commit(),
        "parameters": {
            "hygie_processes": workers(args),
            "messages": args.messages,
            "sessions": args.sessions,
            "per_connection": args.per_connection,
            "message_size": args.size,
            "users": args.users,
            "pairs": args.pairs,
            "transport": "submission, STARTTLS + AUTH PLAIN, PIPELINING when offered",
            "delivered": "one IMAP IDLE session per recipient INBOX counts EXISTS",
        },
        "environment": machine(),
        "runs": [],
    }
    reference: ReferenceServers | None = None
    t_start = time.perf_counter()
    try:
        with contextlib.ExitStack() as stack:
            targets: list[Target] = []
            server: ServerProcess | None = None
            if "hygie" in servers:
                server = stack.enter_context(
                    hygie_server(args.users, per_mailbox=0, workers=args.workers)
                )
                targets.append(hygie_target(server, args.users, workers(args)))
            if "reference" in servers:
                reference = ReferenceServers(args.users).start()
                targets.append(reference.target())
            result["servers"] = {t.name: t.label for t in targets}
            asyncio.run(side_by_side(args, targets, reference, server, result))
            if server is not None:
                result["hygie_exit_code_on_sigterm"] = server.stop(timeout=60)
    finally:
        if reference is not None:
            reference.stop()
    result["total_s"] = round(time.perf_counter() - t_start, 1)
    result["figures"] = figures(result)
    return result


def brief(run: dict[str, Any]) -> str:
    return (
        f"{run['label']} [{run['per_connection']}/connection]: {run['messages_per_s']} msg/s "
        f"delivered ({run['accepted_per_s']} accepted/s), {run['server_cpu_ms_per_message']} ms "
        f"server CPU/msg, errors {len(run['errors'])}, client {run['client_cores_busy']} cores, "
        f"load {run['machine_load_1min_before_after']}"
    )


def figures(result: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for per_connection in result["parameters"]["per_connection"]:
        runs = [r for r in result["runs"] if r["per_connection"] == per_connection]
        entry: dict[str, Any] = {}
        for name in ("hygie", "reference"):
            mine = [r for r in runs if r["server"] == name]
            if not mine:
                continue
            entry[name] = {
                "runs": len(mine),
                "messages_per_s": median_of(mine, lambda r: r["messages_per_s"]),
                "accepted_per_s": median_of(mine, lambda r: r["accepted_per_s"]),
                "server_cpu_ms_per_message": median_of(
                    mine, lambda r: r["server_cpu_ms_per_message"]
                ),
                "server_cores_busy": median_of(mine, lambda r: r["server_cores_busy"]),
                "server_busiest_thread_share": median_of(
                    mine, lambda r: r["server_busiest_thread_share"]
                ),
                "client_cores_busy": median_of(mine, lambda r: r["client_cores_busy"]),
                "maildir_complete_s": median_of(mine, lambda r: r["maildir_complete_s"]),
                "elapsed_s": median_of(mine, lambda r: r["elapsed_s"]),
                "all_delivered": all(r["all_delivered"] for r in mine),
                "steps": {
                    step: {
                        "p50_ms": median_of(mine, partial(_step, step=step, key="p50_ms")),
                        "p99_ms": median_of(mine, partial(_step, step=step, key="p99_ms")),
                    }
                    for step in STEPS
                },
                "load_1min": [x for r in mine for x in r["machine_load_1min_before_after"]],
            }
        pairs = pairs_of(runs)
        entry["ratio"] = {
            "messages_per_s": pair_ratio(pairs, lambda r: r["messages_per_s"]),
            "accepted_per_s": pair_ratio(pairs, lambda r: r["accepted_per_s"]),
            "server_cpu_per_message": pair_ratio(pairs, lambda r: r["server_cpu_ms_per_message"]),
            "pairs": len(pairs),
        }
        out[str(per_connection)] = entry
    return out


def _step(run: dict[str, Any], step: str, key: str) -> float | None:
    entry = run["steps"].get(step)
    return None if entry is None else entry[key]


# -- the report -----------------------------------------------------------------------------------


def limit_note(name: str, f: dict[str, Any], cores: int, profile: str) -> str:
    cpu = f["server_cpu_ms_per_message"]
    ceiling = 1000 * cores / cpu if cpu else float("inf")
    auth = f["steps"]["AUTH"]
    text = (
        f"server {f['server_cores_busy']} of {cores} cores busy, {cpu} ms CPU/message "
        f"(≤ {ceiling:.0f} msg/s with every core), load generator and IDLE clients "
        f"{f['client_cores_busy']} cores; AUTH p50 {auth['p50_ms']} ms"
    )
    share = f.get("server_busiest_thread_share")
    if share is not None:
        text += f", busiest thread (the event loop) {share:.0%} of a core"
        if share >= 0.85:
            text += ": CPU-bound on one core"
    if f.get("maildir_complete_s") is not None:
        text += (
            f"; the last file was in its maildir after {f['maildir_complete_s']} s, the last "
            f"EXISTS after {f['elapsed_s']} s"
        )
    if name == "hygie" and profile:
        text += f"; {profile}"
    return text + contention(f["load_1min"], cores, f["server_cores_busy"])


def section(result: dict[str, Any]) -> str:
    p, env, figs = result["parameters"], result["environment"], result["figures"]
    cores = env["cpu_count"] or 1
    labels = result.get("servers", {})
    ref_label = labels.get("reference", "reference")
    loads = [x for r in result["runs"] for x in r["machine_load_1min_before_after"]]
    profile = hottest(result.get("profile"))
    rows, notes, steps = [], [], []
    for key, f in figs.items():
        h, ref, ratio = f.get("hygie"), f.get("reference"), f["ratio"]

        def fig(x: dict[str, Any] | None) -> str:
            if x is None:
                return "–"
            done = "" if x["all_delivered"] else " (not all delivered)"
            return (
                f"**{x['messages_per_s']}** msg/s delivered{done} ({x['accepted_per_s']} "
                f"accepted/s); {x['server_cpu_ms_per_message']} ms CPU/message"
            )

        ratio_text = f"**{ratio['messages_per_s']}**" if ratio["messages_per_s"] else "–"
        if ratio["server_cpu_per_message"]:
            ratio_text += f" (CPU/message × {ratio['server_cpu_per_message']})"
        rows.append(
            f"| {p['sessions']} sessions, {key} × {p['message_size'] // 1024} KiB per "
            f"connection, {p['messages']} messages to {p['users']} recipients | {fig(h)} | "
            f"{fig(ref)} | {ratio_text} |"
        )
        for name, x in (("hygie", h), ("reference", ref)):
            if x is not None:
                label = labels.get(name, name)
                note = limit_note(
                    name, x, cores, profile if key == str(p["per_connection"][0]) else ""
                )
                notes.append(f"- {key} per connection, {label}: {note}.")
        for step in STEPS:

            def lat(x: dict[str, Any] | None, step: str = step) -> str:
                if x is None or x["steps"][step]["p50_ms"] is None:
                    return "–"
                return f"{x['steps'][step]['p50_ms']} / {x['steps'][step]['p99_ms']}"

            steps.append(f"| {key} | {step} | {lat(h)} | {lat(ref)} |")
    pairs = max((f["ratio"]["pairs"] for f in figs.values()), default=0)
    return "\n".join(
        [
            "<!-- smtp_compare -->",
            "# Benchmark: SMTP submission side by side (Hygie / Postfix → Dovecot)",
            "",
            "Issue 19 item 5. Produced by `make bench` (`python -m bench.smtp_compare --out "
            f"bench/results`); raw figures in `smtp_compare.json`. Commit {result['commit']}, "
            f"{result['date']}; {env['cpu_count']} cores ({env['cpu_model']}), Python "
            f"{env['python']}; whole run {result['total_s']} s.",
            "",
            f"Submission over STARTTLS + AUTH PLAIN (one AUTH per connection, as a user of "
            f"the server's domain), {p['sessions']} concurrent sessions, each message to one "
            f"of {p['users']} recipients; a run ends when one IMAP IDLE session per recipient "
            "INBOX has been pushed an EXISTS for every message (the same method on both "
            f"servers). {pairs} pair{'s' if pairs != 1 else ''} per load, alternating Hygie "
            f"and {ref_label}; figures are "
            "medians of a server's runs, ratios medians over the pairs of Hygie / reference. "
            f"Machine load (1-minute average) during the runs: {min(loads, default=0)}–"
            f"{max(loads, default=0)} on {cores} cores (shared with other work: when the load "
            "exceeds the cores, rates are lower bounds and the CPU per message the fairer "
            "comparison, a single-process server getting a smaller share of the machine than "
            "Postfix's and Dovecot's many processes).",
            "",
            f"| load | Hygie | {ref_label} | ratio |",
            "|---|---|---|---|",
            *rows,
            "",
            "Latency by step, p50 / p99 ms (medians over the runs):",
            "",
            f"| per connection | step | Hygie | {ref_label} |",
            "|---|---|---|---|",
            *steps,
            "",
            "What limits each figure:",
            *notes,
            "<!-- /smtp_compare -->",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.smtp_compare", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--quick", action="store_true", help="1 pair of 200 messages, 20 users")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--per-connection", default="10,100")
    parser.add_argument("--size", type=int, default=10 * 1024)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--delivery-timeout", type=float, default=300.0)
    parser.add_argument("--servers", default="hygie,reference")
    parser.add_argument("--no-profile", action="store_true", help="no py-spy run of Hygie")
    parser.add_argument(
        "--workers", type=int, default=None,
        help="hygie serve --workers N (default 1; 0: one per core)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.quick:
        args.pairs, args.messages, args.users = 1, 200, 20
    args.per_connection = [int(x) for x in str(args.per_connection).split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        result = benchmark(args)
    except ReferenceUnavailable as exc:
        print(f"reference servers unavailable: {exc}", file=sys.stderr)
        return 2
    name = "smtp_compare_quick.json" if args.quick else "smtp_compare.json"
    (args.out / name).write_text(json.dumps(result, indent=2) + "\n")
    if not args.quick:
        replace_section(args.out, "smtp_compare", section(result))
    else:
        print(section(result))
    ok = all(r["all_delivered"] and not r["errors"] for r in result["runs"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
