"""SMTP submission load (issue 2 item 9): N concurrent sessions over STARTTLS + AUTH PLAIN, each
reusing its connection for many messages, every message acknowledged only once durable.

    python -m bench.smtp_load --out bench/results [--messages 5000] [--concurrency 20]
        [--size 10240] [--database sqlite|postgresql] [--recipients 4]

Starts its own ``hygie serve`` (``bench.harness``) on a fresh data directory — on SQLite, or on
a throwaway PostgreSQL cluster (``tests.support.pgcluster``) — sends the messages, checks over
IMAP that every one was delivered, and writes ``smtp_load[_postgresql].json`` and ``summary.md``.

The client is one asyncio process speaking SMTP on raw streams (no smtplib threads): with
PIPELINING, a message costs it one write of MAIL+RCPT+DATA, one of the body, and four short
reply parses, so on a 2-core machine it stays far from a core while the server gets the rest.
Its own CPU time is recorded so that this can be checked.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import imaplib
import json
import os
import platform
import re
import resource
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.harness import ServerProcess

TARGET_MSG_PER_S = 500.0
SENDER = ("sender@hygie.test", "bench-sender-password")
PASSWORD = "bench-recipient-password"


class SmtpError(Exception):
    pass


@dataclass
class Stats:
    sent: int = 0
    latencies: list[float] = field(default_factory=list)
    # perf_counter() when each session was ready (TLS + AUTH done) and when each 250 came.
    opened: list[float] = field(default_factory=list)
    acknowledged: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def build_message(index: int, recipient: str, size: int) -> bytes:
    """A ``size``-byte message (±1 line) with a unique subject, CRLF lines, no leading dots."""
    head = (
        f"From: <{SENDER[0]}>\r\nTo: <{recipient}>\r\nSubject: bench {index}\r\n"
        f"Message-ID: <bench-{index}@client.test>\r\nDate: Mon, 17 Nov 2025 09:30:00 +0100\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
    ).encode()
    line = f"Compte rendu {index:06d}: constantes normales, pas de traitement. ".encode()
    line = (line * 2)[:76] + b"\r\n"
    body = line * max(1, (size - len(head)) // len(line))
    return head + body


class Session:
    """One SMTP submission session on asyncio streams (RFC 5321, 3207, 4954, 2920)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.pipelining = False

    async def reply(self) -> tuple[int, list[bytes]]:
        lines = []
        while True:
            line = await self.reader.readline()
            if not line:
                raise SmtpError("connection closed")
            lines.append(line)
            if line[3:4] != b"-":
                return int(line[:3]), lines

    async def expect(self, code: int) -> list[bytes]:
        got, lines = await self.reply()
        if got != code:
            raise SmtpError(f"expected {code}, got {b''.join(lines)!r}")
        return lines

    async def command(self, line: str, code: int) -> list[bytes]:
        self.writer.write(line.encode() + b"\r\n")
        return await self.expect(code)

    @classmethod
    async def open(cls, server: ServerProcess, user: str, password: str) -> Session:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.smtp_port)
        session = cls(reader, writer)
        await session.expect(220)
        await session.command("EHLO bench.test", 250)
        await session.command("STARTTLS", 220)
        await writer.start_tls(server.ssl_context(), server_hostname="127.0.0.1")
        ehlo = await session.command("EHLO bench.test", 250)
        session.pipelining = any(line[4:].upper().startswith(b"PIPELINING") for line in ehlo)
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        await session.command(f"AUTH PLAIN {token}", 235)
        return session

    async def send(self, sender: str, recipient: str, message: bytes) -> None:
        envelope = [f"MAIL FROM:<{sender}>", f"RCPT TO:<{recipient}>", "DATA"]
        if self.pipelining:  # RFC 2920: the three commands in one write, then the replies
            self.writer.write("".join(f"{c}\r\n" for c in envelope).encode())
            await self.expect(250)
            await self.expect(250)
            await self.expect(354)
        else:
            await self.command(envelope[0], 250)
            await self.command(envelope[1], 250)
            await self.command(envelope[2], 354)
        self.writer.write(message + b".\r\n")
        await self.expect(250)

    async def close(self) -> None:
        try:
            await self.command("QUIT", 221)
        finally:
            self.writer.close()


