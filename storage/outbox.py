"""The pipeline's outbox (design.md §2 step 5): the after-commit work of committed messages.

A message whose steps have work to do once it is committed (file a dossier, apply an iMIP
request, answer a manifest, send a success DSN…) gets one ``outbox_messages`` row and one
``outbox_jobs`` row per step, written in the same transaction as its mailbox copies and its
outbound queue entry: the ``250`` acknowledges all of them at once.

The message body is not copied: the row names the message's ciphertext blob (the one its
mailbox copies share, or written for the outbox alone when no mailbox keeps it) and holds its
content key wrapped by the master key, since the server itself must read it. The envelope
(sender, recipients, origin) and each job's data are encrypted with that content key.

Jobs are leased like the outbound queue (``FOR UPDATE SKIP LOCKED`` on PostgreSQL): a process
that dies leaves leases that expire, and another process runs the job again; each write the
job made is recorded as an *effect* (:func:`storage.db.effect`), so it is not made twice.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from storage.crypto import ContentKey, MasterKey
from storage.db import Database
from storage.models import OutboxJob, OutboxMessage

MESSAGES: Table = OutboxMessage.__table__  # type: ignore[assignment]
JOBS: Table = OutboxJob.__table__  # type: ignore[assignment]
_CONTEXT = b"outbox:"
_JOB_DATA = b"outbox-job"


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class OutboxEntry:
    """What a commit writes for a message with after-commit work (built outside the
    transaction: the encryption is done by then)."""

    blob_id: str
    key_ref: bytes
    wrapped_key: bytes
    envelope: bytes
    jobs: tuple[tuple[str, bytes], ...]  # (step name, encrypted data)


def prepare(
    master: MasterKey,
    key: ContentKey,
    blob_id: str,
    envelope: dict[str, Any],
    jobs: Sequence[tuple[str, dict[str, Any]]],
) -> OutboxEntry:
    """The outbox rows of a message whose body ``blob_id`` is encrypted under ``key``."""
    ref = os.urandom(16)
    return OutboxEntry(
        blob_id=blob_id,
        key_ref=ref,
        wrapped_key=master.wrap(key.key, _CONTEXT + ref),
        envelope=key.encrypt_meta(json.dumps(envelope, separators=(",", ":")).encode()),
        jobs=tuple(
            (step, key.encrypt_meta(_JOB_DATA + json.dumps(data).encode())) for step, data in jobs
        ),
    )


def write(conn: Connection, entry: OutboxEntry) -> int:
    """Insert ``entry`` in the caller's transaction; the outbox message's id."""
    at = now()
    message_id = int(
        conn.execute(
            insert(MESSAGES)
            .values(
                created_at=at,
                blob_id=entry.blob_id,
                key_ref=entry.key_ref,
                wrapped_key=entry.wrapped_key,
                envelope=entry.envelope,
            )
            .returning(MESSAGES.c.id)
        ).scalar_one()
    )
    conn.execute(
        insert(JOBS),
        [
            {
                "message_id": message_id,
                "step": step,
                "data": data,
                "attempts": 0,
                "next_attempt_at": at,
                "failed": False,
            }
            for step, data in entry.jobs
        ],
    )
    return message_id


@dataclass(frozen=True)
class Job:
    id: int
    message_id: int
    step: str
    attempts: int
    data: bytes
    blob_id: str
    key_ref: bytes
    wrapped_key: bytes
    envelope: bytes


@dataclass(frozen=True)
class OpenedJob:
    """A job with its message read back: the plaintext, the envelope and the step's data."""

    job: Job
    raw: bytes
    envelope: dict[str, Any]
    data: dict[str, Any]


async def lease(db: Database, owner: str, *, limit: int, lease_seconds: float) -> list[Job]:
    """Take up to ``limit`` due jobs for ``owner`` until the lease expires."""
    postgres = db.dialect == "postgresql"

    def take(conn: Connection) -> list[Job]:
        at = now()
        due = (
            select(JOBS.c.id)
            .where(
                JOBS.c.next_attempt_at <= at,
                JOBS.c.failed.is_(False),
                or_(JOBS.c.lease_until.is_(None), JOBS.c.lease_until < at),
            )
            .order_by(JOBS.c.next_attempt_at, JOBS.c.id)
            .limit(limit)
        )
        if postgres:
            due = due.with_for_update(skip_locked=True)
        ids = [row[0] for row in conn.execute(due)]
        if not ids:
            return []
        conn.execute(
            update(JOBS)
            .where(JOBS.c.id.in_(ids))
            .values(lease_owner=owner, lease_until=at + dt.timedelta(seconds=lease_seconds))
        )
        rows = conn.execute(
            select(
                JOBS.c.id, JOBS.c.message_id, JOBS.c.step, JOBS.c.attempts, JOBS.c.data,
                MESSAGES.c.blob_id, MESSAGES.c.key_ref, MESSAGES.c.wrapped_key,
                MESSAGES.c.envelope,
            )
            .join(MESSAGES, MESSAGES.c.id == JOBS.c.message_id)
            .where(JOBS.c.id.in_(ids))
            .order_by(JOBS.c.id)
        )
        return [Job(*row) for row in rows]

    result: list[Job] = await db.writer.run(take)
    return result


