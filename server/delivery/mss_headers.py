"""The MSSanté header rules a server can check (design.md §5, issue 6 item 5):

- ``X-MSS-CODECDA`` (ECO.2.4.1) must list the ``ClinicalDocument/code/@code`` of the CDA
  documents of the attached ``IHE_XDM.zip``, in order, and is absent without a CDA;
- ``X-MSS-INS`` (ECO.2.4.2) is ``O`` or ``N`` and present exactly when there is a CDA
  (whether the INS is qualified is the sender's knowledge, so only the form is checked);
- no X-MSS-* value may carry a CR or LF once decoded (header injection).

A message that breaks them is refused at DATA with ``554 5.6.0`` and the reason.
"""

from __future__ import annotations

import email.policy
from email.parser import BytesParser

from dossier.errors import DossierError
from dossier.xdm import parse_xdm
from server.workflows.dossier import XDM_NAME

MSS_FIELDS = ("X-MSS-CODECDA", "X-MSS-INS", "X-MSS-NIL", "X-MSS-MES")


def check(raw: bytes) -> str | None:
    """The reason ``raw`` breaks the X-MSS rules, or None."""
    message = BytesParser(policy=email.policy.default).parsebytes(raw)
    for name in MSS_FIELDS:
        for value in message.get_all(name, []):
            if "\r" in str(value) or "\n" in str(value):
                return f"{name} carries a line break"
    codes = message.get_all("X-MSS-CODECDA", [])
    ins = message.get_all("X-MSS-INS", [])
    if len(codes) > 1 or len(ins) > 1:
        return "X-MSS-CODECDA and X-MSS-INS appear once at most"
    if ins and str(ins[0]).strip() not in ("O", "N"):
        return "X-MSS-INS must be O or N"
    archive = None
    for part in message.walk():
        if not part.is_multipart() and (part.get_filename() or "").upper() == XDM_NAME.upper():
            payload = part.get_payload(decode=True)
            archive = payload if isinstance(payload, bytes) else None
            break
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
    given = [c.strip() for c in str(codes[0]).split(",")]
    if given != expected:
        return f"X-MSS-CODECDA says {','.join(given)}, the attached CDA say {','.join(expected)}"
    return None
