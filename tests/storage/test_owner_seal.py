"""The read path pays public-key work at most once per message and account (design.md §2 item 8,
issue 19): the owner seal written at the first read (or at APPEND), the opened-message cache
shared by the account's sessions, its bound and its invalidation, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select, update

from server.delivery.trace import describe
from server.imap.summary import ImapSummaries, Summary
from storage.accounts import AccountInfo, create_account, unlock_keys
from storage.blobs import open_blob_store
from storage.crypto import UNSEALS, CryptoError, MailboxKeyPair, OwnerSeal
from storage.db import Database, migrate
from storage.mailstore import MailStore, Recipient
from storage.models import Message


@dataclass
class Env:
    db: Database
    mail: MailStore
    account: AccountInfo
    keys: MailboxKeyPair
    inbox: Recipient

    def fresh_store(self, cache_bytes: int = 2**20) -> MailStore:
        """Another process's store (what a restart sees): an empty cache."""
        return MailStore(self.db, summaries=ImapSummaries(), cache_bytes=cache_bytes)


@pytest.fixture
async def env(database_url: str, tmp_path: Path) -> AsyncIterator[Env]:
    from storage.crypto import MasterKey

    await migrate(database_url)
    master = MasterKey.create(tmp_path / "master.key")
    db = Database(database_url, open_blob_store("file", tmp_path / "blobs"))
    await db.start()
    try:
        account = await create_account(db, master, "reader@hygie.test", "password-reader")
        keys = await unlock_keys(db, master, account.id)
        mail = MailStore(db, summaries=ImapSummaries(), cache_bytes=2**20)
        inbox = await mail.resolve(account.address)
        assert inbox is not None
        yield Env(db, mail, account, keys, inbox)
    finally:
        await db.close()


def message(i: int) -> bytes:
    return (
        f"From: Dr Claire Martin <claire.martin@chu.test>\r\nTo: <reader@hygie.test>\r\n"
        f"Subject: Résultats n°{i}\r\nDate: Mon, 1 Jan 2024 08:00:00 +0000\r\n\r\nTexte {i}\r\n"
    ).encode()


async def deliver(env: Env, count: int) -> list[int]:
    """SMTP-style deliveries: sealed to the public key only, no owner seal."""
    uids = []
    for i in range(count):
        (d,) = await env.mail.deliver(message(i), describe(message(i)), [env.inbox])
        uids.append(d.uid)
    return uids


async def owner_seals(env: Env) -> dict[int, bytes | None]:
    async with env.db.read() as session:
        rows = await session.execute(
            select(Message.uid, Message.owner_meta).where(Message.folder_id == env.inbox.folder_id)
        )
        return {uid: seal for uid, seal in rows}


async def test_first_read_unseals_once_then_seals_for_the_owner(env: Env) -> None:
    uids = await deliver(env, 5)
    assert set((await owner_seals(env)).values()) == {None}
    before = UNSEALS.value
    opened = await env.mail.open_messages(env.keys, env.account.id, env.inbox.folder_id, uids)
    assert UNSEALS.value - before == 5
    summary = opened[uids[2]].summary
    assert isinstance(summary, Summary)
    assert summary.subject == "Résultats n°2"
    assert b'"claire.martin" "chu.test"' in summary.envelope
    # A second session of the same account, in the same process: no public-key work.
    again = await env.mail.open_messages(env.keys, env.account.id, env.inbox.folder_id, uids)
    assert UNSEALS.value - before == 5
    assert again[uids[2]].summary == summary
    # The seals are durable: another process (a restart) opens none again either.
    await env.mail.settle()
    assert None not in (await owner_seals(env)).values()
    restarted = env.fresh_store()
    reread = await restarted.open_messages(env.keys, env.account.id, env.inbox.folder_id, uids)
    assert UNSEALS.value - before == 5
    assert reread[uids[2]].summary == summary
    assert await restarted.read_body(env.keys, env.inbox.folder_id, uids[2]) == message(2)
    assert UNSEALS.value - before == 5


async def test_append_with_the_keys_is_sealed_at_once(env: Env) -> None:
    folder = await env.mail.folder(env.account.id, "INBOX")
    assert folder is not None
    raw = message(7)
    d = await env.mail.append(folder, env.keys.public, raw, describe(raw), keys=env.keys)
    assert (await owner_seals(env))[d.uid] is not None
    before = UNSEALS.value
    opened = await env.fresh_store().open_messages(env.keys, env.account.id, folder.id, [d.uid])
    assert UNSEALS.value == before
    assert opened[d.uid].summary.subject == "Résultats n°7"


async def test_copy_keeps_the_owner_seal(env: Env) -> None:
    (uid,) = await deliver(env, 1)
    await env.mail.open_messages(env.keys, env.account.id, env.inbox.folder_id, [uid])
    await env.mail.settle()
    archive = await env.mail.create_folder(env.account.id, "Archives")
    ((_, copied),) = await env.mail.copy(env.inbox.folder_id, [uid], archive.id)
    before = UNSEALS.value
    opened = await env.fresh_store().open_messages(env.keys, env.account.id, archive.id, [copied])
    assert UNSEALS.value == before
    assert opened[copied].summary.subject == "Résultats n°0"


