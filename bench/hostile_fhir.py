"""Hostile searches against the FHIR API (issue 26): memory and a normal search's latency.

    python -m bench.hostile_fhir --out bench/results [--rows 50000] [--seconds 20]
        [--database sqlite|postgresql|both]

A ``hygie serve`` with a synthetic directory (``--rows`` PS_LibreAcces lines). One client
searches ``family=dupont`` every 50 ms, first alone, then while three clients send what the
issue's report sent: distinct 60 KB ``family=`` values, 12,000 ``name=`` alternatives in one
64 KB POST, and the most alternatives allowed, each a one-letter prefix. Measured: the normal
search's latency (median, p99, max) in both phases, the hostile answers by status, and the
server's RSS (sampled every 0.2 s). Writes ``hostile_fhir.json`` and its section of
``summary.md``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from pathlib import Path
from typing import Any

from bench.harness import ServerProcess
from bench.summary import replace_section

LETTERS = "abcdefghijklmnopqrstuvwxyz"
NORMAL = "/fhir/Practitioner?family=dupont&_count=10"


class Client:
    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.conn = self._connect()

    def _connect(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(
            "localhost", self.server.https_port, context=self.server.ssl_context(), timeout=60
        )

    def request(self, method: str, path: str, body: bytes | None = None) -> int:
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=headers)
                resp = self.conn.getresponse()
                resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = self._connect()
                return resp.status
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = self._connect()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def three_letters(count: int, salt: int) -> str:
    return ",".join(
        LETTERS[i % 26] + LETTERS[i // 26 % 26] + LETTERS[i // 676 % 26]
        for i in range(salt, salt + count)
    )


def hostile(server: ServerProcess, kind: int, until: float, statuses: Counter[int]) -> None:
    client = Client(server)
    n = 0
    while time.monotonic() < until:
        n += 1
        if kind == 0:
            form = [("family", f"{n:06d}" + "x" * 60_000)]
        elif kind == 1:
            form = [("name", three_letters(12_000, n))]
        else:
            form = [("family", ",".join(LETTERS[(n + i) % 26] for i in range(20)))]
        body = urllib.parse.urlencode(form, safe=",").encode()
        statuses[client.request("POST", "/fhir/Practitioner/_search", body)] += 1


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def normal_latencies(server: ServerProcess, seconds: float) -> list[float]:
    client = Client(server)
    out = []
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        started = time.perf_counter()
        assert client.request("GET", NORMAL) == 200
        out.append(time.perf_counter() - started)
        time.sleep(0.05)
    return out


def summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "median_ms": round(statistics.median(ordered) * 1000, 1),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


def run(database: str, rows: int, seconds: float) -> dict[str, Any]:
    cluster = None
    url = None
    if database == "postgresql":
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from tests.support.pgcluster import PgCluster

        cluster = PgCluster().start()
        url = cluster.create_database("hygie_bench_hostile")
    server = ServerProcess(database_url=url)
    try:
        server.start()
        with tempfile.TemporaryDirectory() as folder:
            ps, mss = Path(folder) / "ps.txt", Path(folder) / "mss.txt"
            server.hygie("directory", "synth", "--kind", "ps-libreacces", "--rows", str(rows),
                         "--out", str(ps))  # fmt: skip
            server.hygie("directory", "synth", "--kind", "mssante", "--rows", str(rows // 4),
                         "--out", str(mss))  # fmt: skip
            server.hygie("directory", "import", "ps-libreacces", str(ps), timeout=600)
            server.hygie("directory", "import", "mssante", str(mss), timeout=600)
        normal_latencies(server, 2)  # warm
        alone = normal_latencies(server, seconds / 2)
        rss_before = rss(server.pid)
        statuses: Counter[int] = Counter()
        until = time.monotonic() + seconds
        threads = [
            threading.Thread(target=hostile, args=(server, k, until, statuses)) for k in range(3)
        ]
        peak = [rss_before]

        def sample() -> None:
            while time.monotonic() < until:
                peak.append(rss(server.pid))
                time.sleep(0.2)

        sampler = threading.Thread(target=sample)
        for t in [*threads, sampler]:
            t.start()
        loaded = normal_latencies(server, seconds)
        for t in [*threads, sampler]:
            t.join()
        rss_after = rss(server.pid)
        server.stop()
    finally:
        server.close()
        if cluster is not None:
            cluster.stop()
    return {
        "database": database,
        "rows": rows,
        "seconds": seconds,
        "normal_alone": summary(alone),
        "normal_under_hostile_load": summary(loaded),
        "hostile_answers": {str(k): v for k, v in sorted(statuses.items())},
        "hostile_requests_per_second": round(sum(statuses.values()) / seconds, 1),
        "rss_mb": {
            "before": round(rss_before / 2**20, 1),
            "peak": round(max(peak) / 2**20, 1),
            "after": round(rss_after / 2**20, 1),
        },
    }


def markdown(results: list[dict[str, Any]]) -> str:
    lines = [
        "<!-- hostile_fhir -->",
        "## Hostile FHIR searches (issue 26)",
        "",
        "`python -m bench.hostile_fhir --out bench/results`: a normal `family=dupont` search "
        "every 50 ms, alone then while 3 clients send 60 KB values, 12,000 alternatives and "
        "20 one-letter prefixes.",
        "",
        "| database | rows | normal alone (median / p99 / max ms) | under hostile load "
        "(median / p99 / max ms) | hostile req/s | answers | RSS before / peak / after (MB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        a, h, m = r["normal_alone"], r["normal_under_hostile_load"], r["rss_mb"]
        answers = ", ".join(f"{k}: {v}" for k, v in r["hostile_answers"].items())
        lines.append(
            f"| {r['database']} | {r['rows']} | {a['median_ms']} / {a['p99_ms']} / "
            f"{a['max_ms']} | {h['median_ms']} / {h['p99_ms']} / {h['max_ms']} | "
            f"{r['hostile_requests_per_second']} | {answers} | {m['before']} / {m['peak']} / "
            f"{m['after']} |"
        )
    lines.append("<!-- /hostile_fhir -->")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hostile_fhir", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args(argv)
    databases = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    results = [run(d, args.rows, args.seconds) for d in databases]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "hostile_fhir.json").write_text(json.dumps(results, indent=2) + "\n")
    section = markdown(results)
    replace_section(args.out, "hostile_fhir", section)
    print(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
