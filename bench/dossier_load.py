"""Dossier filing throughput (issue 7 item 7): XDM messages (a 100 KiB CDA and a 200 KiB PDF
in an IHE_XDM.zip) submitted to patients' addresses and filed in their dossiers.

    python -m bench.dossier_load --out bench/results [--messages 300] [--concurrency 10]

Starts its own ``hygie serve`` (SQLite), sends over SMTP submission, and counts filed
documents in the database until every message is in. Writes ``dossier_load.json`` and a
section of ``summary.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import time
from datetime import UTC, date, datetime
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

from bench.harness import ServerProcess
from bench.smtp_load import Session, environment
from bench.summary import replace_section
from dossier.cda import (
    LOINC_OID,
    Author,
    CdaDocument,
    Code,
    Custodian,
    PatientIdentity,
    Section,
    build_cda,
)  # fmt: skip
from dossier.ins import NIR_OID, Ins, ins_key
from dossier.subject import mss_document_headers
from dossier.xdm import OutgoingDocument, build_xdm, parse_xdm

DOCTOR = ("bench.doctor@hygie.test", "bench-doctor-password")
PASSWORD = "bench-patient-password"


def patients(count: int) -> list[str]:
    out = []
    for n in range(count):
        first13 = f"27903751{n:05d}"
        out.append(f"{first13}{ins_key(first13):02d}")
    return out


def xdm_message(matricule: str, index: int) -> bytes:
    paragraphs = tuple(f"Paragraphe {i} du compte rendu {index}. " * 8 for i in range(330))
    doc = CdaDocument(
        code=Code("11488-4", LOINC_OID, "Compte rendu de consultation"),
        title=f"Consultation {index}",
        patient=PatientIdentity(
            Ins(matricule, NIR_OID), "DUPONT", ("Marie",), date(1979, 3, 12), "F"
        ),
        author=Author("810001234567", "MARTIN", "Paul", "Dr", "Hôpital Hygie"),
        custodian=Custodian("Hôpital Hygie"),
        effective_time=datetime(2026, 11, 20, 9, 30, tzinfo=UTC),
    )  # fmt: skip
    cda = build_cda(doc, sections=[Section("Conclusion", paragraphs)])
    pdf = b"%PDF-1.4\n" + os.urandom(200 * 1024) + b"\n%%EOF\n"
    archive = build_xdm([OutgoingDocument(cda, pdf=pdf)], source_id="1.2.250.1.999.1")
    message = EmailMessage()
    message["From"] = DOCTOR[0]
    message["To"] = f"{matricule}@patient.hygie.test"
    message["Subject"] = f"Compte rendu {index}"
    message["X-MSS-NIL"] = "HYGIE-BENCH"
    for name, value in mss_document_headers(parse_xdm(archive), ins_qualified=True).items():
        message[name] = value
    message.set_content("Compte rendu ci-joint.")
    message.add_attachment(archive, maintype="application", subtype="zip", filename="IHE_XDM.zip")
    raw = message.as_bytes(policy=SMTP)
    return raw.replace(b"\r\n.", b"\r\n..")  # SMTP dot-stuffing (RFC 5321 §4.5.2)


def filed(server: ServerProcess) -> int:
    with sqlite3.connect(f"file:{server.data_dir / 'hygie.db'}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT count(*) FROM dossier_documents").fetchone()[0])


async def send_all(
    server: ServerProcess, messages: list[tuple[str, bytes]], concurrency: int
) -> list[str]:
    pending = iter(messages)
    errors: list[str] = []

    async def worker() -> None:
        session = await Session.open(server, *DOCTOR)
        try:
            for recipient, raw in pending:
                await session.send(DOCTOR[0], recipient, raw)
        except Exception as exc:  # recorded in the result
            errors.append(repr(exc))
        finally:
            await session.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return errors


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    people = patients(10)
    users = {DOCTOR[0]: DOCTOR[1], **{f"{p}@patient.hygie.test": PASSWORD for p in people}}
    server = ServerProcess(users=users)
    try:
        server.start()
        messages = [(f"{people[i % 10]}@patient.hygie.test", xdm_message(people[i % 10], i))
                    for i in range(args.messages)]  # fmt: skip
        size = sum(len(m) for _, m in messages) // len(messages)
        t0 = time.monotonic()
        errors = asyncio.run(send_all(server, messages, args.concurrency))
        sent_s = time.monotonic() - t0
        while filed(server) < args.messages and time.monotonic() - t0 < 1800:
            time.sleep(0.2)
        total_s = time.monotonic() - t0
        count = filed(server)
    finally:
        try:
            server.stop()
        finally:
            server.close()
    return {
        "benchmark": "dossier_load",
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S%z"),
        "environment": environment("sqlite", "file"),
        "parameters": {
            "messages": args.messages,
            "concurrency": args.concurrency,
            "message_bytes": size,
        },
        "results": {
            "filed": count,
            "errors": errors[:5],
            "seconds": round(total_s, 2),
            "accepted_seconds": round(sent_s, 2),
            "messages_per_s": round(count / total_s, 1) if total_s else None,
        },
    }


def write_summary(out: Path, result: dict[str, Any]) -> None:
    r, p = result["results"], result["parameters"]
    section = "\n".join([
        "<!-- dossier -->",
        "# Benchmark: dossier filing",
        "",
        "Issue 7 item 7, produced by `make bench` (`python -m bench.dossier_load`): IHE_XDM.zip "
        "messages (100 KiB CDA + 200 KiB PDF) submitted to patients, checked (XDM, X-MSS "
        "headers), delivered, and filed in their Dossier folder; raw figures in "
        "`dossier_load.json`.",
        "",
        "| messages | sessions | message size | filed | time | rate |",
        "|---|---|---|---|---|---|",
        f"| {p['messages']} | {p['concurrency']} | {p['message_bytes'] // 1024} KiB | "
        f"{r['filed']} | {r['seconds']} s | **{r['messages_per_s']} msg/s** |",
        "<!-- /dossier -->",
    ])  # fmt: skip
    replace_section(out, "dossier", section)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dossier_load", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=10)
    args = parser.parse_args(argv)
    result = benchmark(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "dossier_load.json").write_text(json.dumps(result, indent=2) + "\n")
    write_summary(args.out, result)
    print(json.dumps(result["results"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
