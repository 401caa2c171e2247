"""Work done by one process of the cluster at a time (design.md §3; issue 20 item 3).

Items of work that have rows of their own (outbound queue entries, after-commit jobs, agenda
reminders, patient-space mail) are leased row by row where they live. Periodic work that has no
row — the patient-space round, the CRL upkeep, fetching the trusted-domain list — is held through
a named lease row (``cluster_leases``): a process takes it if nobody holds it or the holder's
lease expired, renews it while it keeps it, and gives it up when it stops. A process that dies
holds it no longer than ``ttl`` seconds; another one then takes over. Each try is one short
write transaction, so two processes never both believe they hold it: SQLite's write lock
(``BEGIN IMMEDIATE``) or PostgreSQL's row lock on the same primary key decide.

Expiry times are the holders' clocks (seconds since the epoch): nodes keep their clocks
synchronised (NTP) anyway for TLS and tokens; a lease's ``ttl`` is far above any drift.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable

import structlog
from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.engine import Connection

from storage.db import Database
from storage.models import ClusterDocument, ClusterLease

log = structlog.get_logger("hygie.leases")
LEASES: Table = ClusterLease.__table__  # type: ignore[assignment]
DOCUMENTS: Table = ClusterDocument.__table__  # type: ignore[assignment]


def holder_name() -> str:
    """This process, as named in lease rows: host, pid, and a random part (a pid is reused)."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(3)}"


def _take(conn: Connection, name: str, holder: str, now: float, ttl: float) -> bool:
    row = conn.execute(select(LEASES.c.holder, LEASES.c.expires).where(LEASES.c.name == name))
    found = row.first()
    if found is None:
        conn.execute(insert(LEASES).values(name=name, holder=holder, expires=now + ttl))
        return True
    if found.holder != holder and found.expires > now:
        return False
    done = conn.execute(
        update(LEASES)
        .where(LEASES.c.name == name, LEASES.c.holder == found.holder)
        .values(holder=holder, expires=now + ttl)
    )
    return bool(done.rowcount)


async def acquire(db: Database, name: str, holder: str, ttl: float) -> bool:
    """Take or renew the lease ``name`` for ``ttl`` seconds; False if another holds it."""
    now = time.time()
    try:
        return bool(await db.writer.run(lambda conn: _take(conn, name, holder, now, ttl)))
    except Exception as exc:  # two first takers at once: the primary key refused one
        log.info("lease_not_taken", lease=name, error=type(exc).__name__)
        return False


async def release(db: Database, name: str, holder: str) -> None:
    """Give the lease up (a clean stop): another process may take it at once."""
    await db.writer.run(
        lambda conn: conn.execute(
            delete(LEASES).where(LEASES.c.name == name, LEASES.c.holder == holder)
        )
    )


async def holder_of(db: Database, name: str) -> str | None:
    """Who holds ``name`` now (None: nobody, or an expired lease)."""
    rows = await db.lookup("SELECT holder, expires FROM cluster_leases WHERE name = ?", name)
    if not rows or float(rows[0][1]) <= time.time():
        return None
    return str(rows[0][0])


class Leased:
    """Run ``work`` every ``every`` seconds in the one process of the cluster that holds the
    lease ``name``; the others try to take it over at the same pace.

    The lease lasts ``ttl`` (by default three periods, at least 30 s) and is renewed before
    each run, so a holder that dies is replaced within ``ttl`` plus a period.
    """

    def __init__(
        self,
        db: Database,
        name: str,
        every: float,
        work: Callable[[], Awaitable[object]],
        *,
        ttl: float | None = None,
        holder: str | None = None,
    ) -> None:
        self.db = db
        self.name = name
        self.every = every
        self.work = work
        self.ttl = ttl if ttl is not None else max(3 * every, 30.0)
        self.holder = holder or holder_name()
        self.held = False
        self.runs = 0

    async def run(self) -> None:
        try:
            while True:
                await self.once()
                await asyncio.sleep(self.every)
        finally:
            if self.held:
                self.held = False
                try:
                    await asyncio.shield(release(self.db, self.name, self.holder))
                except Exception as exc:  # stopping: the lease then simply expires
                    log.info("lease_release_failed", lease=self.name, error=type(exc).__name__)

    async def once(self) -> bool:
        """One period: renew or take the lease, then run the work if held. True if it ran."""
        held = await acquire(self.db, self.name, self.holder, self.ttl)
        if held != self.held:
            log.info("lease_taken" if held else "lease_lost", lease=self.name)
            self.held = held
        if not held:
            return False
        try:
            await self.work()
        except Exception as exc:  # one bad round must not stop the next
            log.error("leased_work_failed", lease=self.name, error=type(exc).__name__)
        self.runs += 1
        return True


# -- documents fetched for the cluster ------------------------------------------------------------


def _put_document(conn: Connection, name: str, data: bytes, now: float) -> None:
    done = conn.execute(
        update(DOCUMENTS).where(DOCUMENTS.c.name == name).values(data=data, updated=now)
    )
    if not done.rowcount:
        conn.execute(insert(DOCUMENTS).values(name=name, data=data, updated=now))


async def put_document(db: Database, name: str, data: bytes) -> None:
    now = time.time()
    await db.writer.run(lambda conn: _put_document(conn, name, data, now))


async def get_document(db: Database, name: str) -> tuple[bytes, float] | None:
    """The document and when it was stored (seconds since the epoch), or None."""
    async with db.read() as session:
        row = (
            await session.execute(
                select(DOCUMENTS.c.data, DOCUMENTS.c.updated).where(DOCUMENTS.c.name == name)
            )
        ).first()
    return None if row is None else (bytes(row[0]), float(row[1]))
