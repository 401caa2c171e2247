"""\\Recent (RFC 3501 §2.3.2) for IMAP4rev1 sessions: a message is recent in exactly one
session, the first told of it. Each folder keeps the first UID no session was told of
(``folders.first_recent_uid``); a session that selects the folder read-write, or sees new
messages arrive in it, claims the UIDs below ``uidnext`` by moving the mark past them, in one
conditional write, so two sessions never both get a message as recent, across processes
and nodes. EXAMINE and STATUS only read the mark (RFC 3501 §6.3.2: EXAMINE MUST NOT make
messages lose \\Recent). IMAP4rev2 has no \\Recent (RFC 9051 Appendix E) and claims nothing.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

from storage.db import Database


async def first_recent(db: Database, folder_id: int) -> int | None:
    """The folder's first recent UID (``None`` if the folder is gone)."""
    rows = await db.lookup("SELECT first_recent_uid FROM folders WHERE id = ?", folder_id)
    return int(rows[0][0]) if rows else None


async def claim(db: Database, folder_id: int, below: int) -> tuple[int, int]:
    """Claim the recent UIDs below ``below`` (the session's idea of ``uidnext``, so nothing
    it has not seen yet is claimed): ``(first, end)``, the UIDs ``first <= uid < end`` are
    recent to the caller only; an empty range when another session was first."""
    start = await first_recent(db, folder_id)
    if start is None or start >= below:
        return (0, 0)

    def move(conn: Connection) -> tuple[int, int]:
        found = conn.execute(
            text("SELECT first_recent_uid FROM folders WHERE id = :f"), {"f": folder_id}
        ).first()
        if found is None or int(found[0]) >= below:
            return (0, 0)
        conn.execute(
            text("UPDATE folders SET first_recent_uid = :b WHERE id = :f"),
            {"b": below, "f": folder_id},
        )
        return (int(found[0]), below)

    result: tuple[int, int] = await db.writer.run(move)
    return result


async def count(db: Database, folder_id: int) -> int:
    """STATUS RECENT: messages of the folder no session was told of yet."""
    rows = await db.lookup(
        "SELECT count(*) FROM messages m JOIN folders f ON f.id = m.folder_id"
        " WHERE f.id = ? AND m.uid >= f.first_recent_uid",
        folder_id,
    )
    return int(rows[0][0]) if rows else 0
