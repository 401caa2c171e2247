"""What each write transaction does, as synchronous functions over a Core ``Connection``.

They run inside :class:`storage.db.Writer` batches (one thread hop per batch on SQLite,
``run_sync`` over asyncpg on PostgreSQL) and raise :class:`FolderError` for refusals the
protocol reports (``expected``: not logged as failures).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from sqlalchemy import Table, bindparam, case, delete, insert, select, update
from sqlalchemy import text as sql_text
from sqlalchemy.engine import Connection

from storage.blobs import BlobStore
from storage.db import effect_result_type
from storage.models import Account, Expunged, Folder, Message, OutboxMessage, Subscription

ACCOUNTS: Table = Account.__table__  # type: ignore[assignment]
FOLDERS: Table = Folder.__table__  # type: ignore[assignment]
MESSAGES: Table = Message.__table__  # type: ignore[assignment]
EXPUNGED: Table = Expunged.__table__  # type: ignore[assignment]
SUBSCRIPTIONS: Table = Subscription.__table__  # type: ignore[assignment]
OUTBOX: Table = OutboxMessage.__table__  # type: ignore[assignment]
DELIMITER = "/"

FlagMode = Literal["add", "remove", "replace"]


class FolderError(Exception):
    """A folder operation cannot be done; ``code`` is an IMAP response code (RFC 5530)."""

    expected = True

    def __init__(self, text: str, code: str = "CANNOT") -> None:
        super().__init__(text)
        self.code = code


@effect_result_type
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
    #: Keywords in use in the folder, space-separated (SELECT's FLAGS and PERMANENTFLAGS).
    keywords: str = ""


@effect_result_type
class MessageRef(NamedTuple):
    """A message as the protocol sees it without decrypting anything."""

    id: int
    uid: int
    modseq: int
    flags: frozenset[str]
    size: int = 0


def flags_text(flags: Iterable[str]) -> str:
    return " ".join(sorted(set(flags)))


def flags_set(text: str) -> frozenset[str]:
    return frozenset(text.split()) if text else frozenset()


def change_flags(old: frozenset[str], wanted: set[str], mode: FlagMode) -> frozenset[str]:
    """RFC 9051 §2.3.2: flags and keywords compare case-insensitively; a flag already
    present keeps the spelling it was first stored with."""
    if mode == "replace":
        return frozenset(wanted)
    folded = {f.casefold() for f in wanted}
    if mode == "remove":
        return frozenset(f for f in old if f.casefold() not in folded)
    have = {f.casefold() for f in old}
    return old | {f for f in wanted if f.casefold() not in have}


def canonical(name: str) -> str:
    """RFC 9051 §5.1: INBOX is case-insensitive (and so is ``INBOX/`` as a prefix)."""
    if name[:5].upper() == "INBOX" and name[5:6] in ("", DELIMITER):
        return "INBOX" + name[5:]
    return name


# -- folders ------------------------------------------------------------------------------


def new_uidvalidity(conn: Connection, account_id: int) -> int:
    """Seconds since the epoch like Dovecot, but always above the account's last one, so a
    mailbox deleted and re-created within a second still gets a new UIDVALIDITY."""
    now = int(time.time()) & 0xFFFFFFFF
    last = ACCOUNTS.c.last_uidvalidity
    row = conn.execute(
        update(ACCOUNTS)
        .where(ACCOUNTS.c.id == account_id)
        .values(last_uidvalidity=case((last + 1 > now, last + 1), else_=now))
        .returning(ACCOUNTS.c.last_uidvalidity)
    ).one()
    return int(row[0])


def new_folder(
    conn: Connection, account_id: int, name: str, special_use: str | None = None
) -> FolderInfo:
    uidvalidity = new_uidvalidity(conn, account_id)
    row = conn.execute(
        insert(FOLDERS)
        .values(
            account_id=account_id,
            name=name,
            uidvalidity=uidvalidity,
            uidnext=1,
            highestmodseq=1,
            subscribed=False,
            special_use=special_use,
        )
        .returning(FOLDERS.c.id)
    ).one()
    subscribed = conn.execute(
        select(SUBSCRIPTIONS.c.name).where(
            SUBSCRIPTIONS.c.account_id == account_id, SUBSCRIPTIONS.c.name == name
        )
    ).first()
    return FolderInfo(
        int(row[0]), account_id, name, uidvalidity, 1, 1, subscribed is not None, special_use
    )


def subscribe(conn: Connection, account_id: int, name: str, on: bool) -> None:
    exists = conn.execute(
        select(SUBSCRIPTIONS.c.name).where(
            SUBSCRIPTIONS.c.account_id == account_id, SUBSCRIPTIONS.c.name == name
        )
    ).first()
    if on and exists is None:
        conn.execute(insert(SUBSCRIPTIONS).values(account_id=account_id, name=name))
    elif not on and exists is not None:
        conn.execute(
            delete(SUBSCRIPTIONS).where(
                SUBSCRIPTIONS.c.account_id == account_id, SUBSCRIPTIONS.c.name == name
            )
        )


def create_folder(
    conn: Connection, account_id: int, name: str, special_use: str | None
) -> FolderInfo:
    """RFC 9051 §6.3.4: create ``name`` and any missing parents."""
    existing = set(conn.scalars(select(FOLDERS.c.name).where(FOLDERS.c.account_id == account_id)))
    if name in existing:
        raise FolderError(f"{name} already exists", "ALREADYEXISTS")
    if special_use is not None:
        taken = conn.scalar(
            select(FOLDERS.c.name).where(
                FOLDERS.c.account_id == account_id, FOLDERS.c.special_use == special_use
            )
        )
        if taken is not None:
            raise FolderError(f"\\{special_use} is already {taken}", "USEATTR")
    parts = name.split(DELIMITER)
    for i in range(1, len(parts)):
        parent = DELIMITER.join(parts[:i])
        if parent not in existing:
            new_folder(conn, account_id, parent)
            existing.add(parent)
    return new_folder(conn, account_id, name, special_use)


def unreferenced(conn: Connection, blob_ids: list[str]) -> list[str]:
    if not blob_ids:
        return []
    # The outbox reads the same ciphertext until its after-commit work is done.
    still = set(conn.scalars(_STILL_REFERENCED, {"m": blob_ids, "o": blob_ids}))
    return [b for b in blob_ids if b not in still]


def delete_folder(
    conn: Connection, blobs: BlobStore, account_id: int, name: str
) -> tuple[list[str], list[str]]:
    """Delete a folder and its messages; refuses folders with children. Returns the blob ids
    no longer referenced (file blobs are deleted by the caller after commit) and those of
    every message removed."""
    folder_id = conn.scalar(
        select(FOLDERS.c.id).where(FOLDERS.c.account_id == account_id, FOLDERS.c.name == name)
    )
    if folder_id is None:
        raise FolderError("No such mailbox", "NONEXISTENT")
    child = conn.scalar(
        select(FOLDERS.c.id).where(
            FOLDERS.c.account_id == account_id, FOLDERS.c.name.startswith(name + DELIMITER)
        )
    )
    if child is not None:
        raise FolderError("Mailbox has children; delete them first", "HASCHILDREN")
    blob_ids = sorted(
        set(conn.scalars(select(MESSAGES.c.blob_id).where(MESSAGES.c.folder_id == folder_id)))
    )
    conn.execute(delete(MESSAGES).where(MESSAGES.c.folder_id == folder_id))
    conn.execute(delete(EXPUNGED).where(EXPUNGED.c.folder_id == folder_id))
    conn.execute(delete(FOLDERS).where(FOLDERS.c.id == folder_id))
    dropped = unreferenced(conn, blob_ids)
    blobs.delete_rows(conn, dropped)
    return dropped, blob_ids


def rename_folder(conn: Connection, account_id: int, old: str, new: str) -> None:
    """RFC 9051 §6.3.6, children included; renaming INBOX moves its messages instead."""
    rows = conn.execute(
        select(FOLDERS.c.id, FOLDERS.c.name).where(FOLDERS.c.account_id == account_id)
    ).all()
    by_name = {str(r[1]): int(r[0]) for r in rows}
    if old not in by_name:
        raise FolderError("No such mailbox", "NONEXISTENT")
    if new in by_name:
        raise FolderError(f"{new} already exists", "ALREADYEXISTS")
    if new.startswith(old + DELIMITER):
        raise FolderError("Cannot rename a mailbox into itself", "CANNOT")
    parts = new.split(DELIMITER)
    for i in range(1, len(parts)):
        parent = DELIMITER.join(parts[:i])
        if parent not in by_name:
            by_name[parent] = new_folder(conn, account_id, parent).id
    if old == "INBOX":
        target = new_folder(conn, account_id, new)
        uids = list(
            conn.scalars(
                select(MESSAGES.c.uid)
                .where(MESSAGES.c.folder_id == by_name["INBOX"])
                .order_by(MESSAGES.c.uid)
            )
        )
        move_rows(conn, by_name["INBOX"], uids, target.id)
        return
    for folder_id_, name in rows:
        if name == old or str(name).startswith(old + DELIMITER):
            conn.execute(
                update(FOLDERS)
                .where(FOLDERS.c.id == folder_id_)
                .values(
                    name=new + str(name)[len(old) :],
                    # A renamed folder is a new mailbox to clients that cached the old name.
                    uidvalidity=new_uidvalidity(conn, account_id),
                )
            )


# -- messages -----------------------------------------------------------------------------


# The statements of the commands every IMAP session sends (STORE, EXPUNGE), written once:
# built with the expression language at each call, their construction and cache-key work cost
# more than SQLite's execution, on the writer thread every other write waits for.
_BUMP_MODSEQ = sql_text(
    "UPDATE folders SET highestmodseq = highestmodseq + 1 WHERE id = :f RETURNING highestmodseq"
)
_RECORD_EXPUNGED = sql_text("INSERT INTO expunged (folder_id, uid, modseq) VALUES (:f, :u, :m)")
_FLAGS_OF = sql_text(
    "SELECT id, uid, modseq, flags, size FROM messages WHERE folder_id = :f AND uid IN :uids"
).bindparams(bindparam("uids", expanding=True))
_SET_FLAGS = sql_text("UPDATE messages SET flags = :flags, modseq = :m WHERE id = :id")
_KEYWORDS = sql_text("SELECT keywords FROM folders WHERE id = :f")
# LIKE narrows, flags_set decides (a backslash is LIKE's escape on PostgreSQL, not SQLite's).
_DELETED_LIKE = "%\\Deleted%"
_DOOMED = "SELECT id, uid, flags, blob_id FROM messages WHERE folder_id = :f AND flags LIKE :d"
_DOOMED_ALL = sql_text(_DOOMED)
_DOOMED_AMONG = sql_text(_DOOMED + " AND uid IN :uids").bindparams(
    bindparam("uids", expanding=True)
)
_DELETE_MESSAGES = sql_text("DELETE FROM messages WHERE id IN :ids").bindparams(
    bindparam("ids", expanding=True)
)
_STILL_REFERENCED = sql_text(
    "SELECT blob_id FROM messages WHERE blob_id IN :m"
    " UNION SELECT blob_id FROM outbox_messages WHERE blob_id IN :o"
).bindparams(bindparam("m", expanding=True), bindparam("o", expanding=True))


def bump_modseq(conn: Connection, folder_id: int) -> int:
    return int(conn.execute(_BUMP_MODSEQ, {"f": folder_id}).one()[0])


def record_expunged(conn: Connection, folder_id: int, uids: list[int]) -> int:
    modseq = bump_modseq(conn, folder_id)
    if uids:
        conn.execute(_RECORD_EXPUNGED, [{"f": folder_id, "u": u, "m": modseq} for u in uids])
    return modseq


def reserve_uids(conn: Connection, folder_id: int, n: int, modseqs: int) -> tuple[int, int]:
    """Take ``n`` UIDs and ``modseqs`` MODSEQs of a folder (row-locked on PostgreSQL):
    returns the first of each."""
    row = conn.execute(
        update(FOLDERS)
        .where(FOLDERS.c.id == folder_id)
        .values(
            uidnext=FOLDERS.c.uidnext + n,
            highestmodseq=FOLDERS.c.highestmodseq + modseqs,
        )
        .returning(FOLDERS.c.uidnext, FOLDERS.c.highestmodseq)
    ).one()
    return int(row[0]) - n, int(row[1]) - modseqs + 1


def reserve_uid_ranges(conn: Connection, counts: dict[int, int]) -> dict[int, tuple[int, int]]:
    """:func:`reserve_uids` for several folders in one statement (``n`` UIDs and ``n``
    MODSEQs each): folder id → (first UID, first MODSEQ). One round trip per group commit
    instead of one per folder; on PostgreSQL the primary-key scan locks the rows in id order,
    like the per-folder loop did (and a deadlock would only send the items to the writer's
    one-by-one retry)."""
    if len(counts) == 1:
        ((folder_id, n),) = counts.items()
        return {folder_id: reserve_uids(conn, folder_id, n, n)}
    folders = sorted(counts)
    whens = " ".join(f"WHEN :f{i} THEN CAST(:n{i} AS BIGINT)" for i in range(len(folders)))
    ids = ", ".join(f":f{i}" for i in range(len(folders)))
    params: dict[str, int] = {}
    for i, folder_id in enumerate(folders):
        params[f"f{i}"], params[f"n{i}"] = folder_id, counts[folder_id]
    # Only bind-parameter names are interpolated into the statement.
    rows = conn.execute(
        sql_text(
            f"UPDATE folders SET uidnext = uidnext + CASE id {whens} END,"  # noqa: S608
            f" highestmodseq = highestmodseq + CASE id {whens} END"
            f" WHERE id IN ({ids}) RETURNING id, uidnext, highestmodseq"
        ),
        params,
    ).all()
    out = {}
    for folder_id, uidnext, highest in rows:
        n = counts[int(folder_id)]
        out[int(folder_id)] = (int(uidnext) - n, int(highest) - n + 1)
    if len(out) != len(counts):
        raise FolderError("No such mailbox", "NONEXISTENT")
    return out


def note_keywords(conn: Connection, folder_id: int, flags: Iterable[str]) -> None:
    """Add any new keyword among ``flags`` to the folder's list (case-insensitively)."""
    wanted = {f for f in flags if not f.startswith("\\")}
    if not wanted:
        return
    text = conn.scalar(_KEYWORDS, {"f": folder_id}) or ""
    known = flags_set(text)
    have = {k.casefold() for k in known}
    new = {k for k in wanted if k.casefold() not in have}
    if new:
        conn.execute(
            update(FOLDERS)
            .where(FOLDERS.c.id == folder_id)
            .values(keywords=flags_text(known | new))
        )


