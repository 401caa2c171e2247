"""One commit for everything a message's ``250`` acknowledges (design.md §2 step 4).

The local copies (one ciphertext, a sealed key per mailbox), the outbound queue entry for
remote recipients, the outbox rows of the after-commit work and the steps' own records are
written in one transaction, so a failure leaves none of them and a retry by the client
delivers nothing twice. Commits of concurrent messages share a transaction and an fsync
(group commit, :class:`storage.db.Writer`); a failing one is retried alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from storage import outbound, outbox
from storage.db import Database, effect_result_type
from storage.mailstore import Delivered, Delivery, write_deliveries

Record = Callable[[Connection], None]


@dataclass(frozen=True)
class Commit:
    delivery: Delivery | None = None
    queued: outbound.Queued | None = None
    outbox: outbox.OutboxEntry | None = None
    records: tuple[Record, ...] = ()
    #: Says whether this commit is still to be made (e.g. marks a reminder sent unless another
    #: process did); False: nothing is written and the commit is reported ``skipped``.
    claim: Callable[[Connection], bool] | None = None

    def blobs(self) -> list[tuple[str, bytes]]:
        sealed = self.delivery.sealed if self.delivery is not None else None
        if sealed is None and self.outbox is not None:
            raise ValueError("an outbox entry without its message's ciphertext")
        return [(sealed.blob_id, sealed.ciphertext)] if sealed is not None else []


@effect_result_type
@dataclass(frozen=True)
class Committed:
    delivered: list[Delivered]
    queue_id: int | None = None
    outbox_id: int | None = None
    skipped: bool = False


class _AlreadyDone(Exception):
    expected = True  # a claim said no: rolled back, not a failure


def write_commits(conn: Connection, batch: list[Commit]) -> list[Committed]:
    """Every commit of one group commit: the deliveries in one INSERT, then the rest."""
    deliveries = [c.delivery for c in batch if c.delivery is not None and c.delivery.recipients]
    delivered = iter(write_deliveries(conn, deliveries) if deliveries else [])
    results = []
    for c in batch:
        mine = next(delivered) if c.delivery is not None and c.delivery.recipients else []
        queue_id = outbound.write(conn, c.queued) if c.queued is not None else None
        outbox_id = outbox.write(conn, c.outbox) if c.outbox is not None else None
        for record in c.records:
            record(conn)
        results.append(Committed(list(mine), queue_id, outbox_id))
    return results


def _write_claimed(commit: Commit) -> Callable[[Connection], Committed]:
    def write(conn: Connection) -> Committed:
        assert commit.claim is not None
        if not commit.claim(conn):
            raise _AlreadyDone
        (done,) = write_commits(conn, [commit])
        return done

    return write


async def run(db: Database, commit: Commit) -> Committed:
    """Write ``commit``; durable on return."""
    if commit.claim is not None:
        try:
            claimed: Committed = await db.writer.run(_write_claimed(commit), commit.blobs())
        except _AlreadyDone:
            return Committed([], skipped=True)
        return claimed
    done: Committed = await db.writer.run_batched(write_commits, commit, commit.blobs())
    return done
