"""The audit log (design.md §4): an append-only table of who did what, when and from where.

Entries are written through the group-commit writer, so an entry is durable when the call
returns. Callers pass identifiers (account ids, certificate serials, addresses of the acting
account), never a secret, a token, a message body or a patient's INS in ``detail``.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, insert, select
from sqlalchemy.engine import Connection

from storage.db import Database
from storage.models import Account, AuditEntry

AUDIT: Table = AuditEntry.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class AuditRecord:
    at: dt.datetime
    actor: str
    action: str
    target: str
    peer: str | None
    detail: dict[str, Any]


def write_entry(
    conn: Connection,
    actor: str,
    action: str,
    target: str,
    *,
    peer: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one entry inside the caller's write transaction."""
    conn.execute(
        insert(AUDIT).values(
            at=dt.datetime.now(dt.UTC),
            actor=actor,
            action=action,
            target=target,
            peer=peer,
            detail=json.dumps(detail or {}, sort_keys=True, ensure_ascii=False),
        )
    )


async def record(
    db: Database,
    actor: str,
    action: str,
    target: str,
    *,
    peer: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one entry, durably."""

    def write(conn: Connection) -> None:
        write_entry(conn, actor, action, target, peer=peer, detail=detail)

    await db.writer.run(write)


async def entries(db: Database, *, action_prefix: str = "", limit: int = 100) -> list[AuditRecord]:
    """The newest entries first, optionally only actions starting with ``action_prefix``."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if action_prefix:
        query = query.where(AuditEntry.action.startswith(action_prefix))
    return await _records(db, query)


async def about(
    db: Database, targets: list[str], *, action_prefix: str = "", limit: int = 200
) -> list[AuditRecord]:
    """The newest entries first whose target is one of ``targets`` (a patient's account and
    documents: the access history of a dossier)."""
    if not targets:
        return []
    query = select(AuditEntry).where(AuditEntry.target.in_(targets))
    if action_prefix:
        query = query.where(AuditEntry.action.startswith(action_prefix))
    return await _records(db, query.order_by(AuditEntry.id.desc()).limit(limit))


async def addresses(db: Database, account_ids: set[int]) -> dict[int, str]:
    """The address of each account id (accounts since closed are left out)."""
    if not account_ids:
        return {}
    query = select(Account.id, Account.address).where(Account.id.in_(sorted(account_ids)))
    async with db.read() as session:
        return {ident: address for ident, address in (await session.execute(query)).all()}


async def _records(db: Database, query: Any) -> list[AuditRecord]:
    async with db.read() as session:
        rows = list(await session.scalars(query))
    return [
        AuditRecord(
            row.at if row.at.tzinfo else row.at.replace(tzinfo=dt.UTC),
            row.actor,
            row.action,
            row.target,
            row.peer,
            json.loads(row.detail),
        )
        for row in rows
    ]
