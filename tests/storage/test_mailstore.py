"""Accounts, delivery with group commit, flags and expunge, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from storage.accounts import (
    AccountError,
    create_account,
    find_account,
    list_accounts,
    set_password,
    unlock_keys,
    verify_password,
)
from storage.blobs import BlobNotFound, open_blob_store
from storage.crypto import MasterKey
from storage.db import Database, migrate
from storage.mailstore import FolderError, MailStore
from storage.models import Message

MARKER = b"ZEBRA-MARKER-7f3a"


@dataclass
class Store:
    db: Database
    master: MasterKey
    mail: MailStore
    blob_dir: Path


@pytest.fixture(params=["file", "database"])
async def store(
    database_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Store]:
    await migrate(database_url)
    master = MasterKey.create(tmp_path / "master.key")
    blob_dir = tmp_path / "blobs"
    db = Database(database_url, open_blob_store(request.param, blob_dir), group_commit_max=16)
    await db.start()
    try:
        yield Store(db, master, MailStore(db), blob_dir)
    finally:
        await db.close()


async def test_accounts_and_passwords(store: Store) -> None:
    info = await create_account(store.db, store.master, "Jean.Dupont@Hygie.test", "correct horse")
    assert info.address == "jean.dupont@hygie.test"
    with pytest.raises(AccountError, match="already exists"):
        await create_account(store.db, store.master, "jean.dupont@hygie.test", "another one")
    assert await verify_password(store.db, "JEAN.DUPONT@hygie.test", "correct horse") == info
    assert await verify_password(store.db, "jean.dupont@hygie.test", "wrong horse") is None
    assert await verify_password(store.db, "nobody@hygie.test", "correct horse") is None
    await set_password(store.db, "jean.dupont@hygie.test", "battery staple")
    assert await verify_password(store.db, "jean.dupont@hygie.test", "battery staple") == info
    assert [a.address for a in await list_accounts(store.db)] == ["jean.dupont@hygie.test"]
    assert await find_account(store.db, "not an address") is None
    with pytest.raises(AccountError, match="at least 8"):
        await create_account(store.db, store.master, "x@hygie.test", "short")


async def test_concurrent_deliveries_share_commits_and_get_dense_uids(store: Store) -> None:
    a = await create_account(store.db, store.master, "a@hygie.test", "password-a")
    b = await create_account(store.db, store.master, "b@hygie.test", "password-b")
    ra, rb = await store.mail.resolve("a@hygie.test"), await store.mail.resolve("B@hygie.test")
    assert ra is not None and rb is not None
    batches_before = store.db.writer.batches
    messages = [b"Subject: n%d\r\n\r\n%s body %d\r\n" % (i, MARKER, i) for i in range(60)]
    results = await asyncio.gather(
        *(store.mail.deliver(raw, {"n": i}, [ra, rb]) for i, raw in enumerate(messages))
    )
    assert store.db.writer.batches - batches_before < 60  # group commit happened
    uids_a = sorted(d.uid for r in results for d in r if d.account_id == a.id)
    assert uids_a == list(range(1, 61))
    keys_a, keys_b = (
        await unlock_keys(store.db, store.master, a.id),
        await unlock_keys(store.db, store.master, b.id),
    )
    for deliveries, raw in zip(results, messages, strict=True):
        for d in deliveries:
            keys = keys_a if d.account_id == a.id else keys_b
            assert await store.mail.read_body(keys, d.folder_id, d.uid) == raw
    # One shared ciphertext, readable by each recipient only with its own key.
    d_a = next(d for d in results[0] if d.account_id == a.id)
    with pytest.raises(Exception):  # noqa: B017 - any failure to open is right
        await store.mail.read_body(keys_b, d_a.folder_id, d_a.uid)
    folder = await store.mail.refresh(ra.folder_id)
    assert folder is not None and folder.uidnext == 61


async def test_flags_and_expunge_remove_blob_when_last_reference_goes(store: Store) -> None:
    a = await create_account(store.db, store.master, "a@hygie.test", "password-a")
    ra = await store.mail.resolve("a@hygie.test")
    assert ra is not None
    d1, d2 = [
        (await store.mail.deliver(b"Subject: x\r\n\r\n%d\r\n" % i, {}, [ra]))[0] for i in range(2)
    ]
    changed = await store.mail.store_flags(ra.folder_id, [d1.uid], ["\\Deleted", "\\Seen"], "add")
    assert [(m.uid, sorted(m.flags)) for m in changed] == [(d1.uid, ["\\Deleted", "\\Seen"])]
    assert await store.mail.store_flags(ra.folder_id, [d1.uid], ["\\Seen"], "add") == []
    async with store.db.read() as session:
        blob_id = await session.scalar(select(Message.blob_id).where(Message.uid == d1.uid))
        assert blob_id is not None
        ciphertext = await store.db.blobs.get(session, blob_id)
    assert await store.mail.expunge(ra.folder_id) == [d1.uid]
    assert list(await store.mail.flags(ra.folder_id)) == [d2.uid]
    async with store.db.read() as session:
        with pytest.raises(BlobNotFound):
            await store.db.blobs.get(session, blob_id)
    # The expunged ciphertext is gone from the disk too, not just unreferenced.
    for path in store.blob_dir.rglob("*"):
        assert not path.is_file() or ciphertext not in path.read_bytes()
    keys = await unlock_keys(store.db, store.master, a.id)
    assert await store.mail.read_body(keys, ra.folder_id, d2.uid) == b"Subject: x\r\n\r\n1\r\n"


async def test_a_failing_item_fails_alone(store: Store) -> None:
    await create_account(store.db, store.master, "a@hygie.test", "password-a")
    ra = await store.mail.resolve("a@hygie.test")
    assert ra is not None

    def broken(conn: object) -> None:
        raise RuntimeError("boom")

    results = await asyncio.gather(
        store.db.writer.run(broken),
        *(store.mail.deliver(b"Subject: ok\r\n\r\nok\r\n", {}, [ra]) for _ in range(5)),
        return_exceptions=True,
    )
    assert isinstance(results[0], RuntimeError)
    assert all(isinstance(r, list) for r in results[1:])
    assert len(await store.mail.flags(ra.folder_id)) == 5


async def test_default_folders_copy_move_and_changes(store: Store) -> None:
    a = await create_account(store.db, store.master, "a@hygie.test", "password-a")
    folders = {f.name: f for f in await store.mail.folders(a.id)}
    assert {n: f.special_use for n, f in folders.items()} == {
        "INBOX": None,
        "Sent": "Sent",
        "Drafts": "Drafts",
        "Trash": "Trash",
        "Archive": "Archive",
    }
    inbox, archive = folders["INBOX"], folders["Archive"]
    ra = await store.mail.resolve("a@hygie.test")
    assert ra is not None
    for i in range(3):
        await store.mail.deliver(b"Subject: %d\r\n\r\nbody\r\n" % i, {}, [ra])
    start = (await store.mail.refresh(inbox.id)).highestmodseq  # type: ignore[union-attr]
    assert await store.mail.copy(inbox.id, [1, 2], archive.id) == [(1, 1), (2, 2)]
    assert await store.mail.copy(inbox.id, [3], archive.id, move=True) == [(3, 3)]
    changes = await store.mail.changes(inbox.id, start)
    assert changes.expunged == [3] and changes.changed == []
    keys = await unlock_keys(store.db, store.master, a.id)
    # The copies share the blob and sealed key: readable without re-encryption.
    assert await store.mail.read_body(keys, archive.id, 3) == b"Subject: 2\r\n\r\nbody\r\n"
    counts = await store.mail.counts(archive.id)
    assert counts["MESSAGES"] == 3 and counts["UNSEEN"] == 3 and counts["SIZE"] > 0


async def test_create_rename_delete_folders(store: Store) -> None:
    a = await create_account(store.db, store.master, "a@hygie.test", "password-a")
    await store.mail.create_folder(a.id, "Patients/Dupont/2026")
    names = {f.name for f in await store.mail.folders(a.id)}
    assert {"Patients", "Patients/Dupont", "Patients/Dupont/2026"} <= names
    with pytest.raises(FolderError, match="already exists"):
        await store.mail.create_folder(a.id, "Patients")
    with pytest.raises(FolderError) as info:
        await store.mail.delete_folder(a.id, "Patients")
    assert info.value.code == "HASCHILDREN"
    await store.mail.rename_folder(a.id, "Patients", "Dossiers")
    names = {f.name for f in await store.mail.folders(a.id)}
    assert "Dossiers/Dupont/2026" in names and not any(n.startswith("Patients") for n in names)
    # RENAME INBOX moves its messages and leaves INBOX empty (RFC 9051 §6.3.6).
    ra = await store.mail.resolve("a@hygie.test")
    assert ra is not None
    await store.mail.deliver(b"Subject: x\r\n\r\nx\r\n", {}, [ra])
    await store.mail.rename_folder(a.id, "inbox", "Old")
    old = await store.mail.folder(a.id, "Old")
    inbox = await store.mail.folder(a.id, "INBOX")
    assert old is not None and inbox is not None
    assert list(await store.mail.flags(old.id)) == [1] and await store.mail.flags(inbox.id) == {}
    await store.mail.delete_folder(a.id, "Old")
    assert await store.mail.folder(a.id, "Old") is None


async def test_large_body_streams_block_by_block(store: Store) -> None:
    a = await create_account(store.db, store.master, "a@hygie.test", "password-a")
    ra = await store.mail.resolve("a@hygie.test")
    assert ra is not None
    raw = b"Subject: big\r\n\r\n" + b"".join(
        b"line %07d of a long report\r\n" % i for i in range(40000)
    )
    (d,) = await store.mail.deliver(raw, {}, [ra])
    keys = await unlock_keys(store.db, store.master, a.id)
    pieces = [p async for p in store.mail.stream_body(keys, ra.folder_id, d.uid)]
    assert len(pieces) > 10 and max(len(p) for p in pieces) <= 64 * 1024
    assert b"".join(pieces) == raw
    assert (await store.mail.flags(ra.folder_id))[d.uid].size == len(raw)
