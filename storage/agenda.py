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
from storage.models import AgendaComponent, AgendaReminder

TABLE: Table = AgendaComponent.__table__  # type: ignore[assignment]
REMINDERS: Table = AgendaReminder.__table__  # type: ignore[assignment]
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
    # (due, occurrence, alarm) for the event after the change; None: leave reminders alone
    reminders: list[tuple[dt.datetime, str, int]] | None = None


@dataclass(frozen=True)
class DueReminder:
    id: int
    account_id: int
    uid_digest: str
    occurrence: str
    alarm: int
    due_at: dt.datetime


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
            if decision.reminders is not None:
                _reschedule(conn, account_id, digest, decision.reminders)
            return decision.result

        result: T = await self.db.writer.run(write)
        return result

    async def components_of(self, account_id: int, digest: str) -> list[bytes]:
        async with self.db.read() as session:
            rows = (
                await session.execute(
                    select(AgendaComponent.key_ref, AgendaComponent.wrapped_key,
                           AgendaComponent.body)
                    .where(AgendaComponent.account_id == account_id,
                           AgendaComponent.uid_digest == digest)
                    .order_by(AgendaComponent.id)
                )
            ).all()  # fmt: skip
        return [self._open(r.key_ref, r.wrapped_key, r.body) for r in rows]

    async def claim_due(
        self, now: dt.datetime, lease: dt.timedelta, limit: int = 100
    ) -> list[DueReminder]:
        """Due reminders nobody holds, leased to the caller until ``now + lease``. Rows are
        locked with SKIP LOCKED on PostgreSQL; SQLite has one writer."""

        def write(conn: Connection) -> list[DueReminder]:
            candidates = (
                select(REMINDERS.c.id)
                .where(
                    REMINDERS.c.sent_at.is_(None),
                    REMINDERS.c.due_at <= now,
                    (REMINDERS.c.claimed_until.is_(None)) | (REMINDERS.c.claimed_until <= now),
                )
                .order_by(REMINDERS.c.due_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            ids = [int(i) for i in conn.execute(candidates).scalars()]
            if not ids:
                return []
            conn.execute(
                update(REMINDERS).where(REMINDERS.c.id.in_(ids)).values(claimed_until=now + lease)
            )
            rows = conn.execute(select(REMINDERS).where(REMINDERS.c.id.in_(ids))).all()
            return [
                DueReminder(r.id, r.account_id, r.uid_digest, r.occurrence, r.alarm,
                            _utc(r.due_at))
                for r in rows
            ]  # fmt: skip

        result: list[DueReminder] = await self.db.writer.run(write)
        return result

    def claim_sending(self, reminder_id: int, now: dt.datetime) -> Callable[[Connection], bool]:
        """For the writer transaction that delivers the reminder: marks it sent, unless it
        was sent already (by another process whose lease ran out, or before a crash). The
        delivery and the mark commit together, so a reminder goes out exactly once."""

        def claim(conn: Connection) -> bool:
            done = conn.execute(
                update(REMINDERS)
                .where(REMINDERS.c.id == reminder_id, REMINDERS.c.sent_at.is_(None))
                .values(sent_at=now)
            )
            return bool(done.rowcount == 1)

        return claim

    async def mark_sent(self, reminder_id: int, now: dt.datetime) -> None:
        def write(conn: Connection) -> None:
            conn.execute(update(REMINDERS).where(REMINDERS.c.id == reminder_id)
                         .values(sent_at=now))  # fmt: skip

        await self.db.writer.run(write)

    async def pending(self, account_id: int) -> list[DueReminder]:
        async with self.db.read() as session:
            rows = (
                await session.execute(
                    select(REMINDERS)
                    .where(REMINDERS.c.account_id == account_id, REMINDERS.c.sent_at.is_(None))
                    .order_by(REMINDERS.c.due_at)
                )
            ).all()
        return [
            DueReminder(r.id, r.account_id, r.uid_digest, r.occurrence, r.alarm, _utc(r.due_at))
            for r in rows
        ]

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


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _reschedule(
    conn: Connection, account_id: int, digest: str, reminders: list[tuple[dt.datetime, str, int]]
) -> None:
    """Pending reminders of the event replaced by ``reminders``; those already sent stay sent."""
    mine = (REMINDERS.c.account_id == account_id) & (REMINDERS.c.uid_digest == digest)
    sent = {
        (r.occurrence, r.alarm)
        for r in conn.execute(
            select(REMINDERS.c.occurrence, REMINDERS.c.alarm).where(
                mine, REMINDERS.c.sent_at.is_not(None)
            )
        )
    }
    conn.execute(delete(REMINDERS).where(mine, REMINDERS.c.sent_at.is_(None)))
    for due, occurrence, alarm in reminders:
        if (occurrence, alarm) in sent:
            continue
        conn.execute(
            insert(REMINDERS).values(
                account_id=account_id, uid_digest=digest, occurrence=occurrence, alarm=alarm,
                due_at=due.astimezone(dt.UTC), claimed_until=None, sent_at=None,
            )
        )  # fmt: skip
