"""Patients' correspondents (design.md §4, MSSanté "messagerie de l'espace santé"): a patient
may reply to a professional who wrote first, until that professional ends the exchange.

Addresses are stored as HMAC-SHA256 under a key derived from the master key: enough to answer
"may this patient write to X?", useless to whoever reads the database.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Callable, Iterable

from sqlalchemy import Table, select, update
from sqlalchemy.engine import Connection

from storage.crypto import MasterKey
from storage.db import Database
from storage.models import PatientCorrespondent

TABLE: Table = PatientCorrespondent.__table__  # type: ignore[assignment]


class CorrespondentBook:
    def __init__(self, db: Database, master: MasterKey) -> None:
        self.db = db
        self._key = master.derive_secret("patient-correspondents")

    def _mac(self, address: str) -> bytes:
        return hmac.new(self._key, address.strip().lower().encode(), hashlib.sha256).digest()

    async def record(self, account_id: int, addresses: Iterable[str], *, closed: bool) -> None:
        """``addresses`` wrote to the patient; ``closed`` if that message ended the exchange."""
        await self.db.writer.run(self.recorder(account_id, addresses, closed=closed))

    def recorder(
        self, account_id: int, addresses: Iterable[str], *, closed: bool
    ) -> Callable[[Connection], None]:
        """The same write, to run in the caller's transaction (the message's commit)."""
        macs = {self._mac(a) for a in addresses if a}
        now = dt.datetime.now(dt.UTC)

        def write(conn: Connection) -> None:
            for mac in macs:
                done = conn.execute(
                    update(TABLE)
                    .where(TABLE.c.account_id == account_id, TABLE.c.correspondent == mac)
                    .values(closed=closed, updated_at=now)
                )
                if not done.rowcount:
                    conn.execute(
                        TABLE.insert().values(
                            account_id=account_id,
                            correspondent=mac,
                            closed=closed,
                            updated_at=now,
                        )
                    )

        return write

    async def may_write_to(self, account_id: int, address: str) -> bool | None:
        """True: an open exchange; False: closed by the professional; None: never wrote."""
        async with self.db.read() as session:
            closed = await session.scalar(
                select(PatientCorrespondent.closed).where(
                    PatientCorrespondent.account_id == account_id,
                    PatientCorrespondent.correspondent == self._mac(address),
                )
            )
        return None if closed is None else not closed