def store_flags(
    conn: Connection,
    folder_id: int,
    uids: list[int],
    wanted: set[str],
    mode: FlagMode,
    unchanged_since: int | None,
) -> list[MessageRef]:
    rows = conn.execute(_FLAGS_OF, {"f": folder_id, "uids": uids}).all() if uids else []
    changes: list[tuple[int, int, frozenset[str], int]] = []
    for mid, uid, old_modseq, text, size in rows:
        if unchanged_since is not None and old_modseq > unchanged_since:
            continue
        old = flags_set(text)
        new = change_flags(old, wanted, mode)
        if new != old:
            changes.append((mid, uid, new, size))
    changed: list[MessageRef] = []
    if changes:
        modseq = bump_modseq(conn, folder_id)
        conn.execute(
            _SET_FLAGS,
            [{"flags": flags_text(new), "m": modseq, "id": mid} for mid, _, new, _ in changes],
        )
        changed = [MessageRef(mid, uid, modseq, new, size) for mid, uid, new, size in changes]
    if mode != "remove":
        note_keywords(conn, folder_id, wanted)
    return changed


def expunge(
    conn: Connection, blobs: BlobStore, folder_id: int, uids: list[int] | None
) -> tuple[list[int], list[str], list[str]]:
    """Remove messages flagged ``\\Deleted`` (among ``uids`` if given): (UIDs, dropped blobs,
    blobs of the removed messages)."""
    if uids is None:
        found = conn.execute(_DOOMED_ALL, {"f": folder_id, "d": _DELETED_LIKE}).all()
    elif uids:
        found = conn.execute(
            _DOOMED_AMONG, {"f": folder_id, "d": _DELETED_LIKE, "uids": uids}
        ).all()
    else:
        found = []
    doomed = [(mid, uid, bid) for mid, uid, text, bid in found if "\\Deleted" in flags_set(text)]
    if not doomed:
        return [], [], []
    conn.execute(_DELETE_MESSAGES, {"ids": [d[0] for d in doomed]})
    gone = sorted(int(d[1]) for d in doomed)
    record_expunged(conn, folder_id, gone)
    removed = sorted({str(d[2]) for d in doomed})
    dropped = unreferenced(conn, removed)
    blobs.delete_rows(conn, dropped)
    return gone, dropped, removed


