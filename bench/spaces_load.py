"""Patient spaces at operator scale (issue 11): how long an opt-out campaign takes the jobs.

    python -m bench.spaces_load --out bench/results [--patients 20000] [--database-url URL]

Storage and job level, like the invitation-cycle test but larger: ``--patients`` QUAL patients
are read from a generated invitation file and invited; the jobs hand every invitation to a
smarthost that accepts at once (SMTP sessions themselves are not measured: one per patient,
they depend on the relay); a tenth refuse with their code; the clock jumps past the refusal
period and the opening job opens the rest; every space is then closed and purged after the
retention period. Writes ``spaces_load.json`` and a section of ``summary.md`` between
``<!-- spaces -->`` markers. SQLite in a temporary directory unless ``--database-url``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import shutil
import tempfile
import time
from dataclasses import replace
from email.message import Message
from pathlib import Path
from typing import Any

from bench.summary import replace_section
from directory.ins import ins_key
from server.config import Config, NotifySection, ServerSection
from server.espace.notify import Smarthost
from server.espace.spaces import SpaceJobs, invite
from storage.blobs import open_blob_store
from storage.crypto import MasterKey
from storage.db import Database, migrate
from storage.spaces import CLOSED, OPEN, SpaceStore

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
HEADER = "ins,oid,birth_name,given_names,birth_date,sex,birthplace,status,email"


class Sink(Smarthost):
    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.codes: dict[str, str] = {}

    @property
    def configured(self) -> bool:
        return True

    async def send(self, msg: Message) -> None:
        body = msg.get_payload(decode=True)
        assert isinstance(body, bytes)
        code = next(line.strip() for line in body.decode().splitlines()
                    if line.startswith("    ") and len(line.strip()) == 10)  # fmt: skip
        self.codes[str(msg["To"])] = code


def invitation_file(count: int) -> str:
    lines = [HEADER]
    for n in range(count):
        thirteen = f"1{(n // 12) % 100:02d}{n % 12 + 1:02d}75{n // 1200:06d}"
        lines.append(f"{thirteen}{ins_key(thirteen)},1.2.250.1.213.1.4.8,DURAND,Paul,"
                     f"1980-01-01,M,75056,QUAL,p{n}@example.org")  # fmt: skip
    return "\n".join(lines) + "\n"


async def run(count: int, url: str, data_dir: Path) -> dict[str, Any]:
    await migrate(url)
    config = Config(data_dir=data_dir,
                    server=ServerSection(domains=("hygie.test", "patient.hygie.test")),
                    notify=replace(NotifySection(), host="sink"))  # fmt: skip
    now = [T0]
    db = Database(url, open_blob_store("database", data_dir / "blobs"))
    await db.start()
    figures: dict[str, Any] = {"patients": count, "database": url.split(":", 1)[0]}
    try:
        store = SpaceStore(db, MasterKey.create(data_dir / "master.key"))
        sink = Sink(config)
        jobs = SpaceJobs(config, store, sink, lambda: now[0])
        data = invitation_file(count)

        started = time.perf_counter()
        result, _ = await invite(store, config, data, now[0])
        figures["invite_seconds"] = round(time.perf_counter() - started, 2)
        assert result.created == count

        started = time.perf_counter()
        report = await jobs.run_once()
        figures["invitations_seconds"] = round(time.perf_counter() - started, 2)
        assert report.sent == count and report.opened == 0

        refusing = list(sink.codes.values())[::10]
        now[0] += dt.timedelta(days=10)
        started = time.perf_counter()
        done = await asyncio.gather(*(store.refuse(code, now[0]) for code in refusing))
        figures["refusals"] = len(refusing)
        figures["refusals_seconds"] = round(time.perf_counter() - started, 2)
        assert all(done)

        now[0] += dt.timedelta(days=33)
        started = time.perf_counter()
        report = await jobs.run_once()
        figures["open_seconds"] = round(time.perf_counter() - started, 2)
        figures["opened"] = report.opened
        assert report.opened == count - len(refusing)
        counts = await store.counts()
        assert counts[OPEN] == report.opened

        started = time.perf_counter()
        rows = await db.raw_rows("SELECT ins FROM patient_spaces WHERE state = 'open'")
        retention = dt.timedelta(days=config.spaces.retention_days)
        await asyncio.gather(*(store.close(r[0], now[0], retention) for r in rows))
        figures["close_seconds"] = round(time.perf_counter() - started, 2)
        now[0] += retention
        started = time.perf_counter()
        purged = 0
        while n := await store.purge_due(now[0], limit=500):
            purged += n
        figures["purge_seconds"] = round(time.perf_counter() - started, 2)
        assert purged == report.opened and (await store.counts())[CLOSED] == purged
        figures["opened_per_second"] = round(report.opened / max(figures["open_seconds"], 1e-3))
    finally:
        await db.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--patients", type=int, default=20_000)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hygie-spaces-bench-"))
    try:
        url = args.database_url or f"sqlite+aiosqlite:///{work / 'hygie.db'}"
        figures = asyncio.run(run(args.patients, url, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "spaces_load.json").write_text(json.dumps(figures, indent=2) + "\n")
    section = (
        "<!-- spaces -->\n## Patient spaces (opt-out campaign, storage and jobs)\n\n"
        f"{figures['patients']:,} invited ({figures['database']}) in {figures['invite_seconds']} s;"
        f" invitations built and handed over in {figures['invitations_seconds']} s;"
        f" {figures['refusals']:,} refusals in {figures['refusals_seconds']} s;"
        f" {figures['opened']:,} spaces opened in {figures['open_seconds']} s"
        f" ({figures['opened_per_second']:,}/s); closed in {figures['close_seconds']} s,"
        f" purged in {figures['purge_seconds']} s.\n<!-- /spaces -->\n"
    )
    replace_section(args.out, "spaces", section)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
