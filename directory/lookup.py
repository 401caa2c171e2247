"""The questions mail delivery asks the directory, answered with one indexed query each.

- :func:`mailbox_active`: is there a directory entry for this address, and is it active?
- :func:`may_send_as`: may the holder of mailbox A send as address B? Yes for A itself (unless
  the directory closed it); yes for an active ORG, CAB or APP mailbox of a structure where A's
  practitioner has an active activity (a practitioner sends as their service or cabinet).
"""

from __future__ import annotations

from storage.db import Database


async def mailbox_active(db: Database, address: str) -> bool | None:
    """True or False from the directory; None when the directory has no entry for it."""
    # One row by its unique index, asked at every MAIL FROM and RCPT: read without a thread
    # hop (Database.lookup).
    rows = await db.lookup(
        "SELECT active FROM dir_mailboxes WHERE address = ?", address.strip().lower()
    )
    return None if not rows else bool(rows[0][0])


async def may_send_as(db: Database, account_address: str, sender: str) -> bool:
    account_address = account_address.strip().lower()
    sender = sender.strip().lower()
    own = await mailbox_active(db, account_address)
    if own is False:
        return False
    if sender == account_address:
        return True
    rows = await db.raw_rows(
        "SELECT 1 FROM dir_mailboxes own"
        " JOIN dir_activities a ON a.practitioner_idnat = own.practitioner_idnat AND a.active"
        " JOIN dir_mailboxes m ON m.organisation_identifier = a.organisation_identifier"
        " WHERE own.address = ? AND own.practitioner_idnat <> '' AND m.address = ?"
        " AND m.active AND m.type IN ('ORG', 'CAB', 'APP')",
        account_address,
        sender,
    )
    return bool(rows)
