"""The consent of referenced apps as a step of the pipeline (design.md §1, §6; issue 10):
what a message carries names the scope it needs from each patient it reaches (an
``IHE_XDM.zip``: ``dossier-write``; a ``text/calendar`` part: ``agenda-write``; anything
else: ``messages``), and an app's APP mailbox without that consent in force is refused for the
whole message with ``550 5.7.1`` and the reason (:class:`catalogue.access.AppGate`).
"""

from __future__ import annotations

from agenda.imip import CALENDAR_TYPE
from catalogue.access import AppGate
from catalogue.scopes import AGENDA_WRITE, DOSSIER_WRITE, MESSAGES
from dossier.xdm import XDM_NAME
from server.delivery.message import Message
from server.delivery.pipeline import Envelope, Origin, Step


def scope_of(message: Message) -> str:
    """The scope a message to a patient needs, by what it carries."""
    wanted = XDM_NAME.upper()
    if any((leaf.filename or "").upper() == wanted for leaf in message.leaves()):
        return DOSSIER_WRITE
    if message.first_of_type(CALENDAR_TYPE) is not None:
        return AGENDA_WRITE
    return MESSAGES


class ConsentStep(Step):
    name = "consent"
    origins = frozenset({Origin.SUBMISSION})

    def __init__(self, gate: AppGate) -> None:
        self.gate = gate

    async def check(self, message: Message, envelope: Envelope) -> str | None:
        if envelope.account is None:
            return None
        return await self.gate.data(
            envelope.account.address, scope_of(message), envelope.local, envelope.peer
        )
