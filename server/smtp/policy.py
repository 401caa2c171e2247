"""Submission policy backed by the directory (design.md §2 step 1, issue 5 item 6).

- RCPT TO a local address: the account must exist (checked by the hook) and, if the directory
  lists the address, that entry must be active: a closed mailbox gets ``550 5.1.1``.
- MAIL FROM must be a mailbox the authenticated account may send as
  (:func:`directory.lookup.may_send_as`): ``553 5.7.1`` otherwise.
- Every ``From:`` address too: the pipeline's :class:`server.delivery.senders.FromRules`.
"""

from __future__ import annotations

from directory import lookup
from server.delivery import replies as S
from storage.accounts import AccountInfo
from storage.db import Database


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