async def run_load(
    server: ServerProcess, recipients: list[str], messages: int, concurrency: int, size: int
) -> Stats:
    stats = Stats()
    next_index = iter(range(messages))

    async def worker() -> None:
        session = await Session.open(server, *SENDER)
        stats.opened.append(time.perf_counter())
        try:
            for i in next_index:  # shared iterator: each index taken once (single event loop)
                recipient = recipients[i % len(recipients)]
                message = build_message(i, recipient, size)
                t0 = time.perf_counter()
                await session.send(SENDER[0], recipient, message)
                done = time.perf_counter()
                stats.latencies.append(done - t0)
                stats.acknowledged.append(done)
                stats.sent += 1
        finally:
            await session.close()

    results = await asyncio.gather(*(worker() for _ in range(concurrency)), return_exceptions=True)
    stats.errors = [repr(r) for r in results if isinstance(r, BaseException)]
    return stats


class ServerMonitor:
    """CPU seconds (user+system, the server and its children) and peak RSS of the server."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak_rss = 0
        self.peak_at = 0.0
        self.last_rss = 0
        self._t0 = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def processes(self) -> list[psutil.Process]:
        return [self.process, *self.process.children(recursive=True)]

    def cpu_seconds(self) -> float:
        total = 0.0
        for p in self.processes():
            try:
                t = p.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
            except psutil.NoSuchProcess:
                pass
        return total

    def threads(self) -> list[tuple[int, float]]:
        try:
            return sorted(
                ((t.id, t.user_time + t.system_time) for t in self.process.threads()),
                key=lambda x: -x[1],
            )
        except psutil.NoSuchProcess:
            return []

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                rss = sum(p.memory_info().rss for p in self.processes())
                self.last_rss = rss
                if rss > self.peak_rss:
                    self.peak_rss, self.peak_at = rss, time.perf_counter() - self._t0
            except psutil.NoSuchProcess:
                pass
            self._stop.wait(self.interval)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def count_delivered(server: ServerProcess, recipients: list[str]) -> int:
    total = 0
    for address in recipients:
        client = imaplib.IMAP4_SSL(
            "127.0.0.1", server.imap_tls_port, ssl_context=server.ssl_context(), timeout=120
        )
        try:
            client.login(address, PASSWORD)
            typ, data = client.select("INBOX", readonly=True)
            if typ != "OK":
                raise RuntimeError(f"SELECT INBOX for {address}: {typ} {data}")
            total += int(data[0] or 0)
        finally:
            client.logout()
    return total


def client_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def environment(database: str, blob_store: str) -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        ),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "database": database,
        "blob_store": blob_store,
    }


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    recipients = [f"bench{i}@hygie.test" for i in range(1, args.recipients + 1)]
    users = {SENDER[0]: SENDER[1], **{r: PASSWORD for r in recipients}}
    cluster = None
    database_url = None
    blob_store = args.blob_store or ("database" if args.database == "postgresql" else "file")
    if args.database == "postgresql":
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from tests.support.pgcluster import PgCluster

        cluster = PgCluster().start()
        database_url = cluster.create_database("hygie_bench")
    server = ServerProcess(
        users=users, database_url=database_url, env={"HYGIE_STORAGE_BLOB_STORE": blob_store}
    )
    try:
        server.start()
        monitor = ServerMonitor(server.pid)
        rss_idle = psutil.Process(server.pid).memory_info().rss
        monitor.start()
        db_monitor = None
        if cluster is not None:  # PostgreSQL's own processes, not counted in the server's CPU
            postmaster = int((cluster.data_dir / "postmaster.pid").read_text().split()[0])
            db_monitor = ServerMonitor(postmaster)
        db0 = db_monitor.cpu_seconds() if db_monitor else 0.0
        load_before = os.getloadavg()[0]
        cpu0, client0, t0 = monitor.cpu_seconds(), client_cpu_seconds(), time.perf_counter()
        stats = asyncio.run(
            run_load(server, recipients, args.messages, args.concurrency, args.size)
        )
        elapsed = time.perf_counter() - t0
        load_after = os.getloadavg()[0]
        server_cpu = monitor.cpu_seconds() - cpu0
        client_cpu = client_cpu_seconds() - client0
        db_cpu = db_monitor.cpu_seconds() - db0 if db_monitor else None
        threads = monitor.threads()
        monitor.stop()
        delivered = count_delivered(server, recipients)
        exit_code = server.stop()
    finally:
        server.close()
        if cluster is not None:
            cluster.stop()

    rate = stats.sent / elapsed if elapsed else 0.0
    # Once every session has logged in (each login is an argon2id verification, two at a
    # time), the rate the sessions then sustain: the same run, without the login ramp.
    all_open = max(stats.opened, default=t0)
    after = [t for t in stats.acknowledged if t > all_open]
    steady = len(after) / (max(after) - all_open) if len(after) > 1 else 0.0
    lat = sorted(stats.latencies) or [0.0]
    return {
        "scenario": "smtp_load",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "parameters": {
            "messages": args.messages,
            "concurrency": args.concurrency,
            "message_size": args.size,
            "recipients": args.recipients,
            "transport": "STARTTLS + AUTH PLAIN, PIPELINING when offered, one session per worker",
        },
        "results": {
            "acknowledged": stats.sent,
            "delivered_per_imap": delivered,
            "all_delivered": delivered == args.messages == stats.sent,
            "errors": stats.errors,
            "elapsed_s": round(elapsed, 3),
            "messages_per_s": round(rate, 1),
            "all_sessions_logged_in_after_s": round(all_open - t0, 3),
            "messages_per_s_once_all_logged_in": round(steady, 1),
            "server_cpu_s": round(server_cpu, 3),
            "server_cpu_ms_per_message": round(1000 * server_cpu / max(stats.sent, 1), 3),
            "server_cores_busy": round(server_cpu / elapsed, 2) if elapsed else None,
            "server_busiest_threads_cpu_s": [round(cpu, 2) for _, cpu in threads[:4]],
            "server_idle_rss_mib": round(rss_idle / 2**20, 1),
            "server_peak_rss_mib": round(monitor.peak_rss / 2**20, 1),
            "server_peak_rss_at_s": round(monitor.peak_at, 2),
            "server_rss_at_end_mib": round(monitor.last_rss / 2**20, 1),
            "database_server_cpu_s": None if db_cpu is None else round(db_cpu, 3),
            "client_cpu_s": round(client_cpu, 3),
            "client_cores_busy": round(client_cpu / elapsed, 2) if elapsed else None,
            "latency_ms": {
                "p50": round(1000 * statistics.median(lat), 2),
                "p99": round(1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))], 2),
                "max": round(1000 * lat[-1], 2),
            },
            "server_exit_code_on_sigterm": exit_code,
            # The machine's 1-minute load average before and after the run: other processes
            # (test suites, other benchmarks) share its cores and depress msg/s, not CPU/msg.
            "machine_load_1min_before_after": [round(load_before, 2), round(load_after, 2)],
        },
        "target": {
            "messages_per_s": TARGET_MSG_PER_S,
            "pass": rate >= TARGET_MSG_PER_S and delivered == args.messages,
        },
        "environment": environment(args.database, blob_store),
    }


def limit_note(result: dict[str, Any]) -> str:
    r, p = result["results"], result["parameters"]
    cores = result["environment"]["cpu_count"] or 1
    busiest = r["server_busiest_threads_cpu_s"]
    loop_share = busiest[0] / r["elapsed_s"] if busiest and r["elapsed_s"] else 0.0
    p50 = r["latency_ms"]["p50"] / 1000
    # Little's law: with N sessions each waiting for its 250, rate ≈ N / latency.
    bound = p["concurrency"] / p50 if p50 else 0.0
    facts = (
        f"server busy {r['server_cores_busy']} of {cores} cores, its busiest thread (the event "
        f"loop) {loop_share:.0%}, client {r['client_cores_busy']} cores; p50 time to 250 is "
        f"{1000 * p50:.0f} ms, so {p['concurrency']} sessions cannot exceed ≈{bound:.0f} msg/s"
    )
    cpu_ms = r["server_cpu_ms_per_message"]
    if cpu_ms:
        ceiling = 1000 * cores / cpu_ms
        facts += (
            f"; at {cpu_ms} ms CPU/msg even {cores} fully busy cores would give ≤{ceiling:.0f} "
            f"msg/s (the target needs ≤{1000 * cores / TARGET_MSG_PER_S:.1f} ms/msg, less "
            "with a single event loop)"
        )
    if loop_share > 0.85:
        return f"{facts}: the event loop is saturated (CPU-bound on one core)"
    if r["server_cores_busy"] + r["client_cores_busy"] > 0.85 * cores:
        return f"{facts}: the machine's cores are saturated"
    load = max(r.get("machine_load_1min_before_after") or [0.0])
    if load > cores:
        return (
            f"{facts}: the machine was shared (1-minute load {load} on {cores} cores: other "
            "processes held CPU time the server waited for), so this rate is a lower bound"
        )
    return f"{facts}: not CPU-bound, so waiting (commit/fsync latency, lock contention) limits it"


def write_summary(out: Path) -> Path:
    rows = []
    notes = []
    for path in sorted(out.glob("smtp_load*.json")):
        result = json.loads(path.read_text())
        r, p, env = result["results"], result["parameters"], result["environment"]
        verdict = "PASS" if result["target"]["pass"] else "FAIL"
        rows.append(
            f"| {env['database']} ({env['blob_store']} blobs) | {p['messages']} × "
            f"{p['message_size'] // 1024} KiB, {p['concurrency']} sessions | "
            f"**{r['messages_per_s']}** | {verdict} | {r['server_cpu_ms_per_message']} | "
            f"{r['server_cores_busy']} | {r['server_peak_rss_mib']} | {r['client_cores_busy']} | "
            f"{r['latency_ms']['p50']} / {r['latency_ms']['p99']} | "
            f"{r['delivered_per_imap']}/{p['messages']} | {path.name} |"
        )
        notes.append(f"- {env['database']}: {limit_note(result)}.")
        if "messages_per_s_once_all_logged_in" in r:
            notes.append(
                f"  Logins: all {p['concurrency']} sessions were logged in after "
                f"{r['all_sessions_logged_in_after_s']} s (each AUTH is an argon2id "
                "verification, two at a time); from then until the end: "
                f"{r['messages_per_s_once_all_logged_in']} msg/s."
            )
        if "machine_load_1min_before_after" in r:
            before, after = r["machine_load_1min_before_after"]
            notes.append(
                f"  Machine load (1-minute average) {before} before, {after} after the run "
                f"(on {env['cpu_count']} cores: above it, other processes took CPU time)."
            )
        if "server_peak_rss_at_s" in r:
            notes.append(
                f"  Memory: {r.get('server_idle_rss_mib')} MiB idle, peak "
                f"{r['server_peak_rss_mib']} MiB at t={r['server_peak_rss_at_s']} s (when the "
                f"{p['concurrency']} sessions log in at once: concurrent argon2id verifications), "
                f"{r['server_rss_at_end_mib']} MiB at the end."
            )
    first = json.loads(sorted(out.glob("smtp_load*.json"))[0].read_text()) if rows else None
    env_line = (
        f"{first['environment']['cpu_count']} cores ({first['environment']['cpu_model']}), "
        f"{first['environment']['memory_gib']} GiB, Python {first['environment']['python']}, "
        f"{first['date']}"
        if first
        else "no results"
    )
    text = "\n".join(
        [
            "# Benchmark: SMTP submission load",
            "",
            f"Target (issue 2): ≥ {TARGET_MSG_PER_S:.0f} messages/s, every message durable "
            "before its 250, on a 2-core machine. Produced by `make bench` "
            "(`python -m bench.smtp_load --out bench/results`).",
            "",
            f"Machine: {env_line}.",
            "",
            "| database | load | msg/s | target | server CPU ms/msg | server cores busy "
            "| server peak RSS MiB | client cores busy | latency p50 / p99 ms | delivered "
            "| raw |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            "What limits it:",
            *notes,
            "",
        ]
    )
    summary = out / "summary.md"
    # Other benchmarks keep their own sections (between <!-- name --> markers): keep them.
    if summary.exists():
        sections = [
            m.group(0)
            for m in re.finditer(r"<!-- (\w+) -->.*?<!-- /\1 -->", summary.read_text(), re.S)
        ]
        if sections:
            text += "\n" + "\n".join(sections) + "\n"
    summary.write_text(text)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.smtp_load", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--size", type=int, default=10 * 1024)
    parser.add_argument("--recipients", type=int, default=4)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--blob-store",
        choices=["file", "database"],
        default=None,
        help="default: file on SQLite, database on PostgreSQL",
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    result = benchmark(args)
    name = "smtp_load.json" if args.database == "sqlite" else f"smtp_load_{args.database}.json"
    (args.out / name).write_text(json.dumps(result, indent=2) + "\n")
    summary = write_summary(args.out)
    r = result["results"]
    print(
        f"{r['acknowledged']} messages in {r['elapsed_s']} s: {r['messages_per_s']} msg/s "
        f"(target {TARGET_MSG_PER_S:.0f}: {'PASS' if result['target']['pass'] else 'FAIL'}), "
        f"server {r['server_cpu_ms_per_message']} ms CPU/msg, peak RSS "
        f"{r['server_peak_rss_mib']} MiB; delivered {r['delivered_per_imap']}. "
        f"Written {args.out / name} and {summary}."
    )
    return 0 if r["all_delivered"] and not r["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
