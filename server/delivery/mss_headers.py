"""The MSSanté header rules a server can check (design.md §5, issue 6 item 5):

- ``X-MSS-CODECDA`` (ECO.2.4.1) must list the ``ClinicalDocument/code/@code`` of the CDA
  documents of the attached ``IHE_XDM.zip``, in order, and is absent without a CDA;
- ``X-MSS-INS`` (ECO.2.4.2) is ``O`` or ``N`` and present exactly when there is a CDA
  (whether the INS is qualified is the sender's knowledge, so only the form is checked);
- no X-MSS-* value may carry a CR or LF once decoded (header injection).

A message that breaks them is refused at DATA with ``554 5.6.0`` and the reason.
"""

from __future__ import annotations

import asyncio

from dossier.errors import DossierError
from dossier.xdm import XDM_NAME, parse_xdm
from mailformats.mime import decode_words
from server.delivery.message import Message
from server.delivery.pipeline import Envelope, Origin, Step

MSS_FIELDS = ("X-MSS-CODECDA", "X-MSS-INS", "X-MSS-NIL", "X-MSS-MES")


def check(message: Message) -> str | None:
    """The reason ``message`` breaks the X-MSS rules, or None (CPU: the XDM is unzipped)."""
    for name in MSS_FIELDS:
        for value in message.headers(name):
            decoded = decode_words(value)
            if "\r" in decoded or "\n" in decoded:
                return f"{name} carries a line break"
    codes = message.headers("X-MSS-CODECDA")
    ins = message.headers("X-MSS-INS")
    if len(codes) > 1 or len(ins) > 1:
        return "X-MSS-CODECDA and X-MSS-INS appear once at most"
    if ins and ins[0].strip() not in ("O", "N"):
        return "X-MSS-INS must be O or N"
    archive = message.attachment(XDM_NAME)
    if archive is None:
        if codes or ins:
            return "X-MSS-CODECDA/X-MSS-INS without an IHE_XDM.zip"
        return None
    try:
        package = parse_xdm(archive)
    except DossierError:
        return None  # the archive's own faults are the receiver's to report (MDN 90x)
    expected = [d.cda.code.code for d in package.documents if d.cda is not None]
    if not expected:
        return "X-MSS-CODECDA/X-MSS-INS without a CDA document" if codes or ins else None
    if not codes or not ins:
        return "a CDA is attached: X-MSS-CODECDA and X-MSS-INS are required (ECO.2.4.1-2)"
    given = [c.strip() for c in codes[0].split(",")]
    if given != expected:
        return f"X-MSS-CODECDA says {','.join(given)}, the attached CDA say {','.join(expected)}"
    return None


class MssHeaderRules(Step):
    """The X-MSS rules on what our accounts submit (a relayed message is its operator's)."""

    name = "mss-headers"
    origins = frozenset({Origin.SUBMISSION})

    async def check(self, message: Message, envelope: Envelope) -> str | None:
        if not any(k.startswith("x-mss-") for k, _ in message.fields) and not any(
            (leaf.filename or "").upper() == XDM_NAME.upper() for leaf in message.leaves()
        ):
            return None
        problem = await asyncio.to_thread(check, message)
        return f"554 5.6.0 {problem}" if problem is not None else None
