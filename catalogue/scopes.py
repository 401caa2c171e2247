"""What a patient may consent to (issue 10 item 4). Each scope opens one path, and only for
that patient: SMTP to the patient's address, the dossier workflow, the agenda workflow, and
the dossier read API."""

from __future__ import annotations

from typing import Final

MESSAGES: Final = "messages"  # write to the patient (ordinary messages)
DOSSIER_READ: Final = "dossier-read"  # read the patient's dossier (HTTPS /dossier/)
DOSSIER_WRITE: Final = "dossier-write"  # file IHE XDM documents in the patient's dossier
AGENDA_WRITE: Final = "agenda-write"  # send iMIP (text/calendar) to the patient's agenda

SCOPES: Final = (MESSAGES, DOSSIER_READ, DOSSIER_WRITE, AGENDA_WRITE)
#: The scopes that travel by mail (an app may reach the patient's address with any of them).
MAIL_SCOPES: Final = frozenset({MESSAGES, DOSSIER_WRITE, AGENDA_WRITE})

LABELS: Final[dict[str, str]] = {
    MESSAGES: "vous écrire",
    DOSSIER_READ: "lire votre dossier",
    DOSSIER_WRITE: "déposer des documents dans votre dossier",
    AGENDA_WRITE: "proposer des rendez-vous dans votre agenda",
}
