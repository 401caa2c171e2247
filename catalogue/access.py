"""Consent enforcement for apps (design.md §1, §6; issue 10 item 5): wherever a mailbox
reaches a patient, ask whether it is an app's APP mailbox, and if so whether the patient's
consent allows it now.

A mailbox is an app's when the catalogue lists it as an app's APP mailbox, or when the
directory records it as an ``APP`` mailbox (TRE_R257) without any catalogue entry (then
nothing is allowed: no consent is possible). The paths, each with its scope:

- SMTP submission: ``RCPT`` to a patient needs a consent in force with any scope that travels
  by mail; at ``DATA`` the message's content names the scope (an ``IHE_XDM.zip``:
  ``dossier-write``; a ``text/calendar`` part: ``agenda-write``; anything else: ``messages``).
  A refusal is ``550 5.7.1`` with the reason (:data:`S550_PREFIX`), for the whole message;
- the dossier workflow (``dmp@``: the patient is named inside the archive): ``dossier-write``,
  else the MDN/error mail 901 (author not allowed);
- the agenda workflow: ``agenda-write`` for each patient whose agenda would change;
- the dossier read API (``/dossier/patient/…``, ``Patient-INS`` header): ``dossier-read``;
  the app sees what the patient sees (`dossier.visibility.patient_view`: every current document but
  INVISIBLE_PATIENT ones), else 403; an app the patient never connected gets the 404 of an
  unknown INS (no patient-existence oracle).

A suspended or withdrawn app, or one whose certificate is on the CRL, is refused on every
path at once (the check reads the app's status and the CRL at each attempt). Every refusal is
in the audit log (``catalogue.refused``: the app, the patient's account id, the scope, the
reason) and in the patient's "recent access" list; so is every allowed access.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

import structlog

from catalogue.consent import NOT_REFERENCED, Consents, Refusal
from catalogue.registry import App
from catalogue.scopes import AGENDA_WRITE, DOSSIER_READ, DOSSIER_WRITE, MAIL_SCOPES
from directory.ins import is_patient_address
from pki.errors import PkiError
from pki.registry import IssuedRecord, Registry
from pki.verify import CertificateRejected, ClientCertificateChecker
from storage import audit
from storage.mailstore import Recipient

log = structlog.get_logger("hygie.apps")
S550_PREFIX: Final = "550 5.7.1 "


class AppGate:
    def __init__(self, consents: Consents) -> None:
        self.consents = consents
        self.db = consents.db

    async def app_of(self, address: str) -> App | Refusal | None:
        """The app acting through ``address``; NOT_REFERENCED for a directory APP mailbox
        the catalogue does not list; None for any other mailbox."""
        address = address.lower()
        rows = await self.db.lookup("SELECT id FROM cat_apps WHERE mailbox = ?", address)
        if rows:
            return await self.consents.catalogue.find(int(rows[0][0]))
        rows = await self.db.lookup(
            "SELECT 1 FROM dir_mailboxes WHERE address = ? AND type = 'APP'", address
        )
        return NOT_REFERENCED if rows else None

    async def _permit(
        self, sender: str, patient_account: int, scopes: frozenset[str], *,
        record_allowed: bool = True, peer: str | None = None,
    ) -> Refusal | None:  # fmt: skip
        app = await self.app_of(sender)
        if app is None:
            return None
        if isinstance(app, Refusal):
            scope = next(iter(scopes)) if len(scopes) == 1 else "mail"
            await audit.record(
                self.db, f"mailbox:{sender}", "catalogue.refused", f"account:{patient_account}",
                peer=peer, detail={"scope": scope, "reason": app.reason},
            )  # fmt: skip
            log.info("app_refused", reason=app.reason)
            return app
        refusal = await self.consents.permit(
            app, patient_account, scopes, actor=f"app:{app.id}", peer=peer,
            record_allowed=record_allowed,
        )  # fmt: skip
        if refusal is not None:
            log.info("app_refused", app=app.id, reason=refusal.reason)
        return refusal

    # -- SMTP submission ---------------------------------------------------------------------

    async def rcpt(self, sender: str, recipient: Recipient, peer: str) -> str | None:
        """The reply refusing RCPT to a patient, or None."""
        if not is_patient_address(recipient.address):
            return None
        refusal = await self._permit(
            sender, recipient.account_id, MAIL_SCOPES, record_allowed=False, peer=peer
        )
        return S550_PREFIX + refusal.text if refusal is not None else None

    async def data(
        self, sender: str, scope_name: str, recipients: Sequence[Recipient], peer: str
    ) -> str | None:
        """The reply refusing the whole message, which needs ``scope_name`` (what it carries
        names it), or None (then every access is recorded)."""
        patients = [r for r in recipients if is_patient_address(r.address)]
        if not patients or await self.app_of(sender) is None:
            return None
        scope = frozenset({scope_name})
        for patient in patients:
            refusal = await self._permit(
                sender, patient.account_id, scope, record_allowed=False, peer=peer
            )
            if refusal is not None:
                return S550_PREFIX + refusal.text
        app = await self.app_of(sender)
        if isinstance(app, App):
            for patient in patients:
                await self.consents.record(
                    app, patient.account_id, next(iter(scope)), None, actor=f"app:{app.id}",
                    peer=peer,
                )  # fmt: skip
        return None

    # -- workflows ---------------------------------------------------------------------------

    async def filing(self, sender: str, patient: Recipient, *, addressed: bool) -> Refusal | None:
        """May ``sender`` file in this patient's dossier? (``addressed``: the patient was a
        recipient, so submission already recorded the access.)"""
        return await self._permit(
            sender, patient.account_id, frozenset({DOSSIER_WRITE}), record_allowed=not addressed
        )

    async def agenda(self, sender: str, patient: Recipient) -> Refusal | None:
        if not is_patient_address(patient.address):
            return None
        return await self._permit(
            sender, patient.account_id, frozenset({AGENDA_WRITE}), record_allowed=False
        )

    async def dossier_reader(self, reader: str, patient_account: int, peer: str) -> Refusal | None:
        """May the app acting through ``reader`` read this patient's dossier (``dossier-read``,
        each access recorded)? None when it may."""
        return await self._permit(reader, patient_account, frozenset({DOSSIER_READ}), peer=peer)


class CertificateStatus:
    """What is wrong with an app's certificate now: ``"revoked"`` (on the CRL that
    certificate login reads, re-read when it changes; or, without certificate login, in the
    CA's registry), ``"expired"`` (past its notAfter in the CA's registry, re-read when it
    changes), or None. Fails closed: no trustworthy CRL or an unknown serial is "revoked"."""

    def __init__(
        self,
        checker: ClientCertificateChecker | None,
        pki_dir: Path,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.checker = checker
        self.clock = clock
        self.registry = Registry(pki_dir)
        self._stamp: tuple[int, int] | None = None
        self._records: dict[int, IssuedRecord] = {}

    def _record(self, number: int) -> IssuedRecord | None:
        try:
            st = os.stat(self.registry.index)
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp != self._stamp:
                self._records = {r.serial: r for r in self.registry.records()}
                self._stamp = stamp
        except (OSError, PkiError):
            return None
        return self._records.get(number)

    def __call__(self, serial: str) -> str | None:
        try:
            number = int(serial, 16)
        except ValueError:
            return "revoked"
        record = self._record(number)
        if self.checker is not None:
            try:
                if number in self.checker.revoked_serials():
                    return "revoked"
            except CertificateRejected:
                return "revoked"
        elif record is None or record.status == "revoked":
            return "revoked"
        if record is None:
            return "revoked"
        if record.not_after <= self.clock():
            return "expired"
        return None


