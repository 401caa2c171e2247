"""Messages and folders: durable delivery with group commit, and what IMAP reads and changes.

Delivery encrypts once per message: one body blob and one metadata ciphertext under a fresh
content key, plus that key sealed to each recipient account (design.md §2 step 3, "a shared
ciphertext with one wrapped key per recipient"). Everything a reply acknowledges is written
through :class:`storage.db.Writer`, so it is durable before the reply goes out.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.accounts import new_uidvalidity, normalize_address
from storage.crypto import ContentKey, MailboxKeyPair, blob_id, open_content_key, seal_content_key
from storage.db import Database
from storage.events import FolderEvents
from storage.models import Account, Expunged, Folder, Message

FlagMode = Literal["add", "remove", "replace"]


class FolderError(Exception):
    """A folder operation cannot be done; ``code`` is an IMAP response code (RFC 5530)."""

    def __init__(self, text: str, code: str = "CANNOT") -> None:
        super().__init__(text)
        self.code = code


@dataclass(frozen=True)
class Recipient:
    account_id: int
    address: str
    public_key: bytes
    folder_id: int


@dataclass(frozen=True)
class Delivered:
    account_id: int
    folder_id: int
    uid: int


@dataclass(frozen=True)
class FolderInfo:
    id: int
    account_id: int
    name: str
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    subscribed: bool
    special_use: str | None = None


@dataclass(frozen=True)
class Changes:
    """What changed in a folder after a MODSEQ (RFC 7162): messages added or re-flagged, and
    UIDs expunged; ``highestmodseq`` is where the next call should start."""

    changed: list[MessageRef]
    expunged: list[int]
    highestmodseq: int


DELIMITER = "/"


@dataclass(frozen=True)
class MessageRef:
    id: int
    uid: int
    modseq: int
    flags: frozenset[str]
    size: int = 0


@dataclass(frozen=True)
class _Sealed:
    blob_id: str
    ciphertext: bytes
    meta: bytes
    keys: dict[bytes, bytes]  # public key → sealed content key


def _flags_text(flags: Iterable[str]) -> str:
    return " ".join(sorted(set(flags)))


def _flags_set(text: str) -> frozenset[str]:
    return frozenset(text.split()) if text else frozenset()


def _seal(raw: bytes, meta: Mapping[str, Any], publics: Sequence[bytes]) -> _Sealed:
    ck = ContentKey.generate()
    ciphertext = ck.encrypt_body(raw)
    meta_ct = ck.encrypt_meta(json.dumps(meta, separators=(",", ":")).encode())
    return _Sealed(
        blob_id(ciphertext),
        ciphertext,
        meta_ct,
        {p: seal_content_key(ck.key, p) for p in dict.fromkeys(publics)},
    )


@dataclass(frozen=True)
class _Delivery:
    recipients: tuple[Recipient, ...]
    sealed: _Sealed
    flags: str
    size: int


async def _write_deliveries(session: AsyncSession, batch: list[_Delivery]) -> list[list[Delivered]]:
    """Every delivery of one group commit: one UID-range reservation per folder, one INSERT."""
    per_folder: dict[int, int] = {}
    for d in batch:
        for r in d.recipients:
            per_folder[r.folder_id] = per_folder.get(r.folder_id, 0) + 1
    next_uid: dict[int, tuple[int, int]] = {}
    # Folders in id order: concurrent nodes lock them in the same order (no deadlock).
    for folder_id in sorted(per_folder):
        n = per_folder[folder_id]
        row = (
            await session.execute(
                update(Folder)
                .where(Folder.id == folder_id)
                .values(uidnext=Folder.uidnext + n, highestmodseq=Folder.highestmodseq + n)
                .returning(Folder.uidnext, Folder.highestmodseq)
            )
        ).one()
        next_uid[folder_id] = (int(row[0]) - n, int(row[1]) - n + 1)
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
    await session.execute(insert(Message), rows)
    return results


async def _bump_modseq(session: AsyncSession, folder_id: int) -> int:
    row = (
        await session.execute(
            update(Folder)
            .where(Folder.id == folder_id)
            .values(highestmodseq=Folder.highestmodseq + 1)
            .returning(Folder.highestmodseq)
        )
    ).one()
    return int(row[0])


def _info(f: Folder) -> FolderInfo:
    return FolderInfo(
        f.id,
        f.account_id,
        f.name,
        f.uidvalidity,
        f.uidnext,
        f.highestmodseq,
        f.subscribed,
        f.special_use,
    )


def _canonical(name: str) -> str:
    """RFC 9051 §5.1: INBOX is case-insensitive (and so is ``INBOX/`` as a prefix)."""
    if name[:5].upper() == "INBOX" and name[5:6] in ("", DELIMITER):
        return "INBOX" + name[5:]
    return name


async def _new_folder(
    session: AsyncSession, account_id: int, name: str, special_use: str | None
) -> Folder:
    f = Folder(
        account_id=account_id,
        name=name,
        uidvalidity=new_uidvalidity(),
        uidnext=1,
        highestmodseq=1,
        subscribed=True,
        special_use=special_use,
    )
    session.add(f)
    await session.flush()
    return f


async def _record_expunged(session: AsyncSession, folder_id: int, uids: list[int]) -> int:
    modseq = await _bump_modseq(session, folder_id)
    if uids:
        await session.execute(
            insert(Expunged), [{"folder_id": folder_id, "uid": u, "modseq": modseq} for u in uids]
        )
    return modseq


class MailStore:
    def __init__(self, db: Database, events: FolderEvents | None = None) -> None:
        self.db = db
        self.events = events or FolderEvents()

    # -- delivery --------------------------------------------------------------------------

    async def resolve(self, address: str) -> Recipient | None:
        """The local account for ``address`` and its INBOX, or ``None``."""
        try:
            address = normalize_address(address)
        except Exception:
            return None
        async with self.db.read() as session:
            row = (
                await session.execute(
                    select(Account.id, Account.address, Account.public_key, Folder.id)
                    .join(Folder, Folder.account_id == Account.id)
                    .where(Account.address == address, Folder.name == "INBOX", ~Account.disabled)
                )
            ).first()
        if row is None:
            return None
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
        sealed = await asyncio.to_thread(_seal, raw, meta, [r.public_key for r in recipients])
        payload = _Delivery(tuple(recipients), sealed, _flags_text(flags), len(raw))
        delivered: list[Delivered] = await self.db.writer.run_batched(
            _write_deliveries, payload, [(sealed.blob_id, sealed.ciphertext)]
        )
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

    async def folders(self, account_id: int) -> list[FolderInfo]:
        async with self.db.read() as session:
            rows = await session.scalars(
                select(Folder).where(Folder.account_id == account_id).order_by(Folder.name)
            )
            return [_info(f) for f in rows]

    async def folder(self, account_id: int, name: str) -> FolderInfo | None:
        name = _canonical(name)
        async with self.db.read() as session:
            f = await session.scalar(
                select(Folder).where(Folder.account_id == account_id, Folder.name == name)
            )
            return _info(f) if f is not None else None

    async def refresh(self, folder_id: int) -> FolderInfo | None:
        async with self.db.read() as session:
            f = await session.get(Folder, folder_id)
            return _info(f) if f is not None else None

    async def create_folder(
        self, account_id: int, name: str, special_use: str | None = None
    ) -> FolderInfo:
        """Create ``name`` and any missing parents (RFC 9051 §6.3.4)."""
        name = _canonical(name)
        if name == "INBOX":
            raise FolderError("INBOX always exists", "ALREADYEXISTS")

        async def write(session: AsyncSession) -> FolderInfo:
            existing = set(
                await session.scalars(select(Folder.name).where(Folder.account_id == account_id))
            )
            if name in existing:
                raise FolderError(f"{name} already exists", "ALREADYEXISTS")
            if special_use is not None:
                taken = await session.scalar(
                    select(Folder.name).where(
                        Folder.account_id == account_id, Folder.special_use == special_use
                    )
                )
                if taken is not None:
                    raise FolderError(f"\\{special_use} is already {taken}", "USEATTR")
            parts = name.split(DELIMITER)
            for i in range(1, len(parts)):
                parent = DELIMITER.join(parts[:i])
                if parent not in existing:
                    await _new_folder(session, account_id, parent, None)
                    existing.add(parent)
            return _info(await _new_folder(session, account_id, name, special_use))

        return await self.db.writer.run(write)

    async def delete_folder(self, account_id: int, name: str) -> list[str]:
        """Delete a folder and its messages; refuses INBOX and folders with children."""
        name = _canonical(name)
        if name == "INBOX":
            raise FolderError("INBOX cannot be deleted", "CANNOT")
        dropped: list[str] = []

        async def write(session: AsyncSession) -> list[str]:
            f = await session.scalar(
                select(Folder).where(Folder.account_id == account_id, Folder.name == name)
            )
            if f is None:
                raise FolderError("No such mailbox", "NONEXISTENT")
            child = await session.scalar(
                select(Folder.id).where(
                    Folder.account_id == account_id, Folder.name.startswith(name + DELIMITER)
                )
            )
            if child is not None:
                raise FolderError("Mailbox has children; delete them first", "HASCHILDREN")
            blob_ids = sorted(
                set(await session.scalars(select(Message.blob_id).where(Message.folder_id == f.id)))
            )
            await session.execute(delete(Message).where(Message.folder_id == f.id))
            await session.execute(delete(Expunged).where(Expunged.folder_id == f.id))
            await session.execute(delete(Folder).where(Folder.id == f.id))
            dropped.extend(await self._unreferenced(session, blob_ids))
            await self.db.blobs.delete_rows(session, dropped)
            return dropped

        await self.db.writer.run(write)
        if dropped:
            await self.db.blobs.delete_files(dropped)
        return dropped

    async def rename_folder(self, account_id: int, old: str, new: str) -> None:
        """RFC 9051 §6.3.6, children included; renaming INBOX moves its messages instead."""
        old, new = _canonical(old), _canonical(new)
        if new == "INBOX":
            raise FolderError("INBOX already exists", "ALREADYEXISTS")

        async def write(session: AsyncSession) -> None:
            rows = list(
                await session.scalars(select(Folder).where(Folder.account_id == account_id))
            )
            by_name = {f.name: f for f in rows}
            source = by_name.get(old)
            if source is None:
                raise FolderError("No such mailbox", "NONEXISTENT")
            if new in by_name:
                raise FolderError(f"{new} already exists", "ALREADYEXISTS")
            if new.startswith(old + DELIMITER):
                raise FolderError("Cannot rename a mailbox into itself", "CANNOT")
            parts = new.split(DELIMITER)
            for i in range(1, len(parts)):
                parent = DELIMITER.join(parts[:i])
                if parent not in by_name:
                    by_name[parent] = await _new_folder(session, account_id, parent, None)
            if old == "INBOX":
                target = await _new_folder(session, account_id, new, None)
                uids = list(
                    await session.scalars(
                        select(Message.uid)
                        .where(Message.folder_id == source.id)
                        .order_by(Message.uid)
                    )
                )
                await _move_rows(session, source.id, uids, target.id)
                return
            for f in rows:
                if f.name == old or f.name.startswith(old + DELIMITER):
                    f.name = new + f.name[len(old) :]
                    # A renamed folder is a new mailbox to clients that cached the old one.
                    f.uidvalidity = max(new_uidvalidity(), f.uidvalidity + 1)
            await session.flush()

        await self.db.writer.run(write)

    async def set_subscribed(self, folder_id: int, subscribed: bool) -> None:
        async def write(session: AsyncSession) -> None:
            await session.execute(
                update(Folder).where(Folder.id == folder_id).values(subscribed=subscribed)
            )

        await self.db.writer.run(write)

    @staticmethod
    async def _unreferenced(session: AsyncSession, blob_ids: list[str]) -> list[str]:
        if not blob_ids:
            return []
        still = set(
            await session.scalars(select(Message.blob_id).where(Message.blob_id.in_(blob_ids)))
        )
        return [b for b in blob_ids if b not in still]

    # -- reading a folder ------------------------------------------------------------------

    async def snapshot(self, folder_id: int) -> tuple[FolderInfo, list[int]] | None:
        """The folder and its UIDs, read folder-first: anything that lands in between shows up
        again in :meth:`changes`, never goes missing."""
        async with self.db.read() as session:
            f = await session.get(Folder, folder_id)
            if f is None:
                return None
            info = _info(f)
            uids = list(
                await session.scalars(
                    select(Message.uid).where(Message.folder_id == folder_id).order_by(Message.uid)
                )
            )
        return info, uids

    async def changes(self, folder_id: int, since: int) -> Changes:
        async with self.db.read() as session:
            highest = await session.scalar(
                select(Folder.highestmodseq).where(Folder.id == folder_id)
            )
            if highest is None or highest <= since:
                return Changes([], [], int(highest or since))
            rows = await session.execute(
                select(Message.id, Message.uid, Message.modseq, Message.flags)
                .where(Message.folder_id == folder_id, Message.modseq > since)
                .order_by(Message.uid)
            )
            changed = [MessageRef(r[0], r[1], r[2], _flags_set(r[3])) for r in rows]
            expunged = list(
                await session.scalars(
                    select(Expunged.uid)
                    .where(Expunged.folder_id == folder_id, Expunged.modseq > since)
                    .order_by(Expunged.uid)
                )
            )
        return Changes(changed, expunged, int(highest))

    async def expunged_since(self, folder_id: int, since: int) -> list[int]:
        async with self.db.read() as session:
            return list(
                await session.scalars(
                    select(Expunged.uid)
                    .where(Expunged.folder_id == folder_id, Expunged.modseq > since)
                    .order_by(Expunged.uid)
                )
            )

    async def flags(
        self, folder_id: int, uids: Sequence[int] | None = None
    ) -> dict[int, MessageRef]:
        """Flags and MODSEQ of ``uids`` (all messages when ``None``)."""
        async with self.db.read() as session:
            query = select(
                Message.id, Message.uid, Message.modseq, Message.flags, Message.size
            ).where(Message.folder_id == folder_id)
            if uids is not None:
                if not uids:
                    return {}
                lo, hi = min(uids), max(uids)
                query = query.where(Message.uid >= lo, Message.uid <= hi)
            rows = await session.execute(query)
            wanted = None if uids is None else set(uids)
            return {
                r[1]: MessageRef(r[0], r[1], r[2], _flags_set(r[3]), r[4])
                for r in rows
                if wanted is None or r[1] in wanted
            }

    async def keywords(self, folder_id: int) -> list[str]:
        async with self.db.read() as session:
            texts = await session.scalars(
                select(Message.flags).where(Message.folder_id == folder_id).distinct()
            )
            found: set[str] = set()
            for t in texts:
                found |= {f for f in _flags_set(t) if not f.startswith("\\")}
        return sorted(found)

    async def first_unseen(self, folder_id: int) -> int | None:
        async with self.db.read() as session:
            uid = await session.scalar(
                select(func.min(Message.uid)).where(
                    Message.folder_id == folder_id, ~Message.flags.contains("\\Seen")
                )
            )
        return int(uid) if uid is not None else None

    async def counts(self, folder_id: int) -> dict[str, int]:
        """MESSAGES, UNSEEN, DELETED and SIZE of a folder, for STATUS (RFC 9051 §6.3.11)."""
        async with self.db.read() as session:
            row = (
                await session.execute(
                    select(
                        func.count(),
                        func.count().filter(~Message.flags.contains("\\Seen")),
                        func.count().filter(Message.flags.contains("\\Deleted")),
                        func.coalesce(func.sum(Message.size), 0),
                    ).where(Message.folder_id == folder_id)
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
        async with self.db.read() as session:
            rows = (
                await session.execute(
                    select(Message.uid, Message.sealed_key, Message.meta).where(
                        Message.folder_id == folder_id, Message.uid.in_(list(uids))
                    )
                )
            ).all()

        def decrypt() -> dict[int, dict[str, Any]]:
            out: dict[int, dict[str, Any]] = {}
            for uid, sealed_key, meta in rows:
                ck = ContentKey(open_content_key(sealed_key, keys))
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
            ck = ContentKey(open_content_key(row[1], keys))
            return ck.decrypt_range(ciphertext, start, end)

        return await asyncio.to_thread(decrypt)

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
        wanted = set(flags)

        async def write(session: AsyncSession) -> list[MessageRef]:
            rows = (
                await session.execute(
                    select(Message.id, Message.uid, Message.modseq, Message.flags).where(
                        Message.folder_id == folder_id, Message.uid.in_(list(uids))
                    )
                )
            ).all()
            changed: list[MessageRef] = []
            modseq: int | None = None
            for mid, uid, old_modseq, text in rows:
                if unchanged_since is not None and old_modseq > unchanged_since:
                    continue
                old = _flags_set(text)
                new = {"add": old | wanted, "remove": old - wanted, "replace": frozenset(wanted)}[
                    mode
                ]
                if new == old:
                    continue
                if modseq is None:
                    modseq = await _bump_modseq(session, folder_id)
                await session.execute(
                    update(Message)
                    .where(Message.id == mid)
                    .values(flags=_flags_text(new), modseq=modseq)
                )
                changed.append(MessageRef(mid, uid, modseq, frozenset(new)))
            return changed

        changed = await self.db.writer.run(write)
        if changed:
            self.events.publish(folder_id)
        return changed

    async def expunge(self, folder_id: int, uids: Sequence[int] | None = None) -> list[int]:
        """Remove messages flagged ``\\Deleted`` (only among ``uids`` if given)."""
        dropped: list[str] = []

        async def write(session: AsyncSession) -> list[int]:
            query = select(Message.id, Message.uid, Message.flags, Message.blob_id).where(
                Message.folder_id == folder_id, Message.flags.contains("\\Deleted")
            )
            if uids is not None:
                query = query.where(Message.uid.in_(list(uids)))
            rows = (await session.execute(query)).all()
            doomed = [
                (mid, uid, bid) for mid, uid, text, bid in rows if "\\Deleted" in _flags_set(text)
            ]
            if not doomed:
                return []
            await session.execute(delete(Message).where(Message.id.in_([d[0] for d in doomed])))
            await _record_expunged(session, folder_id, sorted(d[1] for d in doomed))
            dropped.extend(await self._unreferenced(session, sorted({d[2] for d in doomed})))
            await self.db.blobs.delete_rows(session, dropped)
            return sorted(d[1] for d in doomed)

        expunged = await self.db.writer.run(write)
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

        async def write(session: AsyncSession) -> list[tuple[int, int]]:
            if move:
                return await _move_rows(session, source, list(uids), target)
            return await _copy_rows(session, source, list(uids), target)

        pairs = await self.db.writer.run(write)
        if pairs:
            self.events.publish(target)
            if move:
                self.events.publish(source)
        return pairs


async def _copy_rows(
    session: AsyncSession, source: int, uids: list[int], target: int
) -> list[tuple[int, int]]:
    rows = (
        await session.execute(
            select(
                Message.uid,
                Message.flags,
                Message.blob_id,
                Message.sealed_key,
                Message.meta,
                Message.size,
            )
            .where(Message.folder_id == source, Message.uid.in_(uids))
            .order_by(Message.uid)
        )
    ).all()
    if not rows:
        return []
    n = len(rows)
    row = (
        await session.execute(
            update(Folder)
            .where(Folder.id == target)
            .values(uidnext=Folder.uidnext + n, highestmodseq=Folder.highestmodseq + 1)
            .returning(Folder.uidnext, Folder.highestmodseq)
        )
    ).one()
    first, modseq = int(row[0]) - n, int(row[1])
    values = []
    pairs = []
    for i, (uid, flags, blob, sealed, meta, size) in enumerate(rows):
        values.append(
            {
                "folder_id": target,
                "uid": first + i,
                "modseq": modseq,
                "flags": flags,
                "size": size,
                "blob_id": blob,
                "sealed_key": sealed,
                "meta": meta,
            }
        )
        pairs.append((int(uid), first + i))
    await session.execute(insert(Message), values)
    return pairs


async def _move_rows(
    session: AsyncSession, source: int, uids: list[int], target: int
) -> list[tuple[int, int]]:
    pairs = await _copy_rows(session, source, uids, target)
    if pairs:
        moved = [p[0] for p in pairs]
        await session.execute(
            delete(Message).where(Message.folder_id == source, Message.uid.in_(moved))
        )
        await _record_expunged(session, source, moved)
    return pairs
