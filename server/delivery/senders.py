"""Who a message says it is from (design.md §2 step 3, the *check* hooks of submission):
every ``From:`` address is a mailbox the authenticated account may send as
(:func:`directory.lookup.may_send_as`, RFC 5322 §3.6.2), read from the same header fields a
mail reader will show (:mod:`server.delivery.message`): ``550 5.7.1`` otherwise.
"""

from __future__ import annotations

from directory import lookup
from server.delivery import replies as S
from server.delivery.message import Message
from server.delivery.pipeline import Envelope, Origin, Step
from storage.accounts import AccountError, normalize_address
from storage.db import Database


class FromRules(Step):
    name = "from"
    origins = frozenset({Origin.SUBMISSION})

    def __init__(self, db: Database) -> None:
        self.db = db

    async def check(self, message: Message, envelope: Envelope) -> str | None:
        account = envelope.account
        if account is None:
            return None
        for _name, address in message.addresses("From"):
            try:
                normalized = normalize_address(address)
            except AccountError:
                return S.S550_FROM_NOT_OWNED
            if not await lookup.may_send_as(self.db, account.address, normalized):
                return S.S550_FROM_NOT_OWNED
        return None
