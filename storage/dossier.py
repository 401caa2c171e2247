"""The patient dossier's index (design.md §6): one row per filed document, pointing at its
message in the patient's ``Dossier`` folder; the CDA kept encrypted for version checks and for
the professionals who may read it.

A document the patient may not see (INVISIBLE_PATIENT, ``dossier.visibility``) has no message
in the patient's mailbox: its row points at no folder (:data:`NOT_IN_MAILBOX`)."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

from sqlalchemy import Table, insert, select, update
from sqlalchemy.engine import Connection

from storage.crypto import ContentKey, MasterKey
from storage.db import Database
from storage.models import DossierBlock, DossierDocument

TABLE: Table = DossierDocument.__table__  # type: ignore[assignment]
_CONTEXT = b"dossier:"
#: ``folder_id`` and ``uid`` of a document kept out of the patient's mailbox (folder and
#: message ids start at 1 in both databases).
NOT_IN_MAILBOX = 0


@dataclass(frozen=True)
class FiledDocument:
    id: int
    account_id: int
    unique_id: str
    set_id: str | None
    version: int | None
    restrictions: frozenset[str]
    folder_id: int
    uid: int
    replaced_by: int | None
    filed_at: dt.datetime
    hidden: bool = False

    @property
    def in_mailbox(self) -> bool:
        """Whether a message of the patient's ``Dossier`` folder holds this document."""
        return self.folder_id != NOT_IN_MAILBOX


def _filed(row: DossierDocument) -> FiledDocument:
    return FiledDocument(
        row.id, row.account_id, row.unique_id, row.set_id, row.version,
        frozenset(r for r in row.restrictions.split(",") if r), row.folder_id, row.uid,
        row.replaced_by, row.filed_at, bool(row.hidden),
    )  # fmt: skip


class DossierIndex:
    def __init__(self, db: Database, master: MasterKey) -> None:
        self.db = db
        self.master = master

    async def add(
        self,
        *,
        account_id: int,
        unique_id: str,
        set_id: str | None,
        version: int | None,
        restrictions: frozenset[str],
        folder_id: int,
        uid: int,
        cda: bytes,
        replaces: int | None = None,
    ) -> int:
        """Index a filed document (and mark the one it replaces); durable on return."""
        key = ContentKey.generate()
        ref = os.urandom(16)
        body = key.encrypt_body(cda)
        wrapped = self.master.wrap(key.key, _CONTEXT + ref)

        def write(conn: Connection) -> int:
            new_id = int(
                conn.execute(
                    insert(TABLE)
                    .values(
                        account_id=account_id,
                        unique_id=unique_id,
                        set_id=set_id,
                        version=version,
                        restrictions=",".join(sorted(restrictions)),
                        folder_id=folder_id,
                        uid=uid,
                        replaced_by=None,
                        filed_at=dt.datetime.now(dt.UTC),
                        key_ref=ref,
                        wrapped_key=wrapped,
                        cda=body,
                    )
                    .returning(TABLE.c.id)
                ).scalar_one()
            )
            if replaces is not None:
                conn.execute(update(TABLE).where(TABLE.c.id == replaces).values(replaced_by=new_id))
            return new_id

        result: int = await self.db.writer.run(write)
        return result

    async def find(self, account_id: int, unique_id: str) -> FiledDocument | None:
        async with self.db.read() as session:
            row = await session.scalar(
                select(DossierDocument).where(
                    DossierDocument.account_id == account_id,
                    DossierDocument.unique_id == unique_id,
                )
            )
        return _filed(row) if row is not None else None

    async def cda(self, document_id: int) -> bytes:
        async with self.db.read() as session:
            row = await session.get(DossierDocument, document_id)
            if row is None:
                raise KeyError(document_id)
            key = ContentKey(self.master.unwrap(row.wrapped_key, _CONTEXT + row.key_ref))
            return key.decrypt_body(row.cda)

    async def documents(self, account_id: int) -> list[FiledDocument]:
        async with self.db.read() as session:
            rows = await session.scalars(
                select(DossierDocument)
                .where(DossierDocument.account_id == account_id)
                .order_by(DossierDocument.id)
            )
            return [_filed(r) for r in rows]

    async def documents_by_id(self, ids: list[int]) -> list[FiledDocument]:
        async with self.db.read() as session:
            rows = await session.scalars(select(DossierDocument).where(DossierDocument.id.in_(ids)))
            return [_filed(r) for r in rows]

    async def in_mailbox_with(self, flag: str) -> list[FiledDocument]:
        """Every document carrying ``flag`` that still has a message in a patient's mailbox
        (documents filed before a rule kept them out)."""
        async with self.db.read() as session:
            rows = await session.scalars(
                select(DossierDocument).where(
                    DossierDocument.restrictions.contains(flag),
                    DossierDocument.folder_id != NOT_IN_MAILBOX,
                )
            )
            return [d for d in (_filed(r) for r in rows) if flag in d.restrictions]

    async def leave_mailbox(self, document_id: int) -> None:
        """Record that the document no longer has a message in the patient's mailbox."""

        def write(conn: Connection) -> None:
            conn.execute(
                update(TABLE)
                .where(TABLE.c.id == document_id)
                .values(folder_id=NOT_IN_MAILBOX, uid=NOT_IN_MAILBOX)
            )

        await self.db.writer.run(write)

    async def set_hidden(self, account_id: int, document_id: int, hidden: bool) -> bool:
        """The patient hides (or shows again) a document from professionals."""

        def write(conn: Connection) -> bool:
            done = conn.execute(
                update(TABLE)
                .where(TABLE.c.id == document_id, TABLE.c.account_id == account_id)
                .values(hidden=hidden)
            )
            return bool(done.rowcount)

        result: bool = await self.db.writer.run(write)
        return result

    async def set_blocked(self, account_id: int, idnat: str, blocked: bool) -> None:
        blocks: Table = DossierBlock.__table__  # type: ignore[assignment]

        def write(conn: Connection) -> None:
            conn.execute(
                blocks.delete().where(blocks.c.account_id == account_id, blocks.c.idnat == idnat)
            )
            if blocked:
                conn.execute(insert(blocks).values(account_id=account_id, idnat=idnat))

        await self.db.writer.run(write)

    async def blocked(self, account_id: int) -> set[str]:
        async with self.db.read() as session:
            rows = await session.scalars(
                select(DossierBlock.idnat).where(DossierBlock.account_id == account_id)
            )
            return set(rows)
