"""The segment blob store (storage/blobs.py): one append and one fdatasync per group commit,
an index row per blob written by the same transaction as the messages, zeroed bytes after
expunge, dead segments unlinked, and the per-file layout still readable."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from storage.accounts import create_account, unlock_keys
from storage.blobs import BlobNotFound, FileBlobStore, SegmentBlobStore
from storage.crypto import MasterKey
from storage.db import Database, migrate
from storage.mailstore import MailStore, Recipient
from storage.models import Message, SegmentBlob


class Env:
    def __init__(self, db: Database, blobs: SegmentBlobStore, master: MasterKey) -> None:
        self.db, self.blobs, self.master = db, blobs, master
        self.mail = MailStore(db)

    async def recipient(self, address: str) -> Recipient:
        await create_account(self.db, self.master, address, "password-" + address)
        found = await self.mail.resolve(address)
        assert found is not None
        return found

    async def index_rows(self) -> int:
        async with self.db.read() as session:
            return int(await session.scalar(select(func.count()).select_from(SegmentBlob)) or 0)

    async def blob_of(self, folder_id: int, uid: int) -> tuple[str, bytes]:
        async with self.db.read() as session:
            blob_id = await session.scalar(
                select(Message.blob_id).where(Message.folder_id == folder_id, Message.uid == uid)
            )
            assert blob_id is not None
            return blob_id, await self.blobs.get(session, blob_id)

    def segment_files(self) -> list[Path]:
        return sorted(self.blobs.segments.glob("*.seg"))


@pytest.fixture
async def env(database_url: str, tmp_path: Path) -> AsyncIterator[Env]:
    await migrate(database_url)
    blobs = SegmentBlobStore(tmp_path / "blobs")
    db = Database(database_url, blobs, group_commit_max=64)
    await db.start()
    try:
        yield Env(db, blobs, MasterKey.create(tmp_path / "master.key"))
    finally:
        await db.close()


def message(i: int, size: int = 300) -> bytes:
    return b"Subject: seg %d\r\n\r\n" % i + b"x" * size + b"\r\n"


async def test_a_batch_is_one_segment_append_and_reads_back(env: Env) -> None:
    r = await env.recipient("a@hygie.test")
    raws = [message(i, 100 + 37 * i) for i in range(40)] + [message(99, 300_000)]
    batches = env.db.writer.batches
    results = await asyncio.gather(*(env.mail.deliver(raw, {}, [r]) for raw in raws))
    assert env.db.writer.batches - batches < len(raws)
    assert len(env.segment_files()) == 1
    assert await env.index_rows() == len(raws)
    keys = await unlock_keys(env.db, env.master, r.account_id)
    for (d,), raw in zip(results, raws, strict=True):
        assert await env.mail.read_body(keys, d.folder_id, d.uid) == raw
        streamed = b"".join([p async for p in env.mail.stream_body(keys, d.folder_id, d.uid)])
        assert streamed == raw
        blob_id, ciphertext = await env.blob_of(d.folder_id, d.uid)
        assert hashlib.sha256(ciphertext).hexdigest() == blob_id  # still content-addressed


async def test_a_failed_transaction_leaves_orphan_bytes_and_no_row(env: Env) -> None:
    """What a crash between the segment's fdatasync and the commit leaves behind."""
    r = await env.recipient("a@hygie.test")
    await env.mail.deliver(message(1), {}, [r])
    size_before = env.segment_files()[0].stat().st_size
    orphan = os.urandom(5000)
    orphan_id = hashlib.sha256(orphan).hexdigest()

    def fails(conn: Connection) -> None:
        raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        await env.db.writer.run(fails, blobs=[(orphan_id, orphan)])
    # The bytes reached the segment, but no row names them, so nothing can read them.
    assert env.segment_files()[0].stat().st_size == size_before + len(orphan)
    assert await env.index_rows() == 1
    async with env.db.read() as session:
        with pytest.raises(BlobNotFound):
            await env.blobs.get(session, orphan_id)
    # Later batches go after the orphan bytes and read back intact.
    (d,) = await env.mail.deliver(message(2), {}, [r])
    keys = await unlock_keys(env.db, env.master, r.account_id)
    assert await env.mail.read_body(keys, d.folder_id, d.uid) == message(2)


