"""The referencing criteria an app is reviewed against (the "Mon espace santé" referencing
covers identity, interoperability, security and ethics; each code here is one family, and the
editor gives its evidence for each in the manifest)."""

from __future__ import annotations

from typing import Final

#: code → what the editor must show.
CRITERIA: Final[dict[str, str]] = {
    "ins": "uses the INS (identité nationale de santé) to identify the patient",
    "annuaire": "uses the professional directory (Annuaire Santé / RPPS) to address professionals",
    "messagerie": "exchanges with professionals and patients through MSSanté secure messaging",
    "securite": "security: HDS hosting, authentication, encryption, incident handling",
    "ethique": "ethics: transparency, no resale of data, the patient's rights respected",
    "interoperabilite": "interoperability: CI-SIS standards (CDA, IHE XDM, iCalendar/iMIP)",
}

PASS: Final = "pass"  # noqa: S105 (a verdict, not a password)
FAIL: Final = "fail"
PENDING: Final = "pending"
VERDICTS: Final = (PASS, FAIL)
