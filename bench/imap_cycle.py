"""IMAP commands per second with sessions that stay logged in (issue 19, the "mail core under
load" profile): ``--clients`` sessions on ``--accounts`` mailboxes of ``--messages`` messages,
each looping over the cycle a standard IMAP stress tool runs, against ``hygie serve`` over
implicit TLS:

    LIST + STATUS (every other cycle), SELECT INBOX, UID FETCH 1:* (FLAGS),
    FETCH of 10 messages (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE),
    FETCH of one message's BODY.PEEK[], STORE of a flag and a keyword (every other cycle),
    STORE \\Deleted + EXPUNGE of the oldest message, APPEND of a realistic message.

    python -m bench.imap_cycle --out bench/results [--clients 10] [--accounts 100]
        [--messages 50] [--duration 20] [--profile NAME] [--touch-all]

Reports commands/s, per-command p50/p99 latency and server CPU per command; with
``--touch-all``, every account's every message is then fetched once (ENVELOPE and
BODYSTRUCTURE) and the server's RSS is read before and after, which bounds what the read caches
hold. ``--profile NAME`` samples the server with py-spy during the run and writes the hottest
functions to ``imap_cycle_profile_NAME.txt`` (the raw stacks stay in the system's temporary
directory). Mailboxes are filled through the storage API (``bench.imap_populate``). Writes
``imap_cycle.json`` (``--json`` elsewhere), the ``imap-cycle`` section of ``summary.md`` (unless
``--json`` is given) and prints one summary line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.harness import ServerProcess
from bench.imap_load import Connection, Profiler, server_cpu, server_rss, workload_message
from bench.smtp_load import client_cpu_seconds, environment
from bench.summary import replace_section

PASSWORD = "bench-cycle-password"
_APPENDUID = re.compile(r"\[APPENDUID \d+ (\d+)\]")
_UID = re.compile(rb"UID (\d+)")


def address(i: int) -> str:
    return f"user{i}@hygie.test"


async def client(
    server: ServerProcess,
    index: int,
    user: str,
    deadline: list[float],
    start: asyncio.Event,
    latency: defaultdict[str, list[float]],
    errors: list[str],
    logged_in: asyncio.Queue[int],
) -> None:
    rng = random.Random(index)
    conn = await Connection.open(server.imap_tls_port, server.ssl_context())
    await conn.login(user, PASSWORD)
    logged_in.put_nowait(index)
    await start.wait()

    async def op(kind: str, text: str, literal: bytes | None = None) -> Any:
        t0 = time.perf_counter()
        reply = await conn.command(text, literal=literal)
        latency[kind].append(time.perf_counter() - t0)
        if reply.status != "OK":
            errors.append(f"{index} {text[:50]}: {reply.status} {reply.text[:80]}")
        return reply

    n = 0
    while time.perf_counter() < deadline[0]:
        n += 1
        if n % 2:
            await op("list", 'LIST "" "*"')
            await op("status", "STATUS INBOX (MESSAGES UNSEEN UIDNEXT)")
        reply = await op("select", "SELECT INBOX")
        exists = reply.exists() or 0
        flags = await op("fetch_flags", "UID FETCH 1:* (FLAGS)")
        uids = [int(m.group(1)) for line in flags.lines if (m := _UID.search(line))]
        if exists >= 10:
            lo = rng.randint(1, exists - 9)
            await op(
                "fetch_items",
                f"FETCH {lo}:{lo + 9} (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE)",
            )
        if exists:
            await op("fetch_body", f"FETCH {rng.randint(1, exists)} (BODY.PEEK[])")
        if n % 2 and exists:
            sign = "+" if n % 4 == 1 else "-"
            await op("store", f"STORE {rng.randint(1, exists)} {sign}FLAGS (\\Flagged $Label1)")
        if uids:
            await op("store", f"UID STORE {uids[0]} +FLAGS.SILENT (\\Deleted)")
            await op("expunge", "EXPUNGE")
        await op("append", "APPEND INBOX (\\Seen)", workload_message(rng, index, n))
    await conn.close()


async def touch_all(server: ServerProcess, accounts: int) -> dict[str, Any]:
    """Every message of every account fetched once (the caches' worst case)."""
    rss0 = server_rss(server.pid)
    t0 = time.perf_counter()
    gate = asyncio.Semaphore(8)

    async def one(i: int) -> None:
        async with gate:
            conn = await Connection.open(server.imap_tls_port, server.ssl_context())
            await conn.login(address(i), PASSWORD)
            await conn.command("SELECT INBOX")
            await conn.command("FETCH 1:* (ENVELOPE BODYSTRUCTURE)", fast=True)
            await conn.close()

    await asyncio.gather(*(one(i) for i in range(accounts)))
    return {
        "elapsed_s": round(time.perf_counter() - t0, 1),
        "server_rss_before_mib": round(rss0 / 2**20, 1),
        "server_rss_after_mib": round(server_rss(server.pid) / 2**20, 1),
    }


async def run(server: ServerProcess, args: argparse.Namespace) -> dict[str, Any]:
    latency: defaultdict[str, list[float]] = defaultdict(list)
    errors: list[str] = []
    start = asyncio.Event()
    deadline = [float("inf")]
    stride = max(1, args.accounts // args.clients)
    logged_in: asyncio.Queue[int] = asyncio.Queue()
    tasks = [
        asyncio.create_task(
            client(server, i, address((i * stride) % args.accounts), deadline, start, latency,
                   errors, logged_in)
        )
        for i in range(args.clients)
    ]  # fmt: skip
    # Logins (argon2id) are not what is measured: every session logs in first.
    for _ in tasks:
        await logged_in.get()
    prof = None
    if args.profile:
        prof = Profiler(server.pid, args.out, f"cycle_{args.profile}", rate=100)
        prof.path = Path(tempfile.gettempdir()) / f"imap_cycle_profile_{args.profile}.raw"
        prof.__enter__()
    c0, cc0, rss0 = server_cpu(server.pid), client_cpu_seconds(), server_rss(server.pid)
    t0 = time.perf_counter()
    deadline[0] = t0 + args.duration
    start.set()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t0
    cpu, ccpu = server_cpu(server.pid) - c0, client_cpu_seconds() - cc0
    rss1 = server_rss(server.pid)
    if prof is not None:
        prof.__exit__(None, None, None)
    total = sum(len(v) for v in latency.values())
    per = {}
    for kind, values in sorted(latency.items()):
        v = sorted(values)
        per[kind] = {
            "count": len(v),
            "p50_ms": round(1000 * statistics.median(v), 2),
            "p99_ms": round(1000 * v[min(len(v) - 1, int(0.99 * len(v)))], 2),
        }
    result: dict[str, Any] = {
        "commands": total,
        "duration_s": round(elapsed, 2),
        "commands_per_s": round(total / elapsed, 1),
        "server_cpu_ms_per_command": round(1000 * cpu / max(total, 1), 3),
        "server_cores_busy": round(cpu / elapsed, 2),
        "client_cores_busy": round(ccpu / elapsed, 2),
        "server_rss_mib": [round(rss0 / 2**20, 1), round(rss1 / 2**20, 1)],
        "per_command": per,
        "protocol_errors": len(errors),
        "error_samples": errors[:10],
    }
    if prof is not None:
        result["profile"] = prof.summary(top=30)
        if result["profile"] is not None:
            top = args.out / f"imap_cycle_profile_{args.profile}.txt"
            top.write_text(profile_text(result["profile"], result))
    if args.touch_all:
        result["touch_all"] = await touch_all(server, args.accounts)
    return result


def profile_text(profile: dict[str, Any], result: dict[str, Any]) -> str:
    """The hottest functions of a py-spy profile, as a short text table."""
    lines = [
        f"py-spy of hygie serve during bench.imap_cycle: {profile['busy_samples']} busy samples "
        f"(100 Hz, threads waiting for work left out); {result['commands_per_s']} commands/s, "
        f"{result['server_cpu_ms_per_command']} ms server CPU per command.",
        "",
        "Self time (the function itself):",
        *(f"  {share:5.1f}%  {frame}" for frame, share in profile["self_percent"]),
        "",
        "Inclusive (project code: the function and what it calls):",
        *(f"  {share:5.1f}%  {frame}" for frame, share in profile["project_inclusive_percent"]),
    ]
    return "\n".join(lines) + "\n"


def section(result: dict[str, Any]) -> str:
    env, params = result["environment"], result["parameters"]
    rows = [
        f"| {kind} | {v['count']} | {v['p50_ms']} | {v['p99_ms']} |"
        for kind, v in result["per_command"].items()
    ]
    return "\n".join(
        [
            "<!-- imap-cycle -->",
            "# Benchmark: IMAP commands per second, sessions staying logged in",
            "",
            "Issue 19's profile (`python -m bench.imap_cycle --out bench/results`, raw figures in "
            f"`imap_cycle.json`): {params['clients']} clients on {params['accounts']} mailboxes "
            f"of {params['messages']} messages, each cycle LIST + STATUS (every other), SELECT, "
            "UID FETCH 1:* (FLAGS), FETCH of 10 (ENVELOPE BODYSTRUCTURE …), BODY.PEEK[], STORE "
            "(every other), STORE \\Deleted + EXPUNGE, APPEND; implicit TLS, SQLite, file blobs.",
            "",
            f"Machine: {env['cpu_count']} cores ({env['cpu_model']}), Python {env['python']}, "
            f"{result['date']}, load average at the start {result.get('load', '?')}.",
            "",
            f"**{result['commands_per_s']} commands/s**, {result['server_cpu_ms_per_command']} ms "
            f"of server CPU per command ({result['server_cores_busy']} cores busy), protocol "
            f"errors {result['protocol_errors']}.",
            "",
            "| command | count | p50 ms | p99 ms |",
            "|---|---|---|---|",
            *rows,
            "<!-- /imap-cycle -->",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.imap_cycle", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--profile", default="", help="py-spy the run, under this name")
    parser.add_argument("--touch-all", action="store_true")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    users = {address(i): PASSWORD for i in range(args.accounts)}
    base = Path(tempfile.mkdtemp(prefix="hygie-cycle-"))
    server = ServerProcess(users=users, base_dir=base, ready_timeout=180)
    load = os.getloadavg()[0]
    try:
        server.init()
        targets = [f"{address(i)}={args.messages}" for i in range(args.accounts)]
        proc = subprocess.run(
            [sys.executable, "-m", "bench.imap_populate", "--data", str(server.data_dir),
             "--concurrency", "64", *targets],
            env=server.env(), capture_output=True, text=True, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"bench.imap_populate failed:\n{proc.stderr[-4000:]}")
        server.start()
        result = asyncio.run(run(server, args))
        server.stop(timeout=60)
    finally:
        server.close()
        shutil.rmtree(base, ignore_errors=True)
    result["parameters"] = {
        "clients": args.clients, "accounts": args.accounts, "messages": args.messages,
        "duration_s": args.duration,
    }  # fmt: skip
    result["environment"] = environment("sqlite", "file")
    result["date"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    result["load"] = round(load, 1)
    out = args.json or args.out / "imap_cycle.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    if args.json is None:
        replace_section(args.out, "imap-cycle", section(result))
    per = ", ".join(f"{k} {v['p50_ms']}" for k, v in result["per_command"].items())
    print(
        f"{result['commands_per_s']} commands/s, {result['server_cpu_ms_per_command']} ms server "
        f"CPU/command, errors {result['protocol_errors']}; p50 ms: {per}"
        + (f"; touch-all RSS {result['touch_all']}" if "touch_all" in result else "")
    )
    return 0 if result["protocol_errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
