"""The messaging rules of patient mailboxes (design.md §4–5, MSSanté "messagerie de l'espace
santé"): a patient's address is ``<INS matricule>@patient.<domain>``; professionals may write
to it; a patient may only reply to a professional who wrote first (or to the MSSanté
``Reply-To`` that professional gave), and no longer once the professional ended the exchange
with ``X-MSS-MES: FIN`` or a message whose subject is exactly ``[FIN]``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from email.parser import BytesHeaderParser
from email.utils import getaddresses

import structlog

from server.config import Config
from storage.accounts import AccountError, normalize_address
from storage.correspondents import CorrespondentBook
from storage.mailstore import Recipient

log = structlog.get_logger("hygie.patients")
#: The INS matricule: 13 characters (sex, year, month, department incl. 2A/2B, commune,
#: order) and the 2-digit key.
_INS_LOCAL = re.compile(r"^[12378][0-9]{4}(?:[0-9]{2}|2[AB])[0-9]{6}[0-9]{2}$", re.I)

S550_PATIENT_CANNOT_START = (
    "550 5.7.1 A patient may only reply to a professional who wrote to them first"
)
S550_EXCHANGE_CLOSED = "550 5.7.1 This professional has ended the exchange (X-MSS-MES: FIN)"


def is_patient_address(address: str) -> bool:
    local, _, domain = address.lower().rpartition("@")
    return domain.startswith("patient.") and bool(_INS_LOCAL.match(local))


def ends_exchange(raw: bytes) -> bool:
    """``X-MSS-MES: FIN`` (preferred) or the subject ``[FIN]`` (MSSanté ENS MES v1.3)."""
    headers = BytesHeaderParser().parsebytes(raw)
    if str(headers.get("X-MSS-MES", "")).strip().upper() == "FIN":
        return True
    return str(headers.get("Subject", "")).strip().upper() == "[FIN]"


class PatientRules:
    def __init__(
        self, config: Config, book: CorrespondentBook, is_mssante: Callable[[str], bool]
    ) -> None:
        self.config = config
        self.book = book
        #: Whether a domain is in the MSSanté trust space (ours or a trusted operator's).
        self.is_mssante = is_mssante

    async def refusal(self, account_id: int, account_address: str, recipient: str) -> str | None:
        """The reply refusing ``recipient`` to a patient account, or None when allowed."""
        if not is_patient_address(account_address):
            return None
        allowed = await self.book.may_write_to(account_id, recipient)
        if allowed is None:
            return S550_PATIENT_CANNOT_START
        return None if allowed else S550_EXCHANGE_CLOSED

    async def record(self, raw: bytes, sender: str, recipients: Sequence[Recipient]) -> None:
        """After a delivery: professionals who wrote to patients become their correspondents."""
        patients = [r for r in recipients if is_patient_address(r.address)]
        if not patients or not sender or is_patient_address(sender):
            return
        headers = BytesHeaderParser().parsebytes(raw)
        addresses = {sender.lower()}
        for _, reply_to in getaddresses([str(h) for h in headers.get_all("Reply-To", [])]):
            try:
                address = normalize_address(reply_to)
            except AccountError:
                continue
            # Only an MSSanté address (one of ours, or of a trusted operator) and never a
            # patient's: a Reply-To cannot open a channel to the outside world.
            if not is_patient_address(address) and self.is_mssante(address.rsplit("@", 1)[1]):
                addresses.add(address)
        closed = ends_exchange(raw)
        for patient in patients:
            await self.book.record(patient.account_id, addresses, closed=closed)
