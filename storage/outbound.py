"""The outbound queue (design.md §2.5): messages for other operators' domains, durable from
the moment submission answers 250 until the remote server accepts them or the sender is told
they could not be delivered.

Bodies are encrypted at rest like mailbox messages (a random content key, wrapped here by the
master key since the relay itself must read them). Each remote recipient has its own schedule:
``next_attempt_at``, an attempt count, and a *lease*: a worker takes due recipients by writing
its name and a lease deadline in one transaction (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
several ``hygie serve`` processes on one database never take the same recipient); a worker
that dies leaves leases that simply expire.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection, Row

from storage.crypto import ContentKey, MasterKey
from storage.db import Database
from storage.models import OutboundMessage, OutboundRecipient

MESSAGES: Table = OutboundMessage.__table__  # type: ignore[assignment]
RECIPIENTS: Table = OutboundRecipient.__table__  # type: ignore[assignment]
_CONTEXT = b"outbound:"


@dataclass(frozen=True)
class QueuedRecipient:
    """What submission hands to the queue for one remote recipient."""

    address: str
    domain: str  # ASCII form
    orcpt: str | None = None
    notify: str | None = None  # "NEVER" or a comma list of SUCCESS, FAILURE, DELAY


@dataclass(frozen=True)
class QueueItem:
    """One leased (or listed) recipient of a queued message."""

    id: int
    message_id: int
    recipient: str
    domain: str
    orcpt: str | None
    notify: str | None
    attempts: int
    next_attempt_at: dt.datetime
    created_at: dt.datetime
    sender: str
    last_error: str | None
    delay_notified: bool
    size: int


@dataclass(frozen=True)
class QueuedMessage:
    id: int
    sender: str
    envid: str | None
    ret: str | None
    created_at: dt.datetime
    raw: bytes


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Queued:
    """A message for remote recipients, encrypted and ready to be written."""

    sender: str
    envid: str | None
    ret: str | None
    size: int
    key_ref: bytes
    wrapped_key: bytes
    body: bytes
    recipients: tuple[QueuedRecipient, ...]


def prepare(
    master: MasterKey,
    raw: bytes,
    sender: str,
    recipients: Sequence[QueuedRecipient],
    *,
    envid: str | None = None,
    ret: str | None = None,
) -> Queued:
    """Encrypt ``raw`` for the queue (CPU only)."""
    key = ContentKey.generate()
    ref = os.urandom(16)
    return Queued(
        sender=sender, envid=envid, ret=ret, size=len(raw), key_ref=ref,
        wrapped_key=master.wrap(key.key, _CONTEXT + ref), body=key.encrypt_body(raw),
        recipients=tuple(recipients),
    )  # fmt: skip


def write(conn: Connection, queued: Queued) -> int:
    """Insert ``queued`` in the caller's transaction; its queue id."""
    at = now()
    message_id = int(
        conn.execute(
            insert(MESSAGES)
            .values(
                created_at=at,
                sender=queued.sender,
                envid=queued.envid,
                ret=queued.ret,
                size=queued.size,
                key_ref=queued.key_ref,
                wrapped_key=queued.wrapped_key,
                body=queued.body,
            )
            .returning(MESSAGES.c.id)
        ).scalar_one()
    )
    conn.execute(
        insert(RECIPIENTS),
        [
            {
                "message_id": message_id,
                "recipient": r.address,
                "domain": r.domain,
                "orcpt": r.orcpt,
                "notify": r.notify,
                "attempts": 0,
                "next_attempt_at": at,
                "delay_notified": False,
            }
            for r in queued.recipients
        ],
    )
    return message_id


async def enqueue(
    db: Database,
    master: MasterKey,
    raw: bytes,
    sender: str,
    recipients: Sequence[QueuedRecipient],
    *,
    envid: str | None = None,
    ret: str | None = None,
) -> int:
    """Queue ``raw`` for ``recipients``; durable on return. Returns the message's queue id."""
    queued = prepare(master, raw, sender, recipients, envid=envid, ret=ret)
    result: int = await db.writer.run(lambda conn: write(conn, queued))
    return result


def _item(row: Row[Any, *tuple[Any, ...]]) -> QueueItem:
    m = row._mapping
    return QueueItem(
        id=m["id"],
        message_id=m["message_id"],
        recipient=m["recipient"],
        domain=m["domain"],
        orcpt=m["orcpt"],
        notify=m["notify"],
        attempts=m["attempts"],
        next_attempt_at=_utc(m["next_attempt_at"]),
        created_at=_utc(m["created_at"]),
        sender=m["sender"],
        last_error=m["last_error"],
        delay_notified=bool(m["delay_notified"]),
        size=m["size"],
    )


_COLUMNS = (
    RECIPIENTS.c.id, RECIPIENTS.c.message_id, RECIPIENTS.c.recipient, RECIPIENTS.c.domain,
    RECIPIENTS.c.orcpt, RECIPIENTS.c.notify, RECIPIENTS.c.attempts, RECIPIENTS.c.next_attempt_at,
    RECIPIENTS.c.last_error, RECIPIENTS.c.delay_notified, MESSAGES.c.created_at,
    MESSAGES.c.sender, MESSAGES.c.size,
)  # fmt: skip