async def set_seal(env: Env, uid: int, seal: bytes | None) -> None:
    async def write() -> None:
        await env.db.writer.run(
            lambda conn: conn.execute(
                update(Message.__table__)
                .where(Message.folder_id == env.inbox.folder_id, Message.uid == uid)
                .values(owner_meta=seal)
            )
        )

    await write()


async def test_an_altered_or_moved_seal_is_refused(env: Env) -> None:
    uids = await deliver(env, 2)
    await env.mail.open_messages(env.keys, env.account.id, env.inbox.folder_id, uids)
    await env.mail.settle()
    seals = await owner_seals(env)
    first, second = seals[uids[0]], seals[uids[1]]
    assert first is not None and second is not None
    # One bit flipped, and the seal of another message (another blob) copied over this one.
    flipped = first[:-1] + bytes([first[-1] ^ 1])
    for bad in (flipped, second):
        await set_seal(env, uids[0], bad)
        before = UNSEALS.value
        store = env.fresh_store()
        opened = await store.open_messages(env.keys, env.account.id, env.inbox.folder_id, uids)
        # Refused: the message is opened with its HPKE-sealed key instead (one unseal), and
        # answers with its own summary, not the other message's.
        assert UNSEALS.value - before == 1
        assert opened[uids[0]].summary.subject == "Résultats n°0"
        assert opened[uids[1]].summary.subject == "Résultats n°1"
        await store.settle()
        assert (await owner_seals(env))[uids[0]] not in (flipped, second)  # sealed anew


def test_owner_seal_is_bound_to_account_blob_and_key() -> None:
    keys, other = MailboxKeyPair.generate(), MailboxKeyPair.generate()
    seal = keys.owner.seal(3, "ab" * 32, b"k" * 32, b"summary")
    assert keys.owner.open(3, "ab" * 32, seal) == (b"k" * 32, b"summary")
    wrong = ((4, "ab" * 32, keys), (3, "cd" * 32, keys), (3, "ab" * 32, other))
    for account, blob, opener in wrong:
        with pytest.raises(CryptoError):
            opener.owner.open(account, blob, seal)
    with pytest.raises(CryptoError):
        keys.owner.open(3, "ab" * 32, b"\x02" + seal[1:])
    assert isinstance(keys.owner, OwnerSeal)


async def test_another_account_does_not_read_through_the_cache(env: Env, tmp_path: Path) -> None:
    """Both accounts received the same message (one blob): the second one's keys do not open
    the first one's copy, even once the first one has read it."""
    from storage.crypto import MasterKey

    master = MasterKey.create(tmp_path / "other.key")
    other = await create_account(env.db, master, "other@hygie.test", "password-other")
    other_keys = await unlock_keys(env.db, master, other.id)
    other_inbox = await env.mail.resolve(other.address)
    assert other_inbox is not None
    (d, _) = await env.mail.deliver(message(1), describe(message(1)), [env.inbox, other_inbox])
    await env.mail.open_messages(env.keys, env.account.id, env.inbox.folder_id, [d.uid])
    assert await env.mail.read_body(env.keys, env.inbox.folder_id, d.uid) == message(1)
    with pytest.raises(CryptoError):
        await env.mail.read_body(other_keys, env.inbox.folder_id, d.uid)
    with pytest.raises(CryptoError):
        await env.mail.open_messages(other_keys, env.account.id, env.inbox.folder_id, [d.uid])


async def test_expunge_drops_the_cached_message(env: Env) -> None:
    uids = await deliver(env, 3)
    await env.mail.open_messages(env.keys, env.account.id, env.inbox.folder_id, uids)
    assert len(env.mail.messages) == 3
    await env.mail.store_flags(env.inbox.folder_id, [uids[1]], ["\\Deleted"], "add")
    assert await env.mail.expunge(env.inbox.folder_id) == [uids[1]]
    assert len(env.mail.messages) == 2
    # Deleting the folder drops the rest (a new folder: INBOX cannot be deleted).
    archive = await env.mail.create_folder(env.account.id, "Archives")
    pairs = await env.mail.copy(env.inbox.folder_id, [uids[0]], archive.id, move=True)
    assert len(env.mail.messages) == 2  # a move keeps the message in the account
    await env.mail.open_messages(env.keys, env.account.id, archive.id, [pairs[0][1]])
    await env.mail.delete_folder(env.account.id, "Archives")
    assert len(env.mail.messages) == 1


async def test_the_cache_is_bounded(env: Env) -> None:
    uids = await deliver(env, 40)
    store = env.fresh_store(cache_bytes=20_000)
    await store.open_messages(env.keys, env.account.id, env.inbox.folder_id, uids)
    assert 0 < len(store.messages) < 40
    assert store.messages.bytes <= 20_000
    # The most recently opened stay; an evicted one is opened again from its owner seal.
    await store.settle()
    before = UNSEALS.value
    opened = await store.open_messages(env.keys, env.account.id, env.inbox.folder_id, uids[:1])
    assert UNSEALS.value == before
    assert opened[uids[0]].summary.subject == "Résultats n°0"
