"""Submission policy backed by the directory (design.md §2 step 1, issue 5 item 6, issue 17).

Kept apart from the protocol hooks in :mod:`server.smtp.submission`, which call it:

- RCPT TO a local address: the account must exist (checked by the hook) and, if the directory
  lists the address, that entry must be active: a closed mailbox gets ``550 5.1.1``.
- MAIL FROM must be a mailbox the authenticated account may send as
  (:func:`directory.lookup.may_send_as`): ``553 5.7.1`` otherwise.
- The header section is read once, by IMAP's reader (:func:`read_header`), and the From rules
  (:mod:`server.smtp.from_rules`) see that reading: exactly one ``From:`` (added from the
  account's address when there is none, RFC 6409 §8.1), every address of From, Sender,
  Resent-From and Resent-Sender one the account may send as, no display name posing as another
  address: ``550 5.7.1`` naming the field otherwise.
"""

from __future__ import annotations

import structlog

from directory import lookup
from server.imap.proto.message import read_header
from server.smtp import from_rules
from server.smtp import replies as S
from storage.accounts import AccountInfo
from storage.db import Database

log = structlog.get_logger("hygie.smtp")


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

    async def header(self, account: AccountInfo, raw: bytes) -> tuple[bytes, str | None]:
        """The message as it will be stored (with ``From:`` added if it had none) and the
        refusal, or None to accept it. The check reads the bytes that are stored."""
        header = read_header(raw)
        if from_rules.needs_from(header):
            raw = from_rules.with_from(raw, account.address)
            header = read_header(raw)
        try:
            claims = from_rules.claims(header)
        except from_rules.Refused as refused:
            log.info("from_refused", account=account.id, rule=refused.rule, field=refused.field)
            return raw, refused.reply
        checked: set[str] = set()
        for claim in claims:
            if claim.address in checked:
                continue
            checked.add(claim.address)
            if not await lookup.may_send_as(self.db, account.address, claim.address):
                log.info("from_refused", account=account.id, rule="not_owned", field=claim.field)
                return raw, S.S550_FIELD_NOT_OWNED.format(field=claim.field)
        return raw, None
