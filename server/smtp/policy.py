"""Submission policy backed by the directory (design.md §2 step 1, issue 5 item 6).

Kept apart from the protocol hooks in :mod:`server.smtp.submission`, which call it:

- RCPT TO a local address: the account must exist (checked by the hook) and, if the directory
  lists the address, that entry must be active: a closed mailbox gets ``550 5.1.1``.
- MAIL FROM and every ``From:`` address must be mailboxes the authenticated account may send
  as (:func:`directory.lookup.may_send_as`): ``553 5.7.1`` / ``550 5.7.1`` otherwise.
"""

from __future__ import annotations

from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses

from directory import lookup
from server.smtp import replies as S
from storage.accounts import AccountError, AccountInfo, normalize_address
from storage.db import Database

#: How much of the message is searched for the header block.
HEADER_LIMIT = 256 * 1024


class SubmissionPolicy:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def recipient(self, address: str) -> str | None:
        """The refusal for a local recipient with an account, or None to accept it."""
        if await lookup.mailbox_active(self.db, address) is False:
            return S.S550_NO_SUCH_USER
        return None

    async def sender(self, account: AccountInfo, sender: str) -> str | None:
        if not await lookup.may_send_as(self.db, account.address, sender):
            return S.S553_SENDER_NOT_OWNED
        return None

    async def from_header(self, account: AccountInfo, raw: bytes) -> str | None:
        """Every ``From:`` address must be one the account may send as (RFC 5322 §3.6.2)."""
        end = raw.find(b"\r\n\r\n", 0, HEADER_LIMIT)
        head = raw[: end + 2] if end >= 0 else raw[:HEADER_LIMIT]
        headers = BytesHeaderParser(policy=compat32).parsebytes(head)
        values = [str(v) for v in headers.get_all("From", [])]
        for _name, address in getaddresses(values):
            try:
                normalized = normalize_address(address)
            except AccountError:
                return S.S550_FROM_NOT_OWNED
            if not await lookup.may_send_as(self.db, account.address, normalized):
                return S.S550_FROM_NOT_OWNED
        return None
