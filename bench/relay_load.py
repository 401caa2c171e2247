"""Relay between two operators (issue 6 item 8): throughput of mail submitted to operator A for
operator B's users (20 sessions, 10 KiB messages, measured until B has stored every message),
and the time A takes to drain a queue of 10,000 messages once B comes back.

    python -m bench.relay_load --out bench/results [--messages 2000] [--backlog 10000]

Both servers run on this machine (SQLite, file blobs) with their own CAs and mutual TLS, as in
tests/e2e/test_relay.py. Writes ``relay_load.json`` and a section of ``summary.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.federation import operator, trust_each_other
from bench.harness import ServerProcess
from bench.smtp_load import SENDER, Stats, environment, run_load
from bench.summary import replace_section

PASSWORD = "bench-recipient-password"
RECIPIENTS = [f"r{i}@autre.test" for i in range(4)]


def stored_at(server: ServerProcess) -> int:
    """Messages stored in ``server``'s mailboxes (read from its database, not over IMAP, so
    that counting does not load the server being measured)."""
    with sqlite3.connect(f"file:{server.data_dir / 'hygie.db'}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT count(*) FROM messages").fetchone()[0])


def queued_at(server: ServerProcess) -> int:
    with sqlite3.connect(f"file:{server.data_dir / 'hygie.db'}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT count(*) FROM outbound_recipients").fetchone()[0])


def wait_until(predicate: Any, timeout: float, step: float = 0.2) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise TimeoutError("benchmark condition not reached")
        time.sleep(step)
    return time.monotonic() - start


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix="hygie-relay-bench-"))
    a = operator("hygie.test", {SENDER[0]: SENDER[1]}, base)
    b = operator("autre.test", dict.fromkeys(RECIPIENTS, PASSWORD), base)
    trust_each_other(a, b, env={"HYGIE_RELAY_RETRY_BASE_SECONDS": "1",
                                "HYGIE_RELAY_RETRY_MAX_SECONDS": "2",
                                "HYGIE_RELAY_POLL_SECONDS": "0.2"})  # fmt: skip
    try:
        a.start()
        b.start()
        before = stored_at(b)
        t0 = time.monotonic()
        stats: Stats = asyncio.run(
            run_load(a, RECIPIENTS, args.messages, args.concurrency, args.size)
        )
        accepted_s = time.monotonic() - t0
        wait_until(lambda: stored_at(b) - before >= stats.sent, timeout=1800)
        relayed_s = time.monotonic() - t0

        b.stop()
        before = stored_at(b)
        t1 = time.monotonic()
        backlog: Stats = asyncio.run(
            run_load(a, RECIPIENTS, args.backlog, args.concurrency, args.size)
        )
        queue_fill_s = time.monotonic() - t1
        queued = queued_at(a)
        b.start()
        a.hygie("queue", "retry", "--all")
        t2 = time.monotonic()
        wait_until(lambda: queued_at(a) == 0, timeout=3600, step=0.5)
        drain_s = time.monotonic() - t2
        delivered_backlog = stored_at(b) - before
    finally:
        for srv in (a, b):
            try:
                srv.stop()
            finally:
                srv.close()
    return {
        "benchmark": "relay_load",
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S%z"),
        "environment": environment("sqlite", "file"),
        "parameters": {
            "messages": args.messages,
            "backlog": args.backlog,
            "concurrency": args.concurrency,
            "message_size": args.size,
        },
        "results": {
            "relay": {
                "sent": stats.sent,
                "errors": stats.errors[:5],
                "accepted_by_a_s": round(accepted_s, 2),
                "stored_at_b_s": round(relayed_s, 2),
                "messages_per_s": round(stats.sent / relayed_s, 1),
            },
            "drain": {
                "queued": queued,
                "fill_s": round(queue_fill_s, 2),
                "drain_s": round(drain_s, 2),
                "messages_per_s": round(queued / drain_s, 1) if drain_s else None,
                "delivered": delivered_backlog,
                "errors": backlog.errors[:5],
            },
        },
    }


def write_summary(out: Path, result: dict[str, Any]) -> None:
    r, p = result["results"], result["parameters"]
    section = "\n".join([
        "<!-- relay -->",
        "# Benchmark: relay between two operators",
        "",
        "Issue 6 item 8, produced by `make bench` (`python -m bench.relay_load`): two "
        "`hygie serve` on this machine (SQLite, own CAs, mutual TLS), raw figures in "
        "`relay_load.json`.",
        "",
        "| scenario | messages | time | rate |",
        "|---|---|---|---|",
        f"| submitted to A, {p['concurrency']} sessions × {p['message_size'] // 1024} KiB, until "
        f"stored at B | {r['relay']['sent']} | {r['relay']['stored_at_b_s']} s (A accepted all in "
        f"{r['relay']['accepted_by_a_s']} s) | **{r['relay']['messages_per_s']} msg/s** |",
        f"| queue of {r['drain']['queued']} drained once B is back | {r['drain']['delivered']} "
        f"stored at B | {r['drain']['drain_s']} s | **{r['drain']['messages_per_s']} msg/s** |",
        "",
        "Both servers and the load client share the machine's 2 cores; each relayed message is "
        "stored twice (A's queue, B's mailbox) with a durable commit on each side.",
        "<!-- /relay -->",
    ])  # fmt: skip
    replace_section(out, "relay", section)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.relay_load", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--backlog", type=int, default=10000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--size", type=int, default=10 * 1024)
    args = parser.parse_args(argv)
    result = benchmark(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "relay_load.json").write_text(json.dumps(result, indent=2) + "\n")
    write_summary(args.out, result)
    print(json.dumps(result["results"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
