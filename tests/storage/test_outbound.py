"""The outbound queue's storage on SQLite and PostgreSQL: durable enqueue with the body
encrypted, leases that two workers never share, back-off bookkeeping, and clean removal."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from storage import outbound
from storage.blobs import open_blob_store
from storage.crypto import MasterKey
from storage.db import Database, migrate
from storage.models import OutboundMessage
from storage.outbound import QueuedRecipient

MARKER = b"OUTBOUND-MARKER-5c1e"


@pytest.fixture()
async def db(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[Database, MasterKey]]:
    await migrate(database_url)
    database = Database(database_url, open_blob_store("database", tmp_path / "b"))
    await database.start()
    try:
        yield database, MasterKey.create(tmp_path / "master.key")
    finally:
        await database.close()


def rcpt(n: int) -> QueuedRecipient:
    return QueuedRecipient(f"r{n}@autre.test", "autre.test", None, "FAILURE,DELAY")


async def test_enqueue_lease_finish(db: tuple[Database, MasterKey]) -> None:
    database, master = db
    raw = b"Subject: x\r\n\r\n" + MARKER + b"\r\n"
    message_id = await outbound.enqueue(
        database, master, raw, "alice@hygie.test", [rcpt(1), rcpt(2)], envid="E1", ret="HDRS"
    )
    async with database.read() as session:
        stored = await session.scalar(select(OutboundMessage.body))
    assert stored is not None and MARKER not in stored  # encrypted at rest
    loaded = await outbound.load(database, master, message_id)
    assert loaded is not None and loaded.raw == raw and loaded.envid == "E1"

    first = sorted(
        await outbound.lease(database, "w1", limit=10, lease_seconds=60), key=lambda i: i.recipient
    )
    assert [i.recipient for i in first] == ["r1@autre.test", "r2@autre.test"]
    assert await outbound.lease(database, "w2", limit=10, lease_seconds=60) == []  # leased

    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    await outbound.defer(database, first[:1], next_attempt_at=later, error="421 busy")
    await outbound.finish(database, first[1:])
    listing = await outbound.listing(database)
    assert [(i.recipient, i.attempts, i.last_error) for i in listing] == [
        ("r1@autre.test", 1, "421 busy")
    ]
    assert await outbound.lease(database, "w1", limit=10, lease_seconds=60) == []  # not due
    assert await outbound.retry_now(database) == 1
    (again,) = await outbound.lease(database, "w1", limit=10, lease_seconds=60)
    await outbound.finish(database, [again])
    assert await outbound.load(database, master, message_id) is None  # message gone with it


async def test_concurrent_workers_never_share(db: tuple[Database, MasterKey]) -> None:
    database, master = db
    for n in range(40):
        await outbound.enqueue(database, master, b"x\r\n", "a@hygie.test", [rcpt(n)])
    batches = await asyncio.gather(
        *(outbound.lease(database, f"w{k}", limit=7, lease_seconds=60) for k in range(8))
    )
    ids = [item.id for batch in batches for item in batch]
    assert len(ids) == len(set(ids)) == 40


async def test_expired_lease_is_taken_again_and_remove(db: tuple[Database, MasterKey]) -> None:
    database, master = db
    await outbound.enqueue(database, master, b"x\r\n", "a@hygie.test", [rcpt(1)])
    (held,) = await outbound.lease(database, "w1", limit=5, lease_seconds=60)
    # "retry now" does not take a recipient from the worker trying it at this moment.
    assert await outbound.retry_now(database) == 0
    assert await outbound.lease(database, "w2", limit=5, lease_seconds=60) == []
    await outbound.defer(database, [held], next_attempt_at=outbound.now(), error="x")
    (item,) = await outbound.lease(database, "dead-worker", limit=5, lease_seconds=0.01)
    await asyncio.sleep(0.05)
    (again,) = await outbound.lease(database, "w2", limit=5, lease_seconds=60)
    assert again.id == item.id
    assert await outbound.remove(database, [item.id]) == 1
    assert await outbound.listing(database) == []
