"""Usage events (issue 11 item 4): one small row per countable act, for the monthly report.

A row says what happened (``kind``: a message ``sent`` or ``received``, documents ``filed`` in a
dossier, an integration ``mdn`` sent back with its code), in which month (Europe/Paris), for
which structure (``FINESS:…``/``SIRET:…`` from the directory), software (the ``X-MSS-NIL``
value) and mailbox type (PER, ORG, APP, CAB, PAT). A ``patient`` row says that a message or
a filing from that structure reached a patient; its ``reach`` is a keyed digest of the
patient's mailbox that only compares within one month (to count distinct patients), empty on
every other row. No row holds an address, a subject, an INS or anything about the content.

Rows go through the group-commit writer without the caller waiting: they join whatever
transaction the writer commits next (a delivery's, usually), so counting costs no commit of
its own. A ``kill -9`` can lose the events of the last milliseconds, never count one twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import (
    BigInteger,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, mapped_column

from storage.db import Database
from storage.models import Base

log = structlog.get_logger("hygie.usage")
PARIS = ZoneInfo("Europe/Paris")
_ID = BigInteger().with_variant(Integer, "sqlite")
KINDS = ("sent", "received", "filed", "mdn", "patient")


class UsageRow(Base):
    __tablename__ = "usage_events"
    __table_args__ = (Index("ix_usage_events_month", "month", "kind"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    month: Mapped[str] = mapped_column(String(7))  # YYYY-MM, Europe/Paris
    kind: Mapped[str] = mapped_column(String(16))
    structure: Mapped[str] = mapped_column(String(40), default="")
    software: Mapped[str] = mapped_column(String(100), default="")
    mailbox_type: Mapped[str] = mapped_column(String(3), default="")
    code: Mapped[int] = mapped_column(Integer, default=0)  # mdn: 0 processed, else 900-906
    count: Mapped[int] = mapped_column(Integer, default=1)
    reach: Mapped[str] = mapped_column(String(32), default="")


TABLE: Table = UsageRow.__table__  # type: ignore[assignment]


def month_of(when: dt.datetime) -> str:
    return when.astimezone(PARIS).strftime("%Y-%m")


@dataclass(frozen=True)
class UsageEvent:
    kind: str
    structure: str = ""
    software: str = ""
    mailbox_type: str = ""
    code: int = 0
    count: int = 1
    reach: str = ""

    def row(self, at: dt.datetime) -> dict[str, object]:
        return {
            "at": at, "month": month_of(at), "kind": self.kind, "structure": self.structure,
            "software": self.software, "mailbox_type": self.mailbox_type, "code": self.code,
            "count": self.count, "reach": self.reach,
        }  # fmt: skip


def _insert(conn: Connection, batch: list[list[dict[str, object]]]) -> list[None]:
    rows = [r for rows in batch for r in rows]
    if rows:
        conn.execute(insert(TABLE), rows)
    return [None] * len(batch)


class UsageLog:
    """Hands events to the writer without waiting for their commit."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._pending: set[asyncio.Task[None]] = set()

    def record(self, events: Iterable[UsageEvent], at: dt.datetime | None = None) -> None:
        when = at or dt.datetime.now(dt.UTC)
        rows = [e.row(when) for e in events]
        if not rows:
            return
        task = asyncio.get_running_loop().create_task(self._write(rows))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _write(self, rows: list[dict[str, object]]) -> None:
        try:
            await self.db.writer.run_batched(_insert, rows)
        except Exception as exc:  # statistics: never worth failing anything else
            log.warning("usage_write_failed", error=type(exc).__name__)

    async def flush(self) -> None:
        """Wait for what was recorded so far (shutdown)."""
        if self._pending:
            with contextlib.suppress(Exception):
                await asyncio.gather(*list(self._pending))


@dataclass(frozen=True)
class Tally:
    """Sums of one month, by (kind, group value, code)."""

    sums: dict[tuple[str, str, int], int]
    reached: dict[str, int]  # group value → distinct patients


GROUPS = {"structure": TABLE.c.structure, "software": TABLE.c.software,
          "mailbox-type": TABLE.c.mailbox_type}  # fmt: skip


async def tally(db: Database, month: str, by: str | None) -> Tally:
    """The month's counts, grouped by ``by`` (None: one group, ``""``)."""
    column = GROUPS[by] if by is not None else None
    group = column if column is not None else literal("")
    sums_q = select(TABLE.c.kind, group.label("g"), TABLE.c.code, func.sum(TABLE.c.count)).where(
        TABLE.c.month == month
    )
    reach_q = select(group.label("g"), func.count(func.distinct(TABLE.c.reach))).where(
        TABLE.c.month == month, TABLE.c.kind == "patient"
    )
    if column is not None:
        sums_q = sums_q.group_by(TABLE.c.kind, column, TABLE.c.code)
        reach_q = reach_q.group_by(column)
    else:
        sums_q = sums_q.group_by(TABLE.c.kind, TABLE.c.code)
    async with db.read() as session:
        sums = {
            (str(k), str(g or ""), int(c)): int(n or 0)
            for k, g, c, n in await session.execute(sums_q)
        }
        reached = {str(g or ""): int(n) for g, n in await session.execute(reach_q) if n}
    return Tally(sums, reached)
