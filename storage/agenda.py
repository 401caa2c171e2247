"""Each mailbox's agenda (design.md §6, issue 9): iCalendar components stored encrypted.

A row is one component of one event (the master, or an override for one RECURRENCE-ID) as
iCalendar bytes, encrypted under its own content key, itself wrapped by the master key. The
UID is stored as a digest: nothing in the clear says what, when or with whom.

:meth:`AgendaStore.change` reads an event's components, lets the caller decide, and writes the
decision in the same transaction: a scheduling message is applied whole or not at all.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sqlalchemy import Table, and_, delete, insert, select, update
from sqlalchemy.engine import Connection

from storage.crypto import ContentKey, MasterKey
from storage.db import Database
from storage.models import AgendaComponent

TABLE: Table = AgendaComponent.__table__  # type: ignore[assignment]
_CONTEXT = b"agenda:"
T = TypeVar("T")


def uid_digest(uid: str) -> str:
    return hashlib.sha256(uid.encode("utf-8")).hexdigest()


@dataclass
class Decision(Generic[T]):
    """What to write (by RECURRENCE-ID key), what to delete, and what to tell the caller."""

    result: T
    writes: dict[str, bytes] = field(default_factory=dict)
    deletes: list[str] = field(default_factory=list)


class AgendaStore:
    def __init__(self, db: Database, master: MasterKey) -> None:
        self.db = db
        self.master = master

    def _open(self, key_ref: bytes, wrapped: bytes, body: bytes) -> bytes:
        key = ContentKey(self.master.unwrap(wrapped, _CONTEXT + key_ref))
        return key.decrypt_body(body)

    def _seal(self, data: bytes) -> tuple[bytes, bytes, bytes]:
        key = ContentKey.generate()
        ref = os.urandom(16)
        return ref, self.master.wrap(key.key, _CONTEXT + ref), key.encrypt_body(data)

    async def change(
        self, account_id: int, uid: str, decide: Callable[[dict[str, bytes]], Decision[T]]
    ) -> T:
        """Apply ``decide(components held)`` atomically; durable on return."""
        digest = uid_digest(uid)

        def write(conn: Connection) -> T:
            rows = conn.execute(
                select(TABLE.c.recurrence_id, TABLE.c.key_ref, TABLE.c.wrapped_key, TABLE.c.body)
                .where(TABLE.c.account_id == account_id, TABLE.c.uid_digest == digest)
            ).all()  # fmt: skip
            held = {r.recurrence_id: self._open(r.key_ref, r.wrapped_key, r.body) for r in rows}
            decision = decide(held)
            now = dt.datetime.now(dt.UTC)
            for key, data in decision.writes.items():
                ref, wrapped, body = self._seal(data)
                values = dict(updated_at=now, key_ref=ref, wrapped_key=wrapped, body=body)
                where = and_(
                    TABLE.c.account_id == account_id,
                    TABLE.c.uid_digest == digest,
                    TABLE.c.recurrence_id == key,
                )
                if key in held:
                    conn.execute(update(TABLE).where(where).values(**values))
                else:
                    conn.execute(
                        insert(TABLE).values(
                            account_id=account_id, uid_digest=digest, recurrence_id=key, **values
                        )
                    )
            for key in decision.deletes:
                conn.execute(
                    delete(TABLE).where(
                        TABLE.c.account_id == account_id,
                        TABLE.c.uid_digest == digest,
                        TABLE.c.recurrence_id == key,
                    )
                )
            return decision.result

        result: T = await self.db.writer.run(write)
        return result

    async def components(self, account_id: int) -> list[bytes]:
        """Every component of the mailbox's agenda, decrypted."""
        async with self.db.read() as session:
            rows = (
                await session.execute(
                    select(AgendaComponent.key_ref, AgendaComponent.wrapped_key,
                           AgendaComponent.body)
                    .where(AgendaComponent.account_id == account_id)
                    .order_by(AgendaComponent.id)
                )
            ).all()  # fmt: skip
        return [self._open(r.key_ref, r.wrapped_key, r.body) for r in rows]
