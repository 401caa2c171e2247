"""Messages and folders: durable delivery with group commit, and what IMAP reads and changes.

Delivery encrypts once per message: one body blob and one metadata ciphertext under a fresh
content key, plus that key sealed to each recipient account (design.md §2 step 3, "a shared
ciphertext with one wrapped key per recipient"). Everything a reply acknowledges is written
through :class:`storage.db.Writer`, so it is durable before the reply goes out.

Reading pays public-key work at most once per message and account (design.md §2 item 8): the
first read opens the HPKE-sealed key, builds the reader's compact summary of the metadata
(:class:`SummaryCodec`) and writes both back sealed for the owner (``messages.owner_meta``,
:class:`storage.crypto.OwnerSeal`); opened messages stay in a bounded in-memory cache shared by
the account's sessions (:class:`storage.message_cache.MessageCache`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog
from sqlalchemy import bindparam, insert, update
from sqlalchemy.engine import Connection

from storage import transactions as tx
from storage.accounts import normalize_address
from storage.blobs import SegmentBlobStore
from storage.crypto import (
    BodyStream,
    ContentKey,
    CryptoError,
    MailboxKeyPair,
    blob_id,
    open_content_key,
    seal_content_key,
)
from storage.db import Database, effect_result_type
from storage.events import FolderEvents
from storage.message_cache import MessageCache
from storage.notices import EVERYTHING
from storage.transactions import DELIMITER, FlagMode, FolderError, FolderInfo, MessageRef

F, M, X = tx.FOLDERS, tx.MESSAGES, tx.EXPUNGED
INLINE_SEAL_LIMIT = 128 * 1024
CONTENT_KEY_CACHE = 50_000
#: Default bound of the opened-message cache (``[storage] message_cache_mib``).
MESSAGE_CACHE_BYTES = 64 * 2**20
#: Messages opened on the event loop at once; more (a cold FETCH 1:* ENVELOPE) go to a thread.
INLINE_OPEN = 16
#: Seconds owner seals of first reads are gathered before one transaction writes them.
SEAL_DELAY = 0.5
#: Rows a read is expected to return below which it runs on the loop (Database.lookup).
SMALL_READ = 256
log = structlog.get_logger("hygie.storage")

__all__ = [
    "DELIMITER",
    "Changes",
    "Delivered",
    "FolderError",
    "FolderInfo",
    "MailStore",
    "MessageRef",
    "Opened",
    "Recipient",
    "SummaryCodec",
]


#: A folder's columns, in the order of :func:`_folder_info`, with its subscription.
_FOLDER_ROW = (
    "SELECT f.id, f.account_id, f.name, f.uidvalidity, f.uidnext, f.highestmodseq,"
    " f.special_use, f.keywords, EXISTS(SELECT 1 FROM subscriptions s"
    " WHERE s.account_id = f.account_id AND s.name = f.name) FROM folders f"
)
_FOLDER_COLUMNS = 9
#: A folder and its counts (STATUS): the folder's columns, then a one-row derived table. Only
#: the substring function differs between the dialects (bound parameters only).
_STATUS_SQL = {
    dialect: (
        "SELECT f.id, f.account_id, f.name, f.uidvalidity, f.uidnext, f.highestmodseq,"  # noqa: S608
        " f.special_use, f.keywords, EXISTS(SELECT 1 FROM subscriptions s"
        " WHERE s.account_id = f.account_id AND s.name = f.name),"
        " c.n, c.unseen, c.deleted, c.size FROM folders f, (SELECT count(*) AS n,"
        f" count(*) FILTER (WHERE {pos}(flags, ?) = 0) AS unseen,"
        f" count(*) FILTER (WHERE {pos}(flags, ?) > 0) AS deleted,"
        " coalesce(sum(size), 0) AS size FROM messages WHERE folder_id ="
        " (SELECT id FROM folders WHERE account_id = ? AND name = ?)) c"
        " WHERE f.account_id = ? AND f.name = ?"
    )
    for dialect, pos in (("sqlite", "instr"), ("postgresql", "strpos"))
}


def _uids_clause(uids: Sequence[int]) -> tuple[str, list[int]]:
    """A range when ``uids`` fill most of it, else the list itself: either way a read on the
    loop returns about as many rows as were asked for (``FETCH 1,100000`` scans no range)."""
    low, high = min(uids), max(uids)
    if len(uids) <= SMALL_READ and high - low + 1 > 2 * len(uids):
        return f"uid IN ({','.join('?' * len(uids))})", sorted(uids)
    return "uid >= ? AND uid <= ?", [low, high]


def _folder_info(row: Sequence[Any]) -> FolderInfo:
    return FolderInfo(
        int(row[0]), int(row[1]), str(row[2]), int(row[3]), int(row[4]), int(row[5]),
        bool(row[8]), row[6], row[7] or "",
    )  # fmt: skip


class SummaryCodec(Protocol):
    """The reader's compact form of a message's metadata (the IMAP layer's; storage only keeps
    the bytes, sealed for the owner, and the loaded object, in the cache)."""

    def build(self, meta: Mapping[str, Any]) -> bytes:
        """The summary of the metadata JSON document that delivery stored."""

    def load(self, data: bytes) -> Any:
        """The summary object, or ``None`` if ``data`` is in an older format (built again)."""

    def cost(self, summary: Any) -> int:
        """Bytes the loaded summary holds, for the cache's bound."""


