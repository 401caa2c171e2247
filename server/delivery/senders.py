"""Who a message says it is from (design.md §2 step 3, a *check* of submission; issue 17).

The pipeline parsed the header once, as IMAP reads it (:mod:`server.delivery.message`); the
From rules (:mod:`server.delivery.from_rules`) read the addresses it claims from that reading,
so what was checked is what a mail reader shows: exactly one ``From:`` (the submission
listener adds one from the account when there is none, RFC 6409 §8.1), every address of From,
Sender, Resent-From and Resent-Sender a mailbox the account may send as
(:func:`directory.lookup.may_send_as`), no display name posing as another address. A refusal
is ``550 5.7.1`` naming the field.
"""

from __future__ import annotations

import structlog

from directory import lookup
from server.delivery import from_rules
from server.delivery import replies as S
from server.delivery.message import Message
from server.delivery.pipeline import Envelope, Origin, Step
from storage.db import Database

log = structlog.get_logger("hygie.smtp")


class FromRules(Step):
    name = "from"
    origins = frozenset({Origin.SUBMISSION})

    def __init__(self, db: Database) -> None:
        self.db = db

    async def check(self, message: Message, envelope: Envelope) -> str | None:
        account = envelope.account
        if account is None:
            return None
        try:
            claims = from_rules.claims(message.header_fields)
        except from_rules.Refused as refused:
            log.info("from_refused", account=account.id, rule=refused.rule, field=refused.field)
            return refused.reply
        checked: set[str] = set()
        for claim in claims:
            if claim.address in checked:
                continue
            checked.add(claim.address)
            if not await lookup.may_send_as(self.db, account.address, claim.address):
                log.info("from_refused", account=account.id, rule="not_owned", field=claim.field)
                return S.S550_FIELD_NOT_OWNED.format(field=claim.field)
        return None