async def open_job(db: Database, master: MasterKey, job: Job) -> OpenedJob:
    """Read the job's message back and decrypt it with its data."""
    key = ContentKey(master.unwrap(job.wrapped_key, _CONTEXT + job.key_ref))
    async with db.read() as session:
        ciphertext = await db.blobs.get(session, job.blob_id)
    data = key.decrypt_meta(job.data)
    if not data.startswith(_JOB_DATA):
        raise ValueError("outbox job data of another kind")
    return OpenedJob(
        job=job,
        raw=key.decrypt_body(ciphertext),
        envelope=json.loads(key.decrypt_meta(job.envelope)),
        data=json.loads(data[len(_JOB_DATA) :]),
    )


def _drop_finished(conn: Connection, message_id: int) -> list[str]:
    """The outbox message once it has no job left; its blob id if nothing else uses it."""
    left = conn.execute(select(func.count()).where(JOBS.c.message_id == message_id)).scalar_one()
    if left:
        return []
    blob = conn.execute(select(MESSAGES.c.blob_id).where(MESSAGES.c.id == message_id)).scalar()
    conn.execute(delete(MESSAGES).where(MESSAGES.c.id == message_id))
    return [str(blob)] if blob is not None else []


async def finish(db: Database, job: Job, owner: str) -> bool:
    """The job is done: gone with its effects (False if its lease was lost meanwhile)."""
    from storage import transactions as tx

    def done(conn: Connection) -> tuple[bool, list[str]]:
        gone = conn.execute(
            delete(JOBS).where(JOBS.c.id == job.id, JOBS.c.lease_owner == owner)
        ).rowcount
        if not gone:
            return False, []
        dropped = tx.unreferenced(conn, _drop_finished(conn, job.message_id))
        db.blobs.delete_rows(conn, dropped)
        return True, dropped

    finished, dropped = await db.writer.run(done)
    if dropped:
        await db.blobs.delete_files(dropped)
    return bool(finished)


async def defer(
    db: Database, job: Job, owner: str, *, error: str, next_attempt_at: dt.datetime, failed: bool
) -> None:
    """A failed attempt: again at ``next_attempt_at``, or never (``failed``: kept, listed)."""

    def later(conn: Connection) -> None:
        conn.execute(
            update(JOBS)
            .where(JOBS.c.id == job.id, JOBS.c.lease_owner == owner)
            .values(
                attempts=JOBS.c.attempts + 1,
                next_attempt_at=next_attempt_at,
                lease_owner=None,
                lease_until=None,
                last_error=error[:200],
                failed=failed,
            )
        )

    await db.writer.run(later)


@dataclass(frozen=True)
class JobState:
    id: int
    step: str
    attempts: int
    next_attempt_at: dt.datetime
    failed: bool
    last_error: str | None


async def listing(db: Database) -> list[JobState]:
    """Every job not finished, for the operator (``hygie outbox list``)."""
    async with db.read() as session:
        rows = await session.execute(
            select(
                JOBS.c.id, JOBS.c.step, JOBS.c.attempts, JOBS.c.next_attempt_at, JOBS.c.failed,
                JOBS.c.last_error,
            ).order_by(JOBS.c.id)
        )
        return [
            JobState(r[0], r[1], r[2], _utc(r[3]), bool(r[4]), r[5]) for r in rows.all()
        ]


async def retry(db: Database, ids: Sequence[int] | None = None) -> int:
    """Failed (or waiting) jobs due now again; how many."""

    def again(conn: Connection) -> int:
        query = update(JOBS).values(next_attempt_at=now(), failed=False, lease_until=None)
        if ids is not None:
            query = query.where(JOBS.c.id.in_(list(ids)))
        return int(conn.execute(query).rowcount)

    result: int = await db.writer.run(again)
    return result