@dataclass(frozen=True, slots=True)
class Opened:
    """A message row with its content key and summary, ready to answer FETCH and SEARCH."""

    ref: MessageRef
    key: ContentKey
    summary: Any


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
    owner_meta: bytes | None = None  # sealed for the one recipient whose keys were given


@dataclass(frozen=True)
class _Owner:
    """An APPEND's own account: its keys are unlocked, so the owner seal is written at once."""

    account_id: int
    keys: MailboxKeyPair
    codec: SummaryCodec


def seal(
    raw: bytes, meta: Mapping[str, Any], publics: Sequence[bytes], owner: _Owner | None = None
) -> Sealed:
    """Encrypt ``raw`` (CPU only: callers run large messages in a worker thread)."""
    ck = ContentKey.generate()
    ciphertext = ck.encrypt_body(raw)
    meta_ct = ck.encrypt_meta(json.dumps(meta, separators=(",", ":")).encode())
    blob = blob_id(ciphertext)
    owner_meta = None
    if owner is not None:
        summary = owner.codec.build(meta)
        owner_meta = owner.keys.owner.seal(owner.account_id, blob, ck.key, summary)
    return Sealed(
        ck,
        blob,
        ciphertext,
        meta_ct,
        {p: seal_content_key(ck.key, p) for p in dict.fromkeys(publics)},
        owner_meta,
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
                    "owner_meta": d.sealed.owner_meta,
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


_SET_OWNER_META = (
    update(M)
    .where(M.c.id == bindparam("mid"), M.c.blob_id == bindparam("bid"))
    .values(owner_meta=bindparam("seal"))
)


def _write_owner_seals(conn: Connection, batch: list[list[dict[str, Any]]]) -> list[None]:
    """Owner seals of first reads, from every session of one group commit: one statement."""
    rows = [row for item in batch for row in item]
    conn.execute(_SET_OWNER_META, rows)
    return [None] * len(batch)


class MailStore:
    def __init__(
        self,
        db: Database,
        events: FolderEvents | None = None,
        *,
        summaries: SummaryCodec | None = None,
        cache_bytes: int = MESSAGE_CACHE_BYTES,
    ) -> None:
        self.db = db
        self.events = events or FolderEvents()
        # Across processes and nodes (storage.notices): folders changed elsewhere wake this
        # process's IDLE sessions; messages expunged elsewhere leave this process's cache.
        notices = db.notices
        if self.events.relay is None:
            self.events.relay = lambda folder_id: notices.send("folder", folder_id)
        notices.on("folder", self._folder_changed)
        notices.on("messages", self._messages_gone)
        notices.on(EVERYTHING, self._everything_changed)
        #: The reader's summary codec (set by the IMAP server); without one, nothing is
        #: owner-sealed and :meth:`open_messages` is unavailable.
        self.summaries = summaries
        self.messages = MessageCache(cache_bytes)
        self._sealing: set[asyncio.Task[Any]] = set()
        self._pending_seals: list[dict[str, Any]] = []
        self._seal_timer: asyncio.TimerHandle | None = None
        self._sizes: dict[tuple[int, str], int] = {}  # (account, folder name) → messages
        self._changes_inflight: dict[tuple[int, int], asyncio.Future[Changes]] = {}

    # -- opening messages --------------------------------------------------------------------

    def _open_row(
        self,
        keys: MailboxKeyPair,
        account_id: int,
        blob: str,
        sealed_key: bytes,
        owner_meta: bytes | None,
        meta_ct: bytes | None,
        known: ContentKey | None,
    ) -> tuple[ContentKey, Any, int, bytes | None]:
        """(content key, summary or None, its cost, owner seal to write or None).

        In order of cost: the owner seal (one AES-GCM open), then the HPKE-sealed key (an
        X25519 agreement, counted in :data:`storage.crypto.UNSEALS`). A seal that does not
        open (altered, or copied from another message or account) is refused: the sealed key
        is used instead and a new seal written. Runs on the loop or in a worker thread.
        """
        codec = self.summaries
        key, summary_bytes = known, None
        if owner_meta is not None:
            try:
                raw_key, summary_bytes = keys.owner.open(account_id, blob, owner_meta)
            except CryptoError:
                log.warning("owner_seal_refused", account=account_id)
            else:
                key = key or ContentKey(raw_key)
        if key is None:
            key = ContentKey(open_content_key(sealed_key, keys))
        if codec is None or meta_ct is None:
            return key, None, 0, None
        summary = codec.load(summary_bytes) if summary_bytes is not None else None
        if summary is not None:
            return key, summary, codec.cost(summary), None
        # First read by this account (or a summary of an older format): build and seal it.
        summary_bytes = codec.build(json.loads(key.decrypt_meta(meta_ct)))
        seal = keys.owner.seal(account_id, blob, key.key, summary_bytes)
        summary = codec.load(summary_bytes)
        return key, summary, codec.cost(summary), seal

    def _seal_later(self, rows: list[dict[str, Any]]) -> None:
        """Write owner seals through the group commit without holding up the reply, gathered
        for up to :data:`SEAL_DELAY` seconds: first reads come in bursts (a client opening a
        mailbox), and one transaction a burst spares the writes that replies wait for. A seal
        lost in a crash only means the next read opens the sealed key again."""
        self._pending_seals += rows
        if self._seal_timer is None:
            self._seal_timer = asyncio.get_running_loop().call_later(SEAL_DELAY, self._flush_seals)

    def _flush_seals(self) -> None:
        self._seal_timer = None
        rows, self._pending_seals = self._pending_seals, []
        if not rows:
            return
        task = asyncio.ensure_future(self.db.writer.run_batched(_write_owner_seals, rows))
        self._sealing.add(task)
        task.add_done_callback(self._sealed)

    def _sealed(self, task: asyncio.Task[Any]) -> None:
        self._sealing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("owner_seal_write_failed", error=type(task.exception()).__name__)

    def forget(self, blobs: Iterable[str]) -> None:
        """The invalidation point of the opened-message cache: messages of these blobs were
        deleted (EXPUNGE, CLOSE, DELETE of their folder), their plaintext summaries go, here
        and in every other process (notice ``messages``). A move keeps its blob in the same
        account and forgets nothing."""
        gone = list(blobs)
        self.messages.forget(gone)
        for blob in gone:
            self.db.notices.send("messages", blob)

    def _folder_changed(self, key: str) -> None:
        self.events.publish_local(int(key))

    def _messages_gone(self, key: str) -> None:
        self.messages.forget([key])

    def _everything_changed(self, _key: str) -> None:
        self.messages.clear()
        self.events.wake_all()

    async def settle(self) -> None:
        """Write the owner seals gathered so far and wait for them (tests, and before the
        writer stops)."""
        if self._seal_timer is not None:
            self._seal_timer.cancel()
            self._flush_seals()
        while self._sealing:
            await asyncio.gather(*list(self._sealing), return_exceptions=True)

    async def _small_or_large(self, sql: str, params: Sequence[Any], expected: int) -> list[Any]:
        # A few indexed rows cost less than the thread hop of the pool: read them on the loop
        # (Database.lookup); a large read (a whole big folder) stays off it.
        if expected <= SMALL_READ:
            return await self.db.lookup(sql, *params)
        return await self.db.raw_rows(sql, *params)

    async def open_messages(
        self, keys: MailboxKeyPair, account_id: int, folder_id: int, uids: Sequence[int]
    ) -> dict[int, Opened]:
        """The messages ``uids`` of a folder of ``account_id`` with their flags, content keys
        and summaries, for FETCH and SEARCH: one query when they are in the cache, two
        otherwise; public-key work only for messages this account never read before."""
        codec = self.summaries
        if codec is None:
            raise RuntimeError("MailStore.open_messages needs a summary codec")
        if not uids:
            return {}
        where, params = _uids_clause(uids)
        rows = await self._small_or_large(
            "SELECT id, uid, modseq, flags, size, blob_id FROM messages"  # noqa: S608 (only ?s)
            f" WHERE folder_id = ? AND {where}",
            (folder_id, *params),
            len(uids),
        )
        wanted = set(uids)
        cache = self.messages
        owner = (account_id, keys.public)
        generation = cache.generation
        out: dict[int, Opened] = {}
        missing: dict[int, tuple[MessageRef, str, ContentKey | None]] = {}
        parsed: dict[str, frozenset[str]] = {}
        for mid, uid, modseq, text, size, blob in rows:
            if uid not in wanted:
                continue
            flags = parsed.get(text)
            if flags is None:
                flags = parsed[text] = tx.flags_set(text)
            ref = MessageRef(mid, uid, modseq, flags, size)
            hit = cache.get(owner, blob)
            if hit is not None and hit.summary is not None:
                out[uid] = Opened(ref, hit.key, hit.summary)
            else:
                missing[uid] = (ref, blob, hit.key if hit is not None else None)
        if not missing:
            return out
        marks = ",".join("?" * len(missing))
        extra = await self._small_or_large(
            "SELECT uid, sealed_key, owner_meta, meta FROM messages"  # noqa: S608 (only ?s)
            f" WHERE folder_id = ? AND uid IN ({marks})",
            (folder_id, *missing),
            len(missing),
        )
        hard = sum(1 for row in extra if row[2] is None and missing[row[0]][2] is None)

        def work() -> list[tuple[int, ContentKey, Any, int, bytes | None]]:
            done = []
            for uid, sealed_key, owner_meta, meta_ct in extra:
                _ref, blob, known = missing[uid]
                done.append(
                    (uid, *self._open_row(keys, account_id, blob, sealed_key, owner_meta,
                                          meta_ct, known))
                )  # fmt: skip
            return done

        # An HPKE open is ~0.1 ms, an owner seal ~10 µs: a few inline, more in a thread.
        inline = hard <= 2 and len(extra) <= INLINE_OPEN
        results = work() if inline else await asyncio.to_thread(work)
        seals = []
        for uid, key, summary, cost, seal in results:
            ref, blob, _known = missing[uid]
            cache.put(owner, blob, key, summary, cost, generation)
            out[uid] = Opened(ref, key, summary)
            if seal is not None:
                seals.append({"mid": ref.id, "bid": blob, "seal": seal})
        if seals:
            self._seal_later(seals)
        return out

    async def _key(
        self,
        keys: MailboxKeyPair,
        account_id: int,
        blob: str,
        sealed_key: bytes,
        owner_meta: bytes | None,
    ) -> ContentKey:
        """A message's content key for a body read: the cache, the owner seal, else HPKE."""
        owner = (account_id, keys.public)
        hit = self.messages.get(owner, blob)
        if hit is not None:
            return hit.key
        generation = self.messages.generation
        if owner_meta is None:
            key = await asyncio.to_thread(
                lambda: self._open_row(keys, account_id, blob, sealed_key, None, None, None)[0]
            )
        else:
            key = self._open_row(keys, account_id, blob, sealed_key, owner_meta, None, None)[0]
        self.messages.put(owner, blob, key, None, 0, generation)
        return key

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
        owner: _Owner | None = None,
    ) -> list[Delivered]:
        """Store ``raw`` once, encrypted, in each recipient's folder; durable on return."""
        if not recipients:
            return []
        meta = dict(meta)
        meta.setdefault("internaldate", datetime.now(UTC).isoformat())
        meta.setdefault("size", len(raw))
        publics = [r.public_key for r in recipients]
        if len(raw) <= INLINE_SEAL_LIMIT:
            sealed = seal(raw, meta, publics, owner)  # ~0.2 ms: cheaper than a thread hop
        else:
            sealed = await asyncio.to_thread(seal, raw, meta, publics, owner)
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
        *,
        keys: MailboxKeyPair | None = None,
    ) -> Delivered:
        """A message stored in ``folder`` (IMAP APPEND, RFC 9051 §6.3.12, or a workflow).
        With the account's unlocked ``keys`` it is owner-sealed at once, so its first read
        needs no public-key work."""
        meta = dict(meta)
        if internaldate is not None:
            meta["internaldate"] = internaldate.isoformat()
        recipient = Recipient(folder.account_id, "", public_key, folder.id)
        owner = None
        if keys is not None and self.summaries is not None and keys.public == public_key:
            owner = _Owner(folder.account_id, keys, self.summaries)
        (d,) = await self.deliver(raw, meta, [recipient], flags, owner)
        return d

    # -- folders ---------------------------------------------------------------------------

    async def subscriptions(self, account_id: int) -> set[str]:
        """Subscribed names (RFC 9051 §6.3.7); some may name no existing folder."""
        rows = await self.db.lookup(
            "SELECT name FROM subscriptions WHERE account_id = ?", account_id
        )
        return {str(r[0]) for r in rows}

    async def folders(self, account_id: int) -> list[FolderInfo]:
        """The account's folders, each with its subscription, in one query (LIST)."""
        rows = await self.db.lookup(
            _FOLDER_ROW + " WHERE f.account_id = ? ORDER BY f.name", account_id
        )
        return [_folder_info(r) for r in rows]

    async def folder(self, account_id: int, name: str) -> FolderInfo | None:
        """One folder by name, with its subscription and keywords, in one query."""
        rows = await self.db.lookup(
            _FOLDER_ROW + " WHERE f.account_id = ? AND f.name = ?", account_id, tx.canonical(name)
        )
        return _folder_info(rows[0]) if rows else None

    async def refresh(self, folder_id: int) -> FolderInfo | None:
        rows = await self.db.lookup(_FOLDER_ROW + " WHERE f.id = ?", folder_id)
        return _folder_info(rows[0]) if rows else None

    async def status(self, account_id: int, name: str) -> tuple[FolderInfo, dict[str, int]] | None:
        """A folder and its MESSAGES, UNSEEN, DELETED and SIZE, for STATUS (RFC 9051
        §6.3.11) and LIST-STATUS: one query."""
        name = tx.canonical(name)
        sql = _STATUS_SQL[self.db.dialect]
        params = ("\\Seen", "\\Deleted", account_id, name, account_id, name)
        hint = self._sizes.get((account_id, name), 0)
        rows = await self._small_or_large(sql, params, hint)
        if not rows:
            return None
        row = rows[0]
        n = _FOLDER_COLUMNS
        counts = {
            "MESSAGES": int(row[n]),
            "UNSEEN": int(row[n + 1]),
            "DELETED": int(row[n + 2]),
            "SIZE": int(row[n + 3]),
        }
        self._note_size(account_id, name, counts["MESSAGES"])
        return _folder_info(row), counts

    async def counts(self, folder_id: int) -> dict[str, int]:
        """MESSAGES, UNSEEN, DELETED and SIZE of a folder by id."""
        rows = await self.db.raw_rows(
            "SELECT f.account_id, f.name FROM folders f WHERE f.id = ?", folder_id
        )
        found = await self.status(int(rows[0][0]), str(rows[0][1])) if rows else None
        if found is None:
            return {"MESSAGES": 0, "UNSEEN": 0, "DELETED": 0, "SIZE": 0}
        return found[1]

    def _note_size(self, account_id: int, name: str, messages: int) -> None:
        """A hint only (whether a folder's rows are read on the loop or in a thread): never
        wrong in effect, so never invalidated; bounded."""
        sizes = self._sizes
        sizes[(account_id, name)] = messages
        if len(sizes) > 10_000:
            sizes.pop(next(iter(sizes)))

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
        dropped, removed = await self.db.writer.run(
            lambda conn: tx.delete_folder(conn, self.db.blobs, account_id, name)
        )
        self.forget(removed)
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

    async def snapshot(
        self, account_id: int, name: str, *, first_unseen: bool = False
    ) -> tuple[FolderInfo, list[int], int | None] | None:
        """For SELECT: the folder (by name), its UIDs and, if asked, the first without
        ``\\Seen``; read folder-first, so anything that lands in between shows up again in
        :meth:`changes`, never goes missing. Two queries."""
        folder = await self.folder(account_id, name)
        if folder is None:
            return None
        pos = "instr" if self.db.dialect == "sqlite" else "strpos"
        unseen = f", {pos}(flags, ?) = 0" if first_unseen else ""
        params: tuple[Any, ...] = ("\\Seen", folder.id) if first_unseen else (folder.id,)
        rows = await self._small_or_large(
            f"SELECT uid{unseen} FROM messages WHERE folder_id = ? ORDER BY uid",  # noqa: S608
            params,
            self._sizes.get((account_id, folder.name), 0),
        )
        self._note_size(account_id, folder.name, len(rows))
        first = next((r[0] for r in rows if r[1]), None) if first_unseen else None
        return folder, [r[0] for r in rows], first

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
        rows = await self.db.lookup("SELECT highestmodseq FROM folders WHERE id = ?", folder_id)
        highest = rows[0][0] if rows else None
        if highest is None or highest <= since:
            return Changes([], [], int(highest or since))
        # Usually a few rows (what changed since this session's last command): on the loop,
        # unless there are many (another session's STORE 1:*), then again in a thread.
        sql = (
            "SELECT id, uid, modseq, flags, size FROM messages"
            " WHERE folder_id = ? AND modseq > ? ORDER BY uid"
        )
        changed_rows = await self.db.lookup(sql + f" LIMIT {SMALL_READ + 1}", folder_id, since)
        if len(changed_rows) > SMALL_READ:
            changed_rows = await self.db.raw_rows(sql, folder_id, since)
        changed = [MessageRef(r[0], r[1], r[2], tx.flags_set(r[3]), r[4]) for r in changed_rows]
        sql = "SELECT uid FROM expunged WHERE folder_id = ? AND modseq > ? ORDER BY uid"
        gone = await self.db.lookup(sql + f" LIMIT {SMALL_READ + 1}", folder_id, since)
        if len(gone) > SMALL_READ:
            gone = await self.db.raw_rows(sql, folder_id, since)
        return Changes(changed, [int(r[0]) for r in gone], int(highest))

    async def expunged_since(self, folder_id: int, since: int) -> list[int]:
        rows = await self.db.raw_rows(
            "SELECT uid FROM expunged WHERE folder_id = ? AND modseq > ? ORDER BY uid",
            folder_id,
            since,
        )
        return [int(r[0]) for r in rows]

    async def flags(
        self, folder_id: int, uids: Sequence[int] | None = None
    ) -> dict[int, MessageRef]:
        """Flags, MODSEQ and size of ``uids`` (all messages when ``None``)."""
        sql = "SELECT id, uid, modseq, flags, size FROM messages WHERE folder_id = ?"
        params: list[int] = [folder_id]
        if uids is not None:
            if not uids:
                return {}
            where, bounds = _uids_clause(uids)
            rows = await self._small_or_large(f"{sql} AND {where}", [*params, *bounds], len(uids))
        else:
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

    async def _body_row(self, folder_id: int, uid: int) -> tuple[str, bytes, bytes | None, int]:
        rows = await self.db.lookup(
            "SELECT m.blob_id, m.sealed_key, m.owner_meta, f.account_id FROM messages m"
            " JOIN folders f ON f.id = m.folder_id WHERE m.folder_id = ? AND m.uid = ?",
            folder_id,
            uid,
        )
        if not rows:
            raise FolderError("no such message", "NONEXISTENT")
        blob, sealed_key, owner_meta, account_id = rows[0]
        return str(blob), bytes(sealed_key), owner_meta, int(account_id)

    async def _ciphertext(self, blob: str) -> bytes:
        blobs = self.db.blobs
        if isinstance(blobs, SegmentBlobStore):  # the index row without the pool's hops
            found = await blobs.get_by_lookup(self.db.lookup, blob)
            if found is not None:
                return found
        async with self.db.read() as session:
            return await blobs.get(session, blob)

    async def read_meta(
        self, keys: MailboxKeyPair, folder_id: int, uids: Sequence[int]
    ) -> dict[int, dict[str, Any]]:
        """The whole metadata document of ``uids`` (MIME part offsets: ``BODY[1.2]``)."""
        if not uids:
            return {}
        marks = ",".join("?" * len(uids))
        rows = await self._small_or_large(
            "SELECT m.uid, m.blob_id, m.sealed_key, m.owner_meta, m.meta, f.account_id"  # noqa: S608
            f" FROM messages m JOIN folders f ON f.id = m.folder_id"
            f" WHERE m.folder_id = ? AND m.uid IN ({marks})",
            (folder_id, *uids),
            len(uids),
        )
        out: dict[int, dict[str, Any]] = {}
        for uid, blob, sealed_key, owner_meta, meta, account_id in rows:
            key = await self._key(keys, int(account_id), blob, sealed_key, owner_meta)
            out[uid] = json.loads(key.decrypt_meta(meta))
        return out

    async def read_body(
        self, keys: MailboxKeyPair, folder_id: int, uid: int, start: int = 0, end: int | None = None
    ) -> bytes:
        """The plaintext message (or bytes ``[start:end]`` of it)."""
        blob, sealed_key, owner_meta, account_id = await self._body_row(folder_id, uid)
        key = await self._key(keys, account_id, blob, sealed_key, owner_meta)
        ciphertext = await self._ciphertext(blob)
        if len(ciphertext) <= INLINE_SEAL_LIMIT:
            return key.decrypt_range(ciphertext, start, end)  # cheaper than a thread hop
        return await asyncio.to_thread(key.decrypt_range, ciphertext, start, end)

    async def stream_body(
        self, keys: MailboxKeyPair, folder_id: int, uid: int
    ) -> AsyncIterator[bytes]:
        """The plaintext message in 64 KiB pieces, read and decrypted one block at a time."""
        blob, sealed_key, owner_meta, account_id = await self._body_row(folder_id, uid)
        key = await self._key(keys, account_id, blob, sealed_key, owner_meta)
        blobs = self.db.blobs
        if blobs.external:
            async with self.db.read() as session:
                handle = await blobs.reader(session, blob)
            try:
                stream = BodyStream(key, await asyncio.to_thread(handle.read, BodyStream.HEADER))
                for i in range(stream.count):
                    block = await asyncio.to_thread(handle.read, BodyStream.BLOCK)
                    yield stream.decrypt(i, block)
            finally:
                handle.close()
            return
        async with self.db.read() as session:
            ciphertext = await blobs.get(session, blob)
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
        expunged, dropped, removed = await self.db.writer.run(
            lambda conn: tx.expunge(conn, self.db.blobs, folder_id, targets)
        )
        self.forget(removed)
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
