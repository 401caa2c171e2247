"""Messages and folders: durable delivery with group commit, and what IMAP reads and changes.

Delivery encrypts once per message: one body blob and one metadata ciphertext under a fresh
content key, plus that key sealed to each recipient account (design.md §2 step 3, "a shared
ciphertext with one wrapped key per recipient"). Everything a reply acknowledges is written
through :class:`storage.db.Writer`, so it is durable before the reply goes out.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection

from storage import transactions as tx
from storage.accounts import normalize_address
from storage.crypto import (
    BodyStream,
    ContentKey,
    MailboxKeyPair,
    blob_id,
    open_content_key,
    seal_content_key,
)
from storage.db import Database, effect_result_type
from storage.events import FolderEvents
from storage.models import Message
from storage.transactions import DELIMITER, FlagMode, FolderError, FolderInfo, MessageRef

F, M, X = tx.FOLDERS, tx.MESSAGES, tx.EXPUNGED
INLINE_SEAL_LIMIT = 128 * 1024
CONTENT_KEY_CACHE = 50_000

__all__ = [
    "DELIMITER",
    "Changes",
    "Delivered",
    "FolderError",
    "FolderInfo",
    "MailStore",
    "MessageRef",
    "Recipient",
]


@dataclass(frozen=True)
class Recipient:
    account_id: int
    address: str
    public_key: bytes
    folder_id: int


@effect_result_type
@dataclass(frozen=True)
class Delivered:
    account_id: int
    folder_id: int
    uid: int


@dataclass(frozen=True)
class Changes:
    """What changed in a folder after a MODSEQ (RFC 7162): messages added or re-flagged, and
    UIDs expunged; ``highestmodseq`` is where the next call should start."""

    changed: list[MessageRef]
    expunged: list[int]
    highestmodseq: int


@dataclass(frozen=True)
class Sealed:
    """A message encrypted once: its body blob, its metadata, and its content key sealed to
    each recipient's public key (the key itself stays with the caller, for the outbox)."""

    key: ContentKey
    blob_id: str
    ciphertext: bytes
    meta: bytes
    keys: dict[bytes, bytes]  # public key → sealed content key


def seal(raw: bytes, meta: Mapping[str, Any], publics: Sequence[bytes]) -> Sealed:
    """Encrypt ``raw`` (CPU only: callers run large messages in a worker thread)."""
    ck = ContentKey.generate()
    ciphertext = ck.encrypt_body(raw)
    meta_ct = ck.encrypt_meta(json.dumps(meta, separators=(",", ":")).encode())
    return Sealed(
        ck,
        blob_id(ciphertext),
        ciphertext,
        meta_ct,
        {p: seal_content_key(ck.key, p) for p in dict.fromkeys(publics)},
    )



@dataclass(frozen=True)
class Delivery:
    """Copies of one sealed message for local recipients, ready to be written."""

    recipients: tuple[Recipient, ...]
    sealed: Sealed
    flags: str
    size: int



_INSERT_MESSAGES = insert(tx.MESSAGES)  # built once: its cache key is computed once


def write_deliveries(conn: Connection, batch: list[Delivery]) -> list[list[Delivered]]:
    """Every delivery of one group commit: one UID-range reservation per folder, one INSERT."""
    per_folder: dict[int, int] = {}
    for d in batch:
        for r in d.recipients:
            per_folder[r.folder_id] = per_folder.get(r.folder_id, 0) + 1
    # Folders in id order: concurrent nodes lock them in the same order (no deadlock).
    next_uid = tx.reserve_uid_ranges(conn, per_folder)
    rows: list[dict[str, Any]] = []
    results: list[list[Delivered]] = []
    for d in batch:
        done = []
        for r in d.recipients:
            uid, modseq = next_uid[r.folder_id]
            next_uid[r.folder_id] = (uid + 1, modseq + 1)
            rows.append(
                {
                    "folder_id": r.folder_id,
                    "uid": uid,
                    "modseq": modseq,
                    "flags": d.flags,
                    "size": d.size,
                    "blob_id": d.sealed.blob_id,
                    "sealed_key": d.sealed.keys[r.public_key],
                    "meta": d.sealed.meta,
                }
            )
            done.append(Delivered(r.account_id, r.folder_id, uid))
        results.append(done)
    conn.execute(_INSERT_MESSAGES, rows)
    for d in batch:
        if d.flags:
            for r in d.recipients:
                tx.note_keywords(conn, r.folder_id, tx.flags_set(d.flags))
    return results


