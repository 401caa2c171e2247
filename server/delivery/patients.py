"""The messaging rules of patient mailboxes (design.md §4–5, MSSanté "messagerie de l'espace
santé"): a patient's address is ``<INS matricule>@patient.<domain>`` (:mod:`directory.ins`);
professionals may write to it; a patient may only reply to a professional who wrote first
(only to the MSSanté ``Reply-To`` when that professional gave one), and no longer once the
professional ended the exchange with ``X-MSS-MES: FIN`` or a message whose subject is
exactly ``[FIN]``.

The refusal is the submission listener's, at ``RCPT`` (:meth:`PatientRules.refusal`); who may
be answered is recorded by the pipeline's route hook, in the commit of the professional's
message (:meth:`PatientRules.route`).
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from directory.ins import is_patient_address
from server.config import Config
from server.delivery.message import Message
from server.delivery.pipeline import FROM_OUTSIDE, Envelope, Plan, Step
from storage.accounts import AccountError, normalize_address
from storage.correspondents import CorrespondentBook

log = structlog.get_logger("hygie.patients")

S550_PATIENT_CANNOT_START = (
    "550 5.7.1 A patient may only reply to a professional who wrote to them first"
)
S552_TOO_BIG_FOR_A_PATIENT = (
    "552 5.3.4 Message too big for a patient's mailbox: {limit} bytes at most (Mon espace santé)"
)
S550_EXCHANGE_CLOSED = "550 5.7.1 This professional has ended the exchange (X-MSS-MES: FIN)"


def ends_exchange(message: Message) -> bool:
    """``X-MSS-MES: FIN`` (preferred) or the subject ``[FIN]`` (MSSanté ENS MES v1.3)."""
    if (message.header("X-MSS-MES") or "").strip().upper() == "FIN":
        return True
    return message.text("Subject").strip().upper() == "[FIN]"


class PatientRules(Step):
    name = "patients"
    origins = FROM_OUTSIDE

    def __init__(
        self, config: Config, book: CorrespondentBook, is_mssante: Callable[[str], bool]
    ) -> None:
        self.config = config
        self.book = book
        #: Whether a domain is in the MSSanté trust space (ours or a trusted operator's).
        self.is_mssante = is_mssante

    async def check(self, message: Message, envelope: Envelope) -> str | None:
        """Mon espace santé takes messages of 25 MB at most (MSSanté test case 11), whatever
        this operator's general limit (``[smtp] max_message_size``)."""
        limit = self.config.smtp.patient_max_message_size
        if message.size <= limit:
            return None
        recipients = [r.address for r in envelope.local] + [r.address for r in envelope.remote]
        if not any(is_patient_address(a) for a in recipients):
            return None
        return S552_TOO_BIG_FOR_A_PATIENT.format(limit=limit)

    async def refusal(self, account_id: int, account_address: str, recipient: str) -> str | None:
        """The reply refusing ``recipient`` to a patient account, or None when allowed."""
        if not is_patient_address(account_address):
            return None
        allowed = await self.book.may_write_to(account_id, recipient)
        if allowed is None:
            return S550_PATIENT_CANNOT_START
        return None if allowed else S550_EXCHANGE_CLOSED

    async def route(self, message: Message, envelope: Envelope, plan: Plan) -> None:
        """Professionals who write to patients become their correspondents, in the commit:
        those the message reaches (a patient kept from an INVISIBLE_PATIENT archive by the
        dossier step has nothing to reply to)."""
        sender = envelope.sender
        patients = [r for r in plan.inbox if is_patient_address(r.address)]
        if not patients or not sender or is_patient_address(sender):
            return
        reply_to_addresses: set[str] = set()
        for _, reply_to in message.addresses("Reply-To"):
            try:
                address = normalize_address(reply_to)
            except AccountError:
                continue
            # Only an MSSanté address (one of ours, or of a trusted operator) and never a
            # patient's: a Reply-To cannot open a channel to the outside world.
            if not is_patient_address(address) and self.is_mssante(address.rsplit("@", 1)[1]):
                reply_to_addresses.add(address)
        # ENS MES: the patient's reply goes to the MSSanté Reply-To, which becomes an allowed
        # contact; the original sender does not (MSSanté test case 13). Without one, the
        # sender is the contact. Ending the exchange closes the sender too.
        addresses = reply_to_addresses or {sender.lower()}
        closed = ends_exchange(message)
        if closed:
            addresses = addresses | {sender.lower()}
        for patient in patients:
            plan.records.append(self.book.recorder(patient.account_id, addresses, closed=closed))
