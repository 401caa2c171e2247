"""What the side-by-side benchmarks (``bench.imap_stress``, ``bench.smtp_compare``) share: the
alternating runs' medians and ratios, latency percentiles, server thread use, and the py-spy
profile written as a readable report.

Runs alternate Hygie, reference, Hygie, reference… (the machine's speed drifts between
minutes); a figure is the median over a server's runs, and a ratio the median over the pairs
of Hygie's figure divided by the reference's in the same pair.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psutil

from bench.imap_load import Profiler


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``values``; NaN if empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency_ms(values: Sequence[float]) -> dict[str, float | int]:
    return {
        "count": len(values),
        "p50_ms": round(1000 * percentile(values, 0.5), 2),
        "p99_ms": round(1000 * percentile(values, 0.99), 2),
        "max_ms": round(1000 * max(values), 2) if values else float("nan"),
    }


def median_of(runs: Sequence[dict[str, Any]], key: Callable[[dict[str, Any]], Any]) -> Any:
    values = [v for v in (key(r) for r in runs) if v is not None]
    return round(statistics.median(values), 3) if values else None


def pair_ratio(
    pairs: Sequence[tuple[dict[str, Any], dict[str, Any]]],
    key: Callable[[dict[str, Any]], Any],
) -> float | None:
    """Median over the pairs of Hygie's ``key`` / the reference's."""
    ratios = []
    for hygie, reference in pairs:
        a, b = key(hygie), key(reference)
        if a is not None and b:
            ratios.append(a / b)
    return round(statistics.median(ratios), 3) if ratios else None


def pairs_of(runs: Sequence[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(Hygie run, reference run) in the order they ran."""
    hygie = [r for r in runs if r["server"] == "hygie"]
    reference = [r for r in runs if r["server"] == "reference"]
    return list(zip(hygie, reference, strict=False))


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


class ThreadClock:
    """CPU seconds of each thread of one process between :meth:`start` and :meth:`stop`; the
    busiest thread's share of the wall time says whether one core (an event loop) is full."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.before: dict[int, float] = {}
        self.t0 = 0.0

    def _read(self) -> dict[int, float]:
        try:
            return {t.id: t.user_time + t.system_time for t in self.process.threads()}
        except psutil.Error:
            return {}

    def start(self) -> None:
        self.before = self._read()
        self.t0 = time.perf_counter()

    def stop(self) -> float | None:
        """The busiest thread's CPU / wall time over the interval (1.0: one core full)."""
        after = self._read()
        wall = time.perf_counter() - self.t0
        deltas = [cpu - self.before.get(tid, 0.0) for tid, cpu in after.items()]
        return round(max(deltas) / wall, 3) if deltas and wall > 0 else None


def write_profile(profiler: Profiler, path: Path, title: str, top: int = 30) -> dict[str, Any]:
    """Turn py-spy's collapsed stacks into ``path``: the hottest functions (self time, and
    project code inclusive), then the raw stacks for flame graphs. Returns the summary."""
    summary = profiler.summary(top=top)
    raw = profiler.path.read_text(errors="replace") if profiler.path.exists() else ""
    lines = [f"# {title}", ""]
    if summary is None:
        lines += ["py-spy gave no samples (not installed, or not allowed to attach).", ""]
        path.write_text("\n".join(lines))
        return {"raw": path.name, "busy_samples": 0}
    lines += [
        f"{summary['busy_samples']} busy samples of the server (threads waiting for work left "
        "out). Shares are of those samples.",
        "",
        "## Hottest functions, own time",
        "",
        *(f"{share:6.1f} %  {frame}" for frame, share in summary["self_percent"]),
        "",
        "## Project code, inclusive (a function and what it calls)",
        "",
        *(f"{share:6.1f} %  {frame}" for frame, share in summary["project_inclusive_percent"]),
        "",
        "## Collapsed stacks (py-spy --format raw: frames;…;leaf samples)",
        "",
    ]
    path.write_text("\n".join(lines) + raw)
    if profiler.path != path:
        profiler.path.unlink(missing_ok=True)
    summary["raw"] = path.name
    return summary


def contention(loads: Sequence[float], cores: int, busy: float | None) -> str:
    """A note when other work held the machine's cores during a server's runs."""
    if not loads or max(loads) <= cores:
        return ""
    return (
        f"; machine overloaded (1-minute load {min(loads)}–{max(loads)} on {cores} cores): the "
        f"server got {busy} cores, so the rate is a lower bound; compare the CPU per operation"
    )


def hottest(profile: dict[str, Any] | None, n: int = 4) -> str:
    if not profile or not profile.get("busy_samples"):
        return "no profile"
    own = ", ".join(f"{f} {p}%" for f, p in profile["self_percent"][:n])
    mine = ", ".join(f"{f} {p}%" for f, p in profile["project_inclusive_percent"][:n])
    return f"hottest (self): {own}; project code (inclusive): {mine} [{profile['raw']}]"