async def test_a_failed_fdatasync_commits_nothing_of_its_batch(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The segment's fdatasync runs while the batch's statements execute; the commit waits for
    it, so when the disk fails no message of the batch exists (never a row before its bytes),
    and the next batch goes to a new segment."""
    r = await env.recipient("a@hygie.test")
    await env.mail.deliver(message(0), {}, [r])
    (first,) = env.segment_files()
    real = os.fdatasync

    def failing(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr("storage.blobs.os.fdatasync", failing)
    results = await asyncio.gather(
        *(env.mail.deliver(message(i), {}, [r]) for i in range(1, 6)), return_exceptions=True
    )
    assert all(isinstance(x, OSError) for x in results), results
    assert await env.index_rows() == 1
    async with env.db.read() as session:
        count = await session.scalar(
            select(func.count()).select_from(Message).where(Message.folder_id == r.folder_id)
        )
    assert count == 1
    monkeypatch.setattr("storage.blobs.os.fdatasync", real)
    (d,) = await env.mail.deliver(message(9), {}, [r])
    # Where a failed segment ends is unknown: each failed batch closed its segment, the
    # next batch opened a new one.
    assert first not in env.segment_files()[-1:]
    keys = await unlock_keys(env.db, env.master, r.account_id)
    assert await env.mail.read_body(keys, d.folder_id, d.uid) == message(9)


async def test_a_failing_item_fails_alone_and_the_others_keep_their_blobs(env: Env) -> None:
    r = await env.recipient("a@hygie.test")

    def broken(conn: Connection) -> None:
        raise RuntimeError("boom")

    data = os.urandom(100)
    results = await asyncio.gather(
        env.db.writer.run(broken, blobs=[(hashlib.sha256(data).hexdigest(), data)]),
        *(env.mail.deliver(message(i), {}, [r]) for i in range(8)),
        return_exceptions=True,
    )
    assert isinstance(results[0], RuntimeError)
    keys = await unlock_keys(env.db, env.master, r.account_id)
    for i, result in enumerate(results[1:]):
        assert isinstance(result, list)
        (d,) = result
        assert await env.mail.read_body(keys, d.folder_id, d.uid) == message(i)
    assert await env.index_rows() == 8


async def test_the_same_ciphertext_is_indexed_once(env: Env) -> None:
    data = os.urandom(2000)
    blob_id = hashlib.sha256(data).hexdigest()

    def nothing(conn: Connection) -> None:
        return None

    await asyncio.gather(*(env.db.writer.run(nothing, blobs=[(blob_id, data)]) for _ in range(3)))
    await env.db.writer.run(nothing, blobs=[(blob_id, data), (blob_id, data)])
    assert await env.index_rows() == 1
    async with env.db.read() as session:
        assert await env.blobs.get(session, blob_id) == data


async def test_expunge_zeroes_the_bytes_and_copies_keep_them(env: Env) -> None:
    r = await env.recipient("a@hygie.test")
    (d1,), (d2,) = [await env.mail.deliver(message(i, 4000), {}, [r]) for i in range(2)]
    blob1, ct1 = await env.blob_of(r.folder_id, d1.uid)
    _, ct2 = await env.blob_of(r.folder_id, d2.uid)
    other = await env.mail.create_folder(r.account_id, "Kept")
    await env.mail.copy(r.folder_id, [d1.uid], other.id)
    await env.mail.store_flags(r.folder_id, [d1.uid], ["\\Deleted"], "add")
    await env.mail.expunge(r.folder_id)
    # Still referenced by the copy: still there.
    segment = env.segment_files()[0]
    assert ct1 in segment.read_bytes()
    await env.mail.store_flags(other.id, [1], ["\\Deleted"], "add")
    await env.mail.expunge(other.id)
    await env.mail.settle()  # the zeroing runs after the expunge's reply
    data = segment.read_bytes()
    assert ct1 not in data and ct2 in data
    async with env.db.read() as session:
        with pytest.raises(BlobNotFound):
            await env.blobs.get(session, blob1)
    keys = await unlock_keys(env.db, env.master, r.account_id)
    assert await env.mail.read_body(keys, r.folder_id, d2.uid) == message(1, 4000)


async def test_full_segments_are_sealed_and_unlinked_once_empty(env: Env) -> None:
    env.blobs.segment_size = 10_000
    r = await env.recipient("a@hygie.test")
    delivered = [(await env.mail.deliver(message(i, 11_000), {}, [r]))[0] for i in range(4)]
    files = env.segment_files()
    assert len(files) == 4  # each append filled its segment
    for path in files:
        assert not path.stat().st_mode & stat.S_IWUSR  # sealed: never written again
    await env.mail.store_flags(r.folder_id, [d.uid for d in delivered[:2]], ["\\Deleted"], "add")
    await env.mail.expunge(r.folder_id)
    await env.mail.settle()  # the zeroing and unlinking run after the expunge's reply
    assert env.segment_files() == files[2:]
    keys = await unlock_keys(env.db, env.master, r.account_id)
    for i, d in enumerate(delivered[2:], start=2):
        assert await env.mail.read_body(keys, d.folder_id, d.uid) == message(i, 11_000)


async def test_the_active_segment_is_sealed_at_close(database_url: str, tmp_path: Path) -> None:
    await migrate(database_url)
    blobs = SegmentBlobStore(tmp_path / "blobs")
    db = Database(database_url, blobs)
    await db.start()
    data = os.urandom(100)

    def nothing(conn: Connection) -> Any:
        return None

    await db.writer.run(nothing, blobs=[(hashlib.sha256(data).hexdigest(), data)])
    (path,) = blobs.segments.glob("*.seg")
    assert path.stat().st_mode & stat.S_IWUSR
    await db.close()
    assert not path.stat().st_mode & stat.S_IWUSR


async def test_blobs_of_the_per_file_layout_are_still_read_and_deleted(env: Env) -> None:
    data = os.urandom(3000)
    blob_id = hashlib.sha256(data).hexdigest()
    FileBlobStore(env.blobs.root).write([(blob_id, data)])
    legacy = env.blobs.root / blob_id[:2] / blob_id
    assert legacy.is_file()
    async with env.db.read() as session:
        assert await env.blobs.get(session, blob_id) == data
        with await env.blobs.reader(session, blob_id) as f:
            assert f.read() == data
    await env.blobs.delete_files([blob_id])
    assert not legacy.exists()


async def test_a_busy_lookup_is_retried_off_the_loop(tmp_path: Path) -> None:
    """RCPT lookups run on the loop with no busy timeout; if SQLite answers "busy" the read
    goes to the thread that may wait, instead of failing or blocking the loop."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'hygie.db'}"
    await migrate(url)
    db = Database(url, SegmentBlobStore(tmp_path / "blobs"))
    await db.start()

    class Busy:
        def execute(self, sql: str, params: Any) -> Any:
            exc = sqlite3.OperationalError("database is locked")
            exc.sqlite_errorcode = sqlite3.SQLITE_BUSY
            raise exc

        def close(self) -> None:
            pass

    try:
        assert await db.lookup("SELECT count(*) FROM accounts") == [(0,)]
        lookups: Any = db._lookups
        lookups._inline = Busy()
        assert await db.lookup("SELECT count(*) FROM accounts WHERE id > ?", 0) == [(0,)]
    finally:
        await db.close()