class _AlreadyDone(Exception):
    """A guarded delivery someone else made already (rolled back; not a failure)."""

    expected = True  # the writer does not log it


class MailStore:
    def __init__(self, db: Database, events: FolderEvents | None = None) -> None:
        self.db = db
        self.events = events or FolderEvents()
        self._changes_inflight: dict[tuple[int, int], asyncio.Future[Changes]] = {}
        # Opened content keys by (mailbox public key, sealed key): re-reading a message's
        # metadata (SEARCH, FETCH ENVELOPE again) then skips the X25519 + HKDF of HPKE.
        self._content_keys: OrderedDict[tuple[bytes, bytes], ContentKey] = OrderedDict()
        self._content_keys_lock = threading.Lock()

    def _content_key(self, sealed: bytes, keys: MailboxKeyPair) -> ContentKey:
        """Called from worker threads too, hence the lock. Entries are keyed by the opener's
        public key as well: a hit proves the same key pair opened that sealed key before."""
        cache = self._content_keys
        entry = (keys.public, sealed)
        with self._content_keys_lock:
            found = cache.get(entry)
            if found is not None:
                cache.move_to_end(entry)
                return found
        found = ContentKey(open_content_key(sealed, keys))
        with self._content_keys_lock:
            cache[entry] = found
            if len(cache) > CONTENT_KEY_CACHE:
                cache.popitem(last=False)
        return found

    # -- delivery --------------------------------------------------------------------------

    async def resolve(self, address: str) -> Recipient | None:
        """The local account for ``address`` and its INBOX, or ``None``."""
        try:
            address = normalize_address(address)
        except Exception:
            return None
        # Runs for every RCPT: a hand-written query in one hop (see Database.lookup).
        rows = await self.db.lookup(
            "SELECT a.id, a.address, a.public_key, f.id FROM accounts a"
            " JOIN folders f ON f.account_id = a.id"
            " WHERE a.address = ? AND f.name = 'INBOX' AND NOT a.disabled",
            address,
        )
        if not rows:
            return None
        row = rows[0]
        return Recipient(row[0], row[1], row[2], row[3])

    async def deliver(
        self,
        raw: bytes,
        meta: Mapping[str, Any],
        recipients: Sequence[Recipient],
        flags: Iterable[str] = (),
    ) -> list[Delivered]:
        """Store ``raw`` once, encrypted, in each recipient's folder; durable on return."""
        if not recipients:
            return []
        meta = dict(meta)
        meta.setdefault("internaldate", datetime.now(UTC).isoformat())
        meta.setdefault("size", len(raw))
        publics = [r.public_key for r in recipients]
        if len(raw) <= INLINE_SEAL_LIMIT:
            sealed = seal(raw, meta, publics)  # ~0.2 ms: cheaper than a thread hop
        else:
            sealed = await asyncio.to_thread(seal, raw, meta, publics)
        blob = [(sealed.blob_id, sealed.ciphertext)]
        # The writer makes the blob durable (with the rest of its batch) before the
        # transaction that refers to it.
        payload = Delivery(tuple(recipients), sealed, tx.flags_text(flags), len(raw))
        delivered: list[Delivered] = await self.db.writer.run_batched(
            write_deliveries, payload, blob
        )
        for d in delivered:
            self.events.publish(d.folder_id)
        return delivered

    async def deliver_once(
        self,
        raw: bytes,
        meta: Mapping[str, Any],
        recipients: Sequence[Recipient],
        claim: Callable[[Connection], bool],
    ) -> list[Delivered]:
        """Like :meth:`deliver`, in one transaction with ``claim(conn)``, which says whether
        this delivery is still to be made (e.g. marks a reminder sent unless another process
        did): if it says no, nothing is delivered and ``[]`` is returned. Exactly once, even
        with several processes and crashes: both or neither are committed."""
        if not recipients:
            return []
        meta = dict(meta)
        meta.setdefault("internaldate", datetime.now(UTC).isoformat())
        meta.setdefault("size", len(raw))
        sealed = await asyncio.to_thread(seal, raw, meta, [r.public_key for r in recipients])
        payload = Delivery(tuple(recipients), sealed, "", len(raw))

        def write(conn: Connection) -> list[Delivered]:
            if not claim(conn):
                raise _AlreadyDone
            (done,) = write_deliveries(conn, [payload])
            return done

        try:
            delivered: list[Delivered] = await self.db.writer.run(
                write, [(sealed.blob_id, sealed.ciphertext)]
            )
        except _AlreadyDone:
            return []
        for d in delivered:
            self.events.publish(d.folder_id)
        return delivered

    async def append(
        self,
        folder: FolderInfo,
        public_key: bytes,
        raw: bytes,
        meta: Mapping[str, Any],
        flags: Iterable[str] = (),
        internaldate: datetime | None = None,
    ) -> Delivered:
        meta = dict(meta)
        if internaldate is not None:
            meta["internaldate"] = internaldate.isoformat()
        recipient = Recipient(folder.account_id, "", public_key, folder.id)
        (d,) = await self.deliver(raw, meta, [recipient], flags)
        return d

    # -- folders ---------------------------------------------------------------------------

    async def _subscribed(self, account_id: int) -> set[str]:
        async with self.db.read() as session:
            return set(
                await session.scalars(
                    select(tx.SUBSCRIPTIONS.c.name).where(
                        tx.SUBSCRIPTIONS.c.account_id == account_id
                    )
                )
            )

    async def subscriptions(self, account_id: int) -> set[str]:
        """Subscribed names (RFC 9051 §6.3.7); some may name no existing folder."""
        return await self._subscribed(account_id)

    async def folders(self, account_id: int) -> list[FolderInfo]:
        subscribed = await self._subscribed(account_id)
        async with self.db.read() as session:
            rows = (
                await session.execute(
                    select(tx.FOLDERS)
                    .where(tx.FOLDERS.c.account_id == account_id)
                    .order_by(tx.FOLDERS.c.name)
                )
            ).all()
        return [tx.folder_row_info(r, r.name in subscribed) for r in rows]

    async def folder(self, account_id: int, name: str) -> FolderInfo | None:
        name = tx.canonical(name)
        async with self.db.read() as session:
            row = (
                await session.execute(
                    select(tx.FOLDERS).where(
                        tx.FOLDERS.c.account_id == account_id, tx.FOLDERS.c.name == name
                    )
                )
            ).first()
        if row is None:
            return None
        return tx.folder_row_info(row, name in await self._subscribed(account_id))

    async def refresh(self, folder_id: int) -> FolderInfo | None:
        async with self.db.read() as session:
            row = (
                await session.execute(select(tx.FOLDERS).where(tx.FOLDERS.c.id == folder_id))
            ).first()
        return tx.folder_row_info(row, False) if row is not None else None

    async def create_folder(
        self, account_id: int, name: str, special_use: str | None = None
    ) -> FolderInfo:
        """Create ``name`` and any missing parents (RFC 9051 §6.3.4)."""
        name = tx.canonical(name)
        if name == "INBOX":
            raise FolderError("INBOX always exists", "ALREADYEXISTS")
        return await self.db.writer.run(
            lambda conn: tx.create_folder(conn, account_id, name, special_use)
        )

    async def delete_folder(self, account_id: int, name: str) -> None:
        """Delete a folder and its messages; refuses INBOX and folders with children."""
        name = tx.canonical(name)
        if name == "INBOX":
            raise FolderError("INBOX cannot be deleted", "CANNOT")
        dropped = await self.db.writer.run(
            lambda conn: tx.delete_folder(conn, self.db.blobs, account_id, name)
        )
        if dropped:
            await self.db.blobs.delete_files(dropped)

    async def rename_folder(self, account_id: int, old: str, new: str) -> None:
        """RFC 9051 §6.3.6, children included; renaming INBOX moves its messages instead."""
        old, new = tx.canonical(old), tx.canonical(new)
        if new == "INBOX":
            raise FolderError("INBOX already exists", "ALREADYEXISTS")
        await self.db.writer.run(lambda conn: tx.rename_folder(conn, account_id, old, new))

    async def set_subscribed(self, account_id: int, name: str, subscribed: bool) -> None:
        name = tx.canonical(name)
        await self.db.writer.run(lambda conn: tx.subscribe(conn, account_id, name, subscribed))

    # -- reading a folder ------------------------------------------------------------------

    async def snapshot(self, folder_id: int) -> tuple[FolderInfo, list[int]] | None:
        """The folder and its UIDs, read folder-first: anything that lands in between shows up
        again in :meth:`changes`, never goes missing."""
        async with self.db.read_engine.connect() as conn:
            row = (await conn.execute(select(F).where(F.c.id == folder_id))).first()
            if row is None:
                return None
            info = tx.folder_row_info(row, False)
        rows = await self.db.raw_rows(
            "SELECT uid FROM messages WHERE folder_id = ? ORDER BY uid", folder_id
        )
        return info, [r[0] for r in rows]

    async def changes(self, folder_id: int, since: int) -> Changes:
        """What changed after ``since``. Identical concurrent calls share one query: after a
        delivery every IDLE session of the folder asks the same question at once."""
        key = (folder_id, since)
        pending = self._changes_inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Changes] = asyncio.get_running_loop().create_future()
        self._changes_inflight[key] = future
        try:
            result = await self._changes(folder_id, since)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: the waiters (if any) get it
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._changes_inflight[key]

    async def _changes(self, folder_id: int, since: int) -> Changes:
        async with self.db.read_engine.connect() as conn:
            highest = (
                await conn.execute(select(F.c.highestmodseq).where(F.c.id == folder_id))
            ).scalar()
            if highest is None or highest <= since:
                return Changes([], [], int(highest or since))
            rows = await conn.execute(
                select(M.c.id, M.c.uid, M.c.modseq, M.c.flags, M.c.size)
                .where(M.c.folder_id == folder_id, M.c.modseq > since)
                .order_by(M.c.uid)
            )
            changed = [MessageRef(r[0], r[1], r[2], tx.flags_set(r[3]), r[4]) for r in rows]
            expunged = (
                (
                    await conn.execute(
                        select(X.c.uid)
                        .where(X.c.folder_id == folder_id, X.c.modseq > since)
                        .order_by(X.c.uid)
                    )
                )
                .scalars()
                .all()
            )
        return Changes(changed, list(expunged), int(highest))

    async def expunged_since(self, folder_id: int, since: int) -> list[int]:
        async with self.db.read_engine.connect() as conn:
            result = await conn.execute(
                select(X.c.uid)
                .where(X.c.folder_id == folder_id, X.c.modseq > since)
                .order_by(X.c.uid)
            )
            return list(result.scalars().all())

    async def flags(
        self, folder_id: int, uids: Sequence[int] | None = None
    ) -> dict[int, MessageRef]:
        """Flags, MODSEQ and size of ``uids`` (all messages when ``None``)."""
        sql = "SELECT id, uid, modseq, flags, size FROM messages WHERE folder_id = ?"
        params: list[int] = [folder_id]
        if uids is not None:
            if not uids:
                return {}
            sql += " AND uid >= ? AND uid <= ?"
            params += [min(uids), max(uids)]
        rows = await self.db.raw_rows(sql, *params)
        wanted = None if uids is None else set(uids)
        # A mailbox has few distinct flag combinations: parse each once.
        parsed: dict[str, frozenset[str]] = {}

        def flag_set(text: str) -> frozenset[str]:
            found = parsed.get(text)
            if found is None:
                found = parsed[text] = tx.flags_set(text)
            return found

        return {
            r[1]: MessageRef(r[0], r[1], r[2], flag_set(r[3]), r[4])
            for r in rows
            if wanted is None or r[1] in wanted
        }

    async def keywords(self, folder_id: int) -> list[str]:
        """Keywords in use in the folder (kept up to date by every flag-changing write)."""
        async with self.db.read_engine.connect() as conn:
            text = (await conn.execute(select(F.c.keywords).where(F.c.id == folder_id))).scalar()
        return sorted(tx.flags_set(text or ""))

    async def first_unseen(self, folder_id: int) -> int | None:
        async with self.db.read_engine.connect() as conn:
            # ORDER BY … LIMIT 1 walks the (folder, uid) index and stops at the first match.
            uid = (
                await conn.execute(
                    select(M.c.uid)
                    .where(M.c.folder_id == folder_id, ~M.c.flags.contains("\\Seen"))
                    .order_by(M.c.uid)
                    .limit(1)
                )
            ).scalar()
        return int(uid) if uid is not None else None

    async def counts(self, folder_id: int) -> dict[str, int]:
        """MESSAGES, UNSEEN, DELETED and SIZE of a folder, for STATUS (RFC 9051 §6.3.11)."""
        async with self.db.read_engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        func.count(),
                        func.count().filter(~M.c.flags.contains("\\Seen")),
                        func.count().filter(M.c.flags.contains("\\Deleted")),
                        func.coalesce(func.sum(M.c.size), 0),
                    ).where(M.c.folder_id == folder_id)
                )
            ).one()
        return {
            "MESSAGES": int(row[0]),
            "UNSEEN": int(row[1]),
            "DELETED": int(row[2]),
            "SIZE": int(row[3]),
        }

    async def read_meta(
        self, keys: MailboxKeyPair, folder_id: int, uids: Sequence[int]
    ) -> dict[int, dict[str, Any]]:
        async with self.db.read_engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(M.c.uid, M.c.sealed_key, M.c.meta).where(
                        M.c.folder_id == folder_id, M.c.uid.in_(list(uids))
                    )
                )
            ).all()

        def decrypt() -> dict[int, dict[str, Any]]:
            out: dict[int, dict[str, Any]] = {}
            for uid, sealed_key, meta in rows:
                ck = self._content_key(sealed_key, keys)
                out[uid] = json.loads(ck.decrypt_meta(meta))
            return out

        return await asyncio.to_thread(decrypt)

    async def read_body(
        self, keys: MailboxKeyPair, folder_id: int, uid: int, start: int = 0, end: int | None = None
    ) -> bytes:
        """The plaintext message (or bytes ``[start:end]`` of it)."""
        async with self.db.read() as session:
            row = (
                await session.execute(
                    select(Message.blob_id, Message.sealed_key).where(
                        Message.folder_id == folder_id, Message.uid == uid
                    )
                )
            ).first()
            if row is None:
                raise FolderError("no such message", "NONEXISTENT")
            ciphertext = await self.db.blobs.get(session, row[0])

        def decrypt() -> bytes:
            ck = self._content_key(row[1], keys)
            return ck.decrypt_range(ciphertext, start, end)

        return await asyncio.to_thread(decrypt)

    async def stream_body(
        self, keys: MailboxKeyPair, folder_id: int, uid: int
    ) -> AsyncIterator[bytes]:
        """The plaintext message in 64 KiB pieces, read and decrypted one block at a time."""
        async with self.db.read_engine.connect() as conn:
            row = (
                await conn.execute(
                    select(M.c.blob_id, M.c.sealed_key).where(
                        M.c.folder_id == folder_id, M.c.uid == uid
                    )
                )
            ).first()
        if row is None:
            raise FolderError("no such message", "NONEXISTENT")
        key = await asyncio.to_thread(self._content_key, row[1], keys)
        blobs = self.db.blobs
        if blobs.external:
            async with self.db.read() as session:
                handle = await blobs.reader(session, row[0])
            try:
                stream = BodyStream(key, await asyncio.to_thread(handle.read, BodyStream.HEADER))
                for i in range(stream.count):
                    block = await asyncio.to_thread(handle.read, BodyStream.BLOCK)
                    yield stream.decrypt(i, block)
            finally:
                handle.close()
            return
        async with self.db.read() as session:
            ciphertext = await blobs.get(session, row[0])
        stream = BodyStream(key, ciphertext[: BodyStream.HEADER])
        for i in range(stream.count):
            start = BodyStream.HEADER + i * BodyStream.BLOCK
            yield stream.decrypt(i, ciphertext[start : start + BodyStream.BLOCK])

    # -- changing messages -----------------------------------------------------------------

    async def store_flags(
        self,
        folder_id: int,
        uids: Sequence[int],
        flags: Iterable[str],
        mode: FlagMode,
        unchanged_since: int | None = None,
    ) -> list[MessageRef]:
        """Change flags; returns the messages whose flags changed, with their new state."""
        wanted, targets = set(flags), list(uids)
        changed = await self.db.writer.run(
            lambda conn: tx.store_flags(conn, folder_id, targets, wanted, mode, unchanged_since)
        )
        if changed:
            self.events.publish(folder_id)
        return changed

    async def expunge(self, folder_id: int, uids: Sequence[int] | None = None) -> list[int]:
        """Remove messages flagged ``\\Deleted`` (only among ``uids`` if given)."""
        targets = None if uids is None else list(uids)
        expunged, dropped = await self.db.writer.run(
            lambda conn: tx.expunge(conn, self.db.blobs, folder_id, targets)
        )
        if dropped:
            await self.db.blobs.delete_files(dropped)
        if expunged:
            self.events.publish(folder_id)
        return expunged

    async def copy(
        self, source: int, uids: Sequence[int], target: int, *, move: bool = False
    ) -> list[tuple[int, int]]:
        """COPY (RFC 9051 §6.4.7) or MOVE (RFC 6851): (source UID, new UID) pairs.

        Both folders belong to one account, so the sealed content key, the metadata and the
        blob are shared as they are: nothing is decrypted or re-encrypted.
        """
        targets = list(uids)
        op = tx.move_rows if move else tx.copy_rows
        pairs = await self.db.writer.run(lambda conn: op(conn, source, targets, target))
        if pairs:
            self.events.publish(target)
            if move:
                self.events.publish(source)
        return pairs
