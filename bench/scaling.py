"""Scaling (issue 20 item 7): the SMTP and IMAP profiles with 1 worker process, 2 worker
processes, and two nodes behind HAProxy, side by side.

    python -m bench.scaling --out bench/results [--rounds 3] [--messages 1000]
        [--concurrency 20] [--clients 20] [--duration 8]

Three set-ups run at once, each initialised and filled once (the same accounts and mailboxes:
``bench.imap_populate``, then started):

- ``1 worker``: ``hygie serve --workers 1`` on SQLite (the default embedded database);
- ``2 workers``: ``hygie serve --workers 2`` on SQLite;
- ``2 nodes``: two ``hygie serve --workers 1`` on one PostgreSQL (database blobs), behind HAProxy
  in TCP mode with the PROXY protocol and health checks (tests/support/haproxy.py, the
  configuration of docs/operations.md), on the same machine.

Then ``--rounds`` rounds, each running every set-up in turn (alternating, so that whatever
else the shared machine does falls on all of them alike): the SMTP profile of
``bench.smtp_load`` (``--messages`` messages over ``--concurrency`` STARTTLS sessions with
PIPELINING), then the IMAP mixed profile of ``bench.imap_load`` (``--clients`` sessions for
``--duration`` seconds: SELECT, FETCH, STORE, APPEND, EXPUNGE, SEARCH). The figure of each
set-up is the median over the rounds; each round's figures are kept. The client is this one
asyncio process; the CPU seconds of the servers' process trees (and of PostgreSQL and HAProxy
for the nodes) are recorded next to the rates, so that "the machine has two cores, shared
with the client" reads from the figures. Writes ``scaling.json`` and ``scaling.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import psutil

from bench import imap_load, smtp_load
from bench.harness import ServerProcess, free_ports

ROOT = Path(__file__).resolve().parent.parent
MIXED_PER_MAILBOX = 300
SMTP_RECIPIENTS = [f"bench{i}@hygie.test" for i in range(1, 5)]


def _users() -> dict[str, str]:
    users = {smtp_load.SENDER[0]: smtp_load.SENDER[1]}
    users |= {r: smtp_load.PASSWORD for r in SMTP_RECIPIENTS}
    users |= {f"mixed{i}@hygie.test": imap_load.PASSWORD for i in range(imap_load.MIXED_ACCOUNTS)}
    return users


def _populate(server: ServerProcess) -> None:
    targets = [f"mixed{i}@hygie.test={MIXED_PER_MAILBOX}" for i in range(imap_load.MIXED_ACCOUNTS)]
    proc = subprocess.run(
        [sys.executable, "-m", "bench.imap_populate", "--data", str(server.data_dir), *targets],
        env=server.env(), capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"bench.imap_populate failed:\n{proc.stderr[-4000:]}")


class Target:
    """What the SMTP and IMAP clients talk to, and the processes whose CPU is counted."""

    def __init__(self, name: str, front: Any, pids: list[int]) -> None:
        self.name = name
        self.smtp_port: int = front.smtp_port
        self.imap_tls_port: int = front.imap_tls_port
        self.front = front
        self.pids = pids
        self.pid = pids[0]  # imap_load's own CPU figure (not used here: see cpu_seconds)

    def ssl_context(self) -> Any:
        return self.front.ssl_context()

    def cpu_seconds(self) -> float:
        total = 0.0
        for pid in self.pids:
            try:
                proc = psutil.Process(pid)
                for p in [proc, *proc.children(recursive=True)]:
                    t = p.cpu_times()
                    total += t.user + t.system
            except psutil.NoSuchProcess:
                continue
        return total


@contextmanager
def single(name: str, base: Path, workers: int) -> Iterator[Target]:
    server = ServerProcess(users=_users(), base_dir=base, ready_timeout=120,
                           env={"HYGIE_SERVER_WORKERS": str(workers)})  # fmt: skip
    try:
        server.init()
        _populate(server)
        server.start()
        yield Target(name, server, [server.pid])
    finally:
        server.close()


@contextmanager
def two_nodes(name: str, base: Path) -> Iterator[Target]:
    sys.path.insert(0, str(ROOT))
    from tests.support.haproxy import HAProxy
    from tests.support.pgcluster import PgCluster

    cluster = PgCluster().start()
    health = free_ports(2)
    nodes: list[ServerProcess] = []
    proxy = None
    try:
        url = cluster.create_database("hygie_scaling")
        for i, port in enumerate(health):
            env = {
                "HYGIE_SERVER_WORKERS": "1",
                "HYGIE_STORAGE_BLOB_STORE": "database",
                "HYGIE_SERVER_PROXY_FROM": "127.0.0.1",
                "HYGIE_SERVER_HEALTH_PORT": str(port),
            }
            node = ServerProcess(users=_users(), database_url=url, env=env,
                                 base_dir=base / f"node{i}", ready_timeout=120)  # fmt: skip
            if i == 0:
                node.init()
                _populate(node)
            else:
                shutil.copytree(nodes[0].data_dir, node.data_dir)
                node._initialised = True
            nodes.append(node)
        for node in nodes:
            node.start()
        proxy = HAProxy({"a": (nodes[0], health[0]), "b": (nodes[1], health[1])}, per_node=())
        proxy.start()
        proxy.wait_state("a", up=True)
        proxy.wait_state("b", up=True)
        assert proxy.proc is not None
        postmaster = int((cluster.data_dir / "postmaster.pid").read_text().split()[0])
        yield Target(name, proxy, [n.pid for n in nodes] + [postmaster, proxy.proc.pid])
    finally:
        if proxy is not None:
            proxy.stop()
        for node in nodes:
            node.close()
        cluster.stop()


async def smtp_load_run(target: Target, messages: int, concurrency: int) -> smtp_load.Stats:
    """``bench.smtp_load.run_load``, with the logins two at a time: the login guard checks at
    most two passwords of one name from one address at once (server/auth/guard.py), and a
    benchmark client is one address and one sender."""
    stats = smtp_load.Stats()
    next_index = iter(range(messages))
    gate = asyncio.Semaphore(2)

    async def worker() -> None:
        async with gate:
            session = await smtp_load.Session.open(target, *smtp_load.SENDER)  # type: ignore[arg-type]
        stats.opened.append(time.perf_counter())
        try:
            for i in next_index:
                recipient = SMTP_RECIPIENTS[i % len(SMTP_RECIPIENTS)]
                message = smtp_load.build_message(i, recipient, 10 * 1024)
                t0 = time.perf_counter()
                await session.send(smtp_load.SENDER[0], recipient, message)
                done = time.perf_counter()
                stats.latencies.append(done - t0)
                stats.acknowledged.append(done)
                stats.sent += 1
        finally:
            await session.close()

    results = await asyncio.gather(*(worker() for _ in range(concurrency)), return_exceptions=True)
    stats.errors = [repr(r) for r in results if isinstance(r, BaseException)]
    return stats


def smtp_round(target: Target, messages: int, concurrency: int) -> dict[str, Any]:
    cpu0, t0 = target.cpu_seconds(), time.perf_counter()
    stats = asyncio.run(smtp_load_run(target, messages, concurrency))
    elapsed = time.perf_counter() - t0
    all_open = max(stats.opened, default=t0)
    after = [t for t in stats.acknowledged if t > all_open]
    steady = len(after) / (max(after) - all_open) if len(after) > 1 else 0.0
    return {
        "acknowledged": stats.sent,
        "errors": stats.errors[:5],
        "messages_per_s": round(stats.sent / elapsed, 1),
        "messages_per_s_once_all_logged_in": round(steady, 1),
        "p50_ms": round(1000 * statistics.median(stats.latencies or [0.0]), 1),
        "server_cpu_s": round(target.cpu_seconds() - cpu0, 2),
        "elapsed_s": round(elapsed, 2),
    }


def imap_round(target: Target, clients: int, duration: float, out: Path) -> dict[str, Any]:
    cpu0 = target.cpu_seconds()
    result = asyncio.run(imap_load.mixed_workload(target, clients, duration, out, False))  # type: ignore[arg-type]
    return {
        "operations_per_s": result["operations_per_s"],
        "operations": result["operations"],
        "protocol_errors": result["protocol_errors"],
        "error_samples": result["error_samples"][:3],
        "server_cpu_s": round(target.cpu_seconds() - cpu0, 2),
        "duration_s": result["duration_s"],
    }


def _median(rounds: list[dict[str, Any]], key: str) -> float:
    return round(statistics.median(r[key] for r in rounds), 1)


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix="hygie-scaling-"))
    rounds: dict[str, dict[str, list[dict[str, Any]]]] = {}
    try:
        with ExitStack() as stack:
            targets = [
                stack.enter_context(single("1 worker", base / "one", 1)),
                stack.enter_context(single("2 workers", base / "two", 2)),
            ]
            if not args.no_nodes:
                targets.append(stack.enter_context(two_nodes("2 nodes", base / "nodes")))
            for target in targets:
                rounds[target.name] = {"smtp": [], "imap": []}
            for n in range(args.rounds):
                order = targets if n % 2 == 0 else list(reversed(targets))
                for target in order:
                    smtp = smtp_round(target, args.messages, args.concurrency)
                    rounds[target.name]["smtp"].append(smtp)
                    imap = imap_round(target, args.clients, args.duration, args.out)
                    rounds[target.name]["imap"].append(imap)
                    print(f"round {n + 1} {target.name}: smtp {smtp['messages_per_s']} msg/s, "
                          f"imap {imap['operations_per_s']} ops/s", flush=True)  # fmt: skip
    finally:
        shutil.rmtree(base, ignore_errors=True)
    medians = {
        name: {
            "smtp_messages_per_s": _median(r["smtp"], "messages_per_s"),
            "smtp_messages_per_s_once_all_logged_in": _median(
                r["smtp"], "messages_per_s_once_all_logged_in"
            ),
            "smtp_server_cpu_s": _median(r["smtp"], "server_cpu_s"),
            "imap_operations_per_s": _median(r["imap"], "operations_per_s"),
            "imap_server_cpu_s": _median(r["imap"], "server_cpu_s"),
            "errors": sum(len(x["errors"]) for x in r["smtp"])
            + sum(x["protocol_errors"] for x in r["imap"]),
        }
        for name, r in rounds.items()
    }
    one = medians["1 worker"]
    ratios = {
        name: {
            "smtp": round(m["smtp_messages_per_s"] / max(one["smtp_messages_per_s"], 0.1), 2),
            "imap": round(m["imap_operations_per_s"] / max(one["imap_operations_per_s"], 0.1), 2),
        }
        for name, m in medians.items()
    }
    return {
        "scenario": "scaling",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "parameters": {
            "rounds": args.rounds,
            "smtp": {
                "messages": args.messages,
                "concurrency": args.concurrency,
                "message_size": 10 * 1024,
                "recipients": len(SMTP_RECIPIENTS),
            },
            "imap": {
                "clients": args.clients,
                "duration_s": args.duration,
                "mailboxes": imap_load.MIXED_ACCOUNTS,
                "messages_per_mailbox": MIXED_PER_MAILBOX,
            },
        },
        "medians": medians,
        "ratio_to_1_worker": ratios,
        "rounds": rounds,
        "machine_load_1min_at_end": round(os.getloadavg()[0], 2),
        "environment": smtp_load.environment("sqlite (workers), postgresql (nodes)", "mixed"),
    }


def report(result: dict[str, Any]) -> str:
    p = result["parameters"]
    lines = [
        "# Scaling: 1 worker, 2 workers, 2 nodes behind HAProxy",
        "",
        f"{result['date']}, {result['environment']['cpu_count']} cores "
        f"({result['environment']['cpu_model']}), shared with the client and other work "
        f"(1-min load at the end: {result['machine_load_1min_at_end']}). Medians of "
        f"{p['rounds']} alternating rounds; `python -m bench.scaling` (in `make bench`).",
        "",
        f"SMTP: {p['smtp']['messages']} messages of 10 KiB over {p['smtp']['concurrency']} "
        f"STARTTLS sessions. IMAP: {p['imap']['clients']} clients, mixed workload, "
        f"{p['imap']['duration_s']} s.",
        "",
        "| set-up | SMTP msg/s | × | server CPU s | IMAP ops/s | × | server CPU s | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, m in result["medians"].items():
        r = result["ratio_to_1_worker"][name]
        lines.append(
            f"| {name} | {m['smtp_messages_per_s']} | {r['smtp']} | {m['smtp_server_cpu_s']} "
            f"| {m['imap_operations_per_s']} | {r['imap']} | {m['imap_server_cpu_s']} "
            f"| {m['errors']} |"
        )
    lines += [
        "",
        "Server CPU counts every process of the set-up (workers and supervisor; for the nodes "
        "also PostgreSQL and HAProxy). The load generator is one Python process on the same "
        "two cores.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--no-nodes", action="store_true", help="Workers only (no PostgreSQL).")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    result = benchmark(args)
    (args.out / "scaling.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "scaling.md").write_text(report(result))
    print(report(result))
    return 0 if all(m["errors"] == 0 for m in result["medians"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
