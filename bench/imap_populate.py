"""Fill mailboxes fast for the IMAP benchmarks, through the storage API, before the server starts.

    python -m bench.imap_populate --data DIR ADDRESS=COUNT [ADDRESS=COUNT …] [--concurrency 256]

Each message is a real one (2–8 KiB, text/plain or multipart with an attachment, varied
senders, subjects, dates and flags), analysed with :func:`server.delivery.local.describe` and stored
with :meth:`storage.mailstore.MailStore.deliver`: encrypted under its own content key, its blob
fsynced, its row committed by the group-commit writer, exactly as an SMTP delivery would be. Only
the SMTP dialogue and the argon2id login are skipped. The accounts must exist (``hygie user
add``); the data directory's ``hygie.toml`` (and ``HYGIE_*`` overrides) says where the store is.
Messages are generated from a fixed seed, so two runs build the same mailboxes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

from server.config import load_config
from server.delivery.local import describe
from storage.blobs import open_blob_store
from storage.crypto import MasterKey
from storage.db import Database
from storage.mailstore import MailStore, Recipient

SENDERS = [
    ("Dr Claire Martin", "claire.martin@chu-lyon.mssante.fr"),
    ("Laboratoire Cerballiance", "resultats@cerballiance.mssante.fr"),
    ("Dr Paul Lefèvre", "paul.lefevre@medecin.mssante.fr"),
    ("Secrétariat Cardiologie", "cardio@ch-annecy.mssante.fr"),
    ("Pharmacie du Centre", "officine.centre@pharmacien.mssante.fr"),
    ("Imagerie Médicale Sud", "imagerie-sud@radiologie.mssante.fr"),
    ("Dr Amina Diallo", "amina.diallo@medecin.mssante.fr"),
    ("Service des urgences", "urgences@chu-grenoble.mssante.fr"),
]
TOPICS = [
    "Compte rendu de consultation",
    "Résultats de biologie",
    "Lettre de liaison",
    "Demande d'avis",
    "Ordonnance",
    "Compte rendu opératoire",
    "Imagerie : IRM lombaire",
    "Suivi post-hospitalisation",
]
WORDS = (
    "patient suivi traitement bilan constantes normales examen clinique antécédents allergie "
    "posologie contrôle rendez-vous tension artérielle glycémie créatinine hémoglobine avis "
    "cardiologique échographie recommandations surveillance"
).split()
EPOCH = datetime(2024, 1, 1, 8, 0, tzinfo=UTC)


def body_text(rng: random.Random, size: int) -> str:
    lines = []
    total = 0
    while total < size:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 11)))
        lines.append(line.capitalize() + ".")
        total += len(lines[-1]) + 2
    return "\r\n".join(lines) + "\r\n"


def build_message(rng: random.Random, index: int, recipient: str) -> tuple[bytes, datetime]:
    """One message of 2–8 KiB; a fifth are multipart/mixed with a small PDF-like attachment."""
    name, sender = rng.choice(SENDERS)
    when = EPOCH + timedelta(minutes=7 * index + rng.randint(0, 6))
    subject = f"{rng.choice(TOPICS)} n°{index} – patient {rng.randint(1000, 9999)}"
    head = [
        f"Return-Path: <{sender}>",
        f"From: {name} <{sender}>",
        f"To: <{recipient}>",
        f"Subject: {subject}",
        f"Date: {format_datetime(when)}",
        f"Message-ID: <bench-{index}-{rng.getrandbits(32):08x}@{sender.split('@')[1]}>",
        "MIME-Version: 1.0",
    ]
    if rng.random() < 0.3:
        head.append(f"In-Reply-To: <bench-{max(0, index - rng.randint(1, 50))}@hygie.test>")
    if rng.random() < 0.2:
        head.append(f"Cc: Secrétariat <secretariat{rng.randint(1, 9)}@hygie.test>")
    text = body_text(rng, rng.randint(1500, 6000))
    if rng.random() < 0.2:
        boundary = f"=_bench_{index:08d}"
        attachment = "\r\n".join(
            "".join(
                rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
                for _ in range(76)
            )
            for _ in range(rng.randint(10, 30))
        )
        head.append(f'Content-Type: multipart/mixed; boundary="{boundary}"')
        body = (
            f"This is a multi-part message in MIME format.\r\n\r\n--{boundary}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            f"{text}\r\n--{boundary}\r\n"
            'Content-Type: application/pdf; name="cr.pdf"\r\n'
            'Content-Disposition: attachment; filename="cr.pdf"\r\n'
            f"Content-Transfer-Encoding: base64\r\n\r\n{attachment}\r\n--{boundary}--\r\n"
        )
    else:
        head.append("Content-Type: text/plain; charset=utf-8")
        head.append("Content-Transfer-Encoding: 8bit")
        body = text
    raw = ("\r\n".join(head) + "\r\n\r\n" + body).encode()
    return raw, when


def flags_for(rng: random.Random) -> list[str]:
    flags = []
    if rng.random() < 0.8:
        flags.append("\\Seen")
    if rng.random() < 0.05:
        flags.append("\\Flagged")
    if rng.random() < 0.1:
        flags.append("\\Answered")
    if rng.random() < 0.02:
        flags.append("$Label1")
    return flags


async def fill(
    store: MailStore, queue: asyncio.Queue[int], recipient: Recipient, seed: int
) -> None:
    """One of many concurrent deliverers: takes message numbers until the queue is empty."""
    flags_rng = random.Random(seed)
    while True:
        try:
            i = queue.get_nowait()
        except asyncio.QueueEmpty:
            return
        rng = random.Random(f"{recipient.address}/{i}")
        raw, when = build_message(rng, i, recipient.address)
        meta = describe(raw)  # ~30 µs: cheaper inline than a thread hop
        meta["internaldate"] = when.isoformat()
        await store.deliver(raw, meta, [recipient], flags_for(flags_rng))


async def populate(
    data_dir: Path, targets: list[tuple[str, int]], concurrency: int
) -> dict[str, dict[str, float]]:
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=32))
    config = load_config(data_dir)
    master = MasterKey.load(config.path(config.storage.master_key_file))
    del master  # delivery needs only the public keys; loading checks the data directory is whole
    blobs = open_blob_store(config.storage.blob_store, config.path(config.storage.blob_dir))
    db = Database(config.database_url, blobs, group_commit_max=max(64, concurrency))
    await db.start()
    store = MailStore(db)
    report: dict[str, dict[str, float]] = {}
    try:
        for address, count in targets:
            recipient = await store.resolve(address)
            if recipient is None:
                raise SystemExit(f"no such account: {address}")
            rng = random.Random(f"{address}/{count}")
            t0 = time.perf_counter()
            queue: asyncio.Queue[int] = asyncio.Queue()
            for i in range(count):
                queue.put_nowait(i)
            workers = min(concurrency, max(1, count))
            await asyncio.gather(
                *(fill(store, queue, recipient, rng.getrandbits(32)) for _ in range(workers))
            )
            elapsed = time.perf_counter() - t0
            report[address] = {
                "messages": count,
                "elapsed_s": round(elapsed, 2),
                "messages_per_s": round(count / elapsed, 1) if elapsed else 0.0,
            }
    finally:
        await db.close()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.imap_populate", description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("targets", nargs="+", metavar="ADDRESS=COUNT")
    args = parser.parse_args(argv)
    targets = []
    for item in args.targets:
        address, _, count = item.partition("=")
        targets.append((address, int(count)))
    report = asyncio.run(populate(args.data, targets, args.concurrency))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