async def lease(db: Database, owner: str, *, limit: int, lease_seconds: float) -> list[QueueItem]:
    """Take up to ``limit`` due recipients for ``owner`` until the lease expires."""
    postgres = db.dialect == "postgresql"

    def write(conn: Connection) -> list[QueueItem]:
        at = now()
        due = (
            select(RECIPIENTS.c.id)
            .where(
                RECIPIENTS.c.next_attempt_at <= at,
                or_(RECIPIENTS.c.lease_until.is_(None), RECIPIENTS.c.lease_until < at),
            )
            .order_by(RECIPIENTS.c.next_attempt_at)
            .limit(limit)
        )
        if postgres:
            due = due.with_for_update(skip_locked=True)
        ids = [row[0] for row in conn.execute(due)]
        if not ids:
            return []
        conn.execute(
            update(RECIPIENTS)
            .where(RECIPIENTS.c.id.in_(ids))
            .values(lease_owner=owner, lease_until=at + dt.timedelta(seconds=lease_seconds))
        )
        rows = conn.execute(
            select(*_COLUMNS)
            .join(MESSAGES, MESSAGES.c.id == RECIPIENTS.c.message_id)
            .where(RECIPIENTS.c.id.in_(ids))
        )
        return [_item(row) for row in rows]

    result: list[QueueItem] = await db.writer.run(write)
    return result


async def load(db: Database, master: MasterKey, message_id: int) -> QueuedMessage | None:
    async with db.read() as session:
        m = await session.get(OutboundMessage, message_id)
        if m is None:
            return None
        key = ContentKey(master.unwrap(m.wrapped_key, _CONTEXT + m.key_ref))
        return QueuedMessage(
            m.id, m.sender, m.envid, m.ret, _utc(m.created_at), key.decrypt_body(m.body)
        )


def _drop_finished(conn: Connection, message_ids: Iterable[int]) -> None:
    for message_id in set(message_ids):
        left = conn.execute(
            select(func.count()).where(RECIPIENTS.c.message_id == message_id)
        ).scalar_one()
        if not left:
            conn.execute(delete(MESSAGES).where(MESSAGES.c.id == message_id))


async def finish(db: Database, items: Sequence[QueueItem]) -> None:
    """Recipients delivered, or failed for good (after the sender's DSN was delivered)."""
    if not items:
        return

    def write(conn: Connection) -> None:
        conn.execute(delete(RECIPIENTS).where(RECIPIENTS.c.id.in_([i.id for i in items])))
        _drop_finished(conn, [i.message_id for i in items])

    await db.writer.run(write)


async def defer(
    db: Database,
    items: Sequence[QueueItem],
    *,
    next_attempt_at: dt.datetime,
    error: str,
    delay_notified: bool | None = None,
) -> None:
    """A temporary failure: try again at ``next_attempt_at``."""
    if not items:
        return
    values: dict[str, object] = {
        "attempts": RECIPIENTS.c.attempts + 1,
        "next_attempt_at": next_attempt_at,
        "lease_owner": None,
        "lease_until": None,
        "last_error": error[:2000],
    }
    if delay_notified is not None:
        values["delay_notified"] = delay_notified

    def write(conn: Connection) -> None:
        conn.execute(
            update(RECIPIENTS).where(RECIPIENTS.c.id.in_([i.id for i in items])).values(**values)
        )

    await db.writer.run(write)


async def listing(db: Database) -> list[QueueItem]:
    async with db.read() as session:
        rows = await session.execute(
            select(*_COLUMNS)
            .join(MESSAGES, MESSAGES.c.id == RECIPIENTS.c.message_id)
            .order_by(RECIPIENTS.c.next_attempt_at, RECIPIENTS.c.id)
        )
        return [_item(row) for row in rows]


async def retry_now(db: Database, ids: Sequence[int] | None = None) -> int:
    """Make recipients due now (all of them when ``ids`` is None); how many were."""

    def write(conn: Connection) -> int:
        at = now()
        # A recipient a worker holds right now is being tried already: leave its lease, or a
        # second worker would send the same message again.
        query = (
            update(RECIPIENTS)
            .where(or_(RECIPIENTS.c.lease_until.is_(None), RECIPIENTS.c.lease_until < at))
            .values(next_attempt_at=at)
        )
        if ids is not None:
            query = query.where(RECIPIENTS.c.id.in_(list(ids)))
        return int(conn.execute(query).rowcount)

    result: int = await db.writer.run(write)
    return result


async def remove(db: Database, ids: Sequence[int]) -> int:
    """Delete recipients from the queue without notice; how many were."""

    def write(conn: Connection) -> int:
        message_ids = [
            row[0]
            for row in conn.execute(
                select(RECIPIENTS.c.message_id).where(RECIPIENTS.c.id.in_(list(ids)))
            )
        ]
        count = int(conn.execute(delete(RECIPIENTS).where(RECIPIENTS.c.id.in_(list(ids)))).rowcount)
        _drop_finished(conn, message_ids)
        return count

    result: int = await db.writer.run(write)
    return result
