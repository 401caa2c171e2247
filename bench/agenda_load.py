"""Agenda throughput (issue 9 item 7): iMIP invitations (METHOD:REQUEST, a weekly series in
Europe/Paris with an alarm) submitted by a practitioner to patients, each applied to the
patient's agenda and to the practitioner's own copy.

    python -m bench.agenda_load --out bench/results [--messages 500] [--concurrency 10]
                                [--reminders 100000] [--due 1000]

Starts its own ``hygie serve`` (SQLite), sends over SMTP submission, and counts agenda rows in
the database until every invitation is applied. Then the reminder scheduler's lag: with
``--reminders`` pending reminders in the table, ``--due`` of them come due at once; the lag is
the time the claim/mark loop (``AgendaStore.claim_due``, ``mark_sent``) takes to take them all
(delivery of the messages themselves is measured by the SMTP and dossier benchmarks). Writes
``agenda_load.json`` and a section of ``summary.md`` between ``<!-- agenda -->`` markers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from icalendar import Alarm, Calendar, Event

from bench.dossier_load import DOCTOR, PASSWORD, patients, send_all
from bench.harness import ServerProcess
from bench.smtp_load import environment
from bench.summary import replace_section
from storage.accounts import create_account
from storage.agenda import REMINDERS, AgendaStore
from storage.blobs import open_blob_store
from storage.crypto import MasterKey
from storage.db import Database, migrate

PARIS = ZoneInfo("Europe/Paris")


def invitation(patient: str, index: int) -> bytes:
    calendar = Calendar()
    calendar.add("PRODID", "-//Hygie bench//FR")
    calendar.add("VERSION", "2.0")
    calendar.add("METHOD", "REQUEST")
    event = Event()
    event.add("UID", f"bench-{index}@hygie.test")
    event.add("DTSTAMP", datetime(2026, 11, 20, 9, 0, tzinfo=UTC))
    event.add("SEQUENCE", 0)
    start = datetime(2026, 3, 2, 9, 0, tzinfo=PARIS) + timedelta(minutes=30 * (index % 16))
    event.add("DTSTART", start)
    event.add("DTEND", start + timedelta(minutes=30))
    event.add("RRULE", {"FREQ": "WEEKLY", "COUNT": 10})
    event.add("SUMMARY", f"Séance {index}")
    event.add("ORGANIZER", f"mailto:{DOCTOR[0]}")
    event.add("ATTENDEE", f"mailto:{DOCTOR[0]}", parameters={"PARTSTAT": "ACCEPTED"})
    event.add("ATTENDEE", f"mailto:{patient}",
              parameters={"PARTSTAT": "NEEDS-ACTION", "RSVP": "TRUE"})  # fmt: skip
    alarm = Alarm()
    alarm.add("ACTION", "DISPLAY")
    alarm.add("TRIGGER", timedelta(hours=-24))
    alarm.add("DESCRIPTION", "Rappel")
    event.add_component(alarm)
    calendar.add_component(event)
    calendar.add_missing_timezones()
    message = EmailMessage()
    message["From"] = DOCTOR[0]
    message["To"] = patient
    message["Subject"] = f"Rendez-vous {index}"
    message["X-MSS-NIL"] = "HYGIE-BENCH"
    message.set_content("Invitation ci-jointe.")
    message.add_alternative(calendar.to_ical(), maintype="text", subtype="calendar",
                            params={"method": "REQUEST", "charset": "UTF-8"})  # fmt: skip
    raw = message.as_bytes(policy=SMTP)
    return raw.replace(b"\r\n.", b"\r\n..")  # SMTP dot-stuffing (RFC 5321 §4.5.2)


def applied(server: ServerProcess) -> int:
    with sqlite3.connect(f"file:{server.data_dir / 'hygie.db'}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT count(*) FROM agenda_components").fetchone()[0])


async def reminder_lag(pending: int, due: int, workdir: Path) -> dict[str, Any]:
    url = f"sqlite+aiosqlite:///{workdir / 'reminders.db'}"
    await migrate(url)
    db = Database(url, open_blob_store("database", workdir / "blobs"))
    await db.start()
    try:
        master = MasterKey.create(workdir / "master.key")
        account = await create_account(db, master, "bench.patient@hygie.test", None)
        now = datetime.now(UTC)
        rows = [
            {"account_id": account.id, "uid_digest": f"{n:064x}", "occurrence": "x", "alarm": 0,
             "due_at": now - timedelta(seconds=1) if n < due
             else now + timedelta(minutes=1 + n % 144_000)}
            for n in range(pending)
        ]  # fmt: skip
        for start in range(0, pending, 10_000):
            chunk = rows[start : start + 10_000]
            await db.writer.run(lambda conn, chunk=chunk: conn.execute(REMINDERS.insert(), chunk))
        store = AgendaStore(db, master)
        t0 = time.monotonic()
        idle = await store.claim_due(now - timedelta(hours=1), timedelta(minutes=5))
        idle_s = time.monotonic() - t0
        assert idle == []
        taken = 0
        t0 = time.monotonic()
        while taken < due:
            batch = await store.claim_due(now, timedelta(minutes=5))
            if not batch:
                break
            for reminder in batch:
                await store.mark_sent(reminder.id, now)
            taken += len(batch)
        lag_s = time.monotonic() - t0
    finally:
        await db.close()
    return {"pending": pending, "due": due, "taken": taken,
            "idle_round_ms": round(idle_s * 1000, 1), "lag_s": round(lag_s, 2)}  # fmt: skip


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    people = [f"{p}@patient.hygie.test" for p in patients(10)]
    server = ServerProcess(users={DOCTOR[0]: DOCTOR[1], **dict.fromkeys(people, PASSWORD)})
    expected = 2 * args.messages  # the patient's copy and the organiser's
    try:
        server.start()
        messages = [(people[i % 10], invitation(people[i % 10], i)) for i in range(args.messages)]
        size = sum(len(m) for _, m in messages) // len(messages)
        t0 = time.monotonic()
        errors = asyncio.run(send_all(server, messages, args.concurrency))
        while applied(server) < expected and time.monotonic() - t0 < 1800:
            time.sleep(0.2)
        total_s = time.monotonic() - t0
        count = applied(server) // 2
    finally:
        try:
            server.stop()
        finally:
            server.close()
    return {
        "benchmark": "agenda_load",
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S%z"),
        "environment": environment("sqlite", "file"),
        "parameters": {
            "messages": args.messages,
            "concurrency": args.concurrency,
            "message_bytes": size,
        },
        "results": {
            "applied": count,
            "errors": errors[:5],
            "seconds": round(total_s, 2),
            "messages_per_s": round(count / total_s, 1) if total_s else None,
            "reminders": asyncio.run(  # in a directory made by main()
                reminder_lag(args.reminders, args.due, args.out / "agenda_reminders.tmp")
            ),
        },
    }


def write_summary(out: Path, result: dict[str, Any]) -> None:
    r, p = result["results"], result["parameters"]
    section = "\n".join([
        "<!-- agenda -->",
        "# Benchmark: agenda (iMIP)",
        "",
        "Issue 9 item 7, produced by `make bench` (`python -m bench.agenda_load`): iMIP "
        "REQUESTs (a weekly Europe/Paris series with an alarm) submitted by a practitioner to "
        "patients, delivered, parsed and applied to the patient's agenda and the organiser's "
        "copy (two encrypted rows each); raw figures in `agenda_load.json`.",
        "",
        "| messages | sessions | message size | applied | time | rate |",
        "|---|---|---|---|---|---|",
        f"| {p['messages']} | {p['concurrency']} | {p['message_bytes'] // 1024} KiB | "
        f"{r['applied']} | {r['seconds']} s | **{r['messages_per_s']} msg/s** |",
        "",
        "Reminder scheduler (SQLite): with "
        f"{r['reminders']['pending']:,} pending reminders, {r['reminders']['due']:,} come due "
        f"at once; claiming and marking them all takes **{r['reminders']['lag_s']} s** "
        f"(the last one's lag, plus at most one 5 s round); a round with nothing due takes "
        f"{r['reminders']['idle_round_ms']} ms.",
        "<!-- /agenda -->",
    ])  # fmt: skip
    replace_section(out, "agenda", section)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.agenda_load", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--reminders", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=1000)
    args = parser.parse_args(argv)
    (args.out / "agenda_reminders.tmp").mkdir(parents=True, exist_ok=True)
    result = benchmark(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "agenda_load.json").write_text(json.dumps(result, indent=2) + "\n")
    write_summary(args.out, result)
    shutil.rmtree(args.out / "agenda_reminders.tmp", ignore_errors=True)
    print(json.dumps(result["results"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
