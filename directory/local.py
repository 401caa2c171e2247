"""This operator's own mailboxes in the directory (``source = 'local'``).

The national extract lists published mailboxes; an operator also knows its own, including the
liste-rouge ones (never published) and those it has closed. ``hygie directory mailbox`` and
``hygie init --demo`` write them here; a national re-import never deactivates them.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Table, select, update
from sqlalchemy.engine import Connection

from directory.models import DirectoryMailbox
from directory.search import refresh_document
from directory.text import city_token, mailbox_type_token
from storage.db import Database

TYPES = ("PER", "ORG", "APP", "CAB")
MAILBOXES: Table = DirectoryMailbox.__table__  # type: ignore[assignment]


class DirectoryError(ValueError):
    pass


async def set_mailbox(
    db: Database,
    address: str,
    kind: str,
    *,
    practitioner_idnat: str = "",
    organisation_identifier: str = "",
    service: str = "",
    city: str = "",
    liste_rouge: bool = False,
    preferred: bool = False,
    active: bool = True,
) -> bool:
    """Create or update the mailbox ``address``; True if it was created.

    The type of an existing mailbox cannot change (TRE_R257: address and type are fixed at
    creation).
    """
    kind = kind.upper()
    if kind not in TYPES:
        raise DirectoryError(f"mailbox type must be one of {', '.join(TYPES)}")
    address = address.strip().lower()
    if "@" not in address:
        raise DirectoryError(f"not a mail address: {address!r}")
    table = MAILBOXES
    search_doc = " ".join(
        p for p in (city_token(city) if city else "", mailbox_type_token(kind)) if p
    )
    values = {
        "practitioner_idnat": practitioner_idnat,
        "organisation_identifier": organisation_identifier,
        "service": service,
        "liste_rouge": liste_rouge,
        "preferred": preferred,
        "active": active,
        "search": search_doc,
        "updated_at": dt.datetime.now(dt.UTC),
    }

    def write(conn: Connection) -> bool:
        row = conn.execute(
            select(table.c.type, table.c.practitioner_idnat, table.c.organisation_identifier).where(
                table.c.address == address
            )
        ).first()
        if row is None:
            conn.execute(
                table.insert().values(
                    address=address, type=kind, source="local", digitization=False, **values
                )
            )
        elif row[0] != kind:
            raise DirectoryError(f"{address} is a {row[0]} mailbox: the type cannot change")
        else:
            conn.execute(update(table).where(table.c.address == address).values(**values))
        # The owners' search documents list their mailboxes' types and towns.
        owners = {(practitioner_idnat, organisation_identifier)}
        if row is not None:
            owners.add((row[1], row[2]))
        for idnat, structure in owners:
            if idnat:
                refresh_document(conn, "P", idnat)
            elif structure:
                refresh_document(conn, "O", structure)
        return row is None

    created: bool = await db.writer.run(write)
    return created