def copy_rows(conn: Connection, source: int, uids: list[int], target: int) -> list[tuple[int, int]]:
    """COPY within one account: the blob, sealed key, metadata and owner seal (bound to the
    account and the blob, both unchanged) are shared as they are."""
    rows = conn.execute(
        select(
            MESSAGES.c.uid,
            MESSAGES.c.flags,
            MESSAGES.c.blob_id,
            MESSAGES.c.sealed_key,
            MESSAGES.c.meta,
            MESSAGES.c.size,
            MESSAGES.c.owner_meta,
        )
        .where(MESSAGES.c.folder_id == source, MESSAGES.c.uid.in_(uids))
        .order_by(MESSAGES.c.uid)
    ).all()
    if not rows:
        return []
    first, modseq = reserve_uids(conn, target, len(rows), 1)
    values: list[dict[str, Any]] = []
    pairs = []
    for i, (uid, flags, blob, sealed, meta, size, owner_meta) in enumerate(rows):
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
                "owner_meta": owner_meta,
            }
        )
        pairs.append((int(uid), first + i))
    conn.execute(insert(MESSAGES), values)
    note_keywords(conn, target, {f for row in rows for f in flags_set(row[1])})
    return pairs


def move_rows(conn: Connection, source: int, uids: list[int], target: int) -> list[tuple[int, int]]:
    """RFC 6851 MOVE: copy, then remove from the source, recorded for QRESYNC."""
    pairs = copy_rows(conn, source, uids, target)
    if pairs:
        moved = [p[0] for p in pairs]
        conn.execute(
            delete(MESSAGES).where(MESSAGES.c.folder_id == source, MESSAGES.c.uid.in_(moved))
        )
        record_expunged(conn, source, moved)
    return pairs


def folder_row_info(row: Any, subscribed: bool) -> FolderInfo:
    return FolderInfo(
        int(row.id),
        int(row.account_id),
        str(row.name),
        int(row.uidvalidity),
        int(row.uidnext),
        int(row.highestmodseq),
        subscribed,
        row.special_use,
        row.keywords or "",
    )
