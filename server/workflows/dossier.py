"""The workflow router (design.md §2.4, §6): what happens to a delivered message beyond the
mailbox. Here, the dossier: a message carrying an ``IHE_XDM.zip`` to a patient's address, or
to the operator's ``dmp@<domain>`` service address, has its documents filed in that patient's
dossier (issue 7).

The filing runs in two steps around delivery: :meth:`DossierWorkflow.prepare` reads and checks
the archive before anything is stored (so an INVISIBLE_PATIENT document never reaches the
patient's INBOX, and ``dmp@`` receives nothing to read), and :meth:`DossierWorkflow.complete`
files the documents and answers the sender: an MDN ``processed`` or ``processed/error`` with
the MSSanté integration codes 900–906 when ``Disposition-Notification-To`` asked for one (RFC
8098 rules, `mailformats.mdn`), else, on error only, the volet's plain error mail.

Checks, with their codes: the archive itself (`dossier.xdm`, 903/904/906 …); the patient of
METADATA.XML is the addressed patient (902), or for ``dmp@`` a patient with a mailbox here
(902); test and demonstration INS OIDs only when ``[server] test_mode``; every document type
in the DMP value set (906); "annule et remplace" against the version on file (900, 901).
"""

from __future__ import annotations

import email.policy
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from email.utils import format_datetime, make_msgid
from typing import TYPE_CHECKING

import structlog

from dossier import loinc
from dossier.cda import CdaHeader, parse_cda
from dossier.errors import AUTHOR_NOT_ALLOWED, OTHER, DossierError
from dossier.subject import pdf_filename, xdm_subject
from dossier.versions import check_replacement, replaced_id
from dossier.xdm import INVISIBLE_PATIENT, XdmDocument, XdmPackage, parse_xdm
from mailformats import mdn
from server.config import Config
from server.delivery.patients import is_patient_address
from storage.dossier import DossierIndex
from storage.mailstore import MailStore, Recipient

if TYPE_CHECKING:
    from server.ops.usage import UsageRecorder
    from server.workflows.consent import AppGate

log = structlog.get_logger("hygie.workflows")
DOSSIER_FOLDER = "Dossier"
DMP_SERVICE = "dmp"
XDM_NAME = "IHE_XDM.zip"
Notify = Callable[[bytes, str], Awaitable[None]]


@dataclass
class Filing:
    """What :meth:`DossierWorkflow.prepare` decided for one message."""

    patient: Recipient | None
    package: XdmPackage | None = None
    error: DossierError | None = None
    skip_inbox: set[int] = field(default_factory=set)  # account ids not to deliver to
    # (document, the filed id it replaces) for each CDA document
    plan: list[tuple[XdmDocument, int | None]] = field(default_factory=list)


def find_xdm(raw: bytes) -> bytes | None:
    """The bytes of the first ``IHE_XDM.zip`` attachment, if the message has one."""
    message = BytesParser(policy=email.policy.default).parsebytes(raw)
    for part in message.walk():
        if part.is_multipart():
            continue
        name = part.get_filename() or ""
        if name.upper() == XDM_NAME.upper():
            payload = part.get_payload(decode=True)
            return payload if isinstance(payload, bytes) else None
    return None


class DossierWorkflow:
    apps: AppGate | None = None  # consent enforcement for app mailboxes (issue 10)
    usage: UsageRecorder | None = None  # set by server.app (issue 11 item 4)

    def __init__(
        self, config: Config, store: MailStore, index: DossierIndex, notify: Notify
    ) -> None:
        self.config = config
        self.store = store
        self.index = index
        self.notify = notify
        #: Told of each document filed, with the patient's account id (must not block).
        self.on_filed: list[Callable[[int], None]] = []

    def _is_dmp(self, address: str) -> bool:
        local, _, domain = address.lower().partition("@")
        return local == DMP_SERVICE and self.config.is_local_domain(domain)

    async def prepare(self, raw: bytes, sender: str, recipients: list[Recipient]) -> Filing | None:
        patients = [r for r in recipients if is_patient_address(r.address)]
        services = [r for r in recipients if self._is_dmp(r.address)]
        if not patients and not services:
            return None
        xdm = find_xdm(raw)
        if xdm is None:
            return None  # an ordinary message to a patient: delivered, nothing to file
        filing = Filing(patient=patients[0] if patients else None)
        filing.skip_inbox.update(r.account_id for r in services)
        try:
            await self._check(filing, xdm)
        except DossierError as exc:
            filing.error = exc
            log.info("dossier_refused", code=exc.code)
        if filing.error is None and self.apps is not None and filing.patient is not None:
            refusal = await self.apps.filing(sender, filing.patient, addressed=bool(patients))
            if refusal is not None:  # an app without the patient's dossier-write consent
                filing.error = DossierError(refusal.text, AUTHOR_NOT_ALLOWED)
        if (
            filing.error is None
            and filing.package is not None
            and filing.patient is not None
            and filing.plan
            and all(INVISIBLE_PATIENT in d.restrictions for d, _ in filing.plan)
        ):
            filing.skip_inbox.add(filing.patient.account_id)
        return filing

    async def _check(self, filing: Filing, xdm: bytes) -> None:
        package = parse_xdm(xdm)
        filing.package = package
        matricule = package.patient.matricule.lower()
        if package.patient.is_test and not self.config.server.test_mode:
            raise DossierError("test INS refused outside test mode", 902)
        if filing.patient is not None:
            if filing.patient.address.split("@", 1)[0].lower() != matricule:
                raise DossierError("the archive is about another patient than the address", 902)
        else:
            patient_domain = next(
                (d for d in self.config.server.domains if d.lower().startswith("patient.")),
                None,
            )
            found = (
                await self.store.resolve(f"{matricule}@{patient_domain}")
                if patient_domain
                else None
            )
            if found is None:
                raise DossierError("no such patient here", 902)
            filing.patient = found
        documents = package.cda_documents
        if not documents:
            raise DossierError("the archive holds no CDA document", OTHER)
        known = await self._registered_traits(package.patient.matricule)
        for document in documents:
            header = document.cda
            assert header is not None
            missing = header.patient.missing_traits()
            if missing:
                raise DossierError("the CDA lacks INS traits: " + ", ".join(missing), 905)
            if known is not None and not _same_identity(header, known):
                raise DossierError("the CDA's identity traits differ from the patient's", 904)
            if not loinc.is_dmp_type(header.code.code):
                raise DossierError("document type outside the DMP value set", OTHER)
            replaces = None
            previous_id = replaced_id(header)
            if previous_id is not None:
                previous = await self.index.find(filing.patient.account_id, previous_id)
                if previous is None:
                    raise DossierError("the version to replace is not on file", 900)
                check_replacement(parse_cda(await self.index.cda(previous.id)), header)
                replaces = previous.id
            filing.plan.append((document, replaces))

    async def _registered_traits(self, matricule: str) -> tuple[str, str, date, str] | None:
        """(birth name, first given name, birth date, sex) of the patient in the directory,
        when the directory knows them (an operator may run without it)."""
        try:
            rows = await self.store.db.raw_rows(
                "SELECT birth_family, first_given, birth_date, sex FROM dir_patients WHERE ins = ?",
                matricule.upper(),
            )
        except Exception:  # no directory tables: nothing to compare with
            return None
        if not rows:
            return None
        family, given, born, sex = rows[0]
        born_date = born if isinstance(born, date) else date.fromisoformat(str(born)[:10])
        return str(family), str(given), born_date, str(sex)

    async def complete(self, filing: Filing, raw: bytes, sender: str) -> None:
        """File the documents (or not) and answer the sender."""
        if filing.error is None and filing.package is not None and filing.patient is not None:
            try:
                for number, (document, replaces) in enumerate(filing.plan, 1):
                    await self._file(filing.patient, filing.package, document, replaces, number)
                log.info("dossier_filed", documents=len(filing.plan))
                if self.usage is not None:
                    await self.usage.filed(raw, sender, filing.patient, len(filing.plan))
            except DossierError as exc:
                filing.error = exc
        await self._answer(filing, raw, sender)

    async def _file(
        self,
        patient: Recipient,
        package: XdmPackage,
        document: XdmDocument,
        replaces: int | None,
        number: int,
    ) -> None:
        header = document.cda
        assert header is not None
        folder = await self.store.folder(patient.account_id, DOSSIER_FOLDER)
        if folder is None:
            folder = await self.store.create_folder(patient.account_id, DOSSIER_FOLDER)
        rendering = package.rendering_of(document)
        pdf = rendering.content if rendering is not None else None
        if (
            pdf is None
            and header.body.kind == "nonXML"
            and header.body.media_type == "application/pdf"
        ):
            pdf = header.body.content
        raw = dossier_message(header, document, patient.address, pdf, number)
        from server.delivery.local import describe  # the IMAP metadata, as for any delivery

        delivered = await self.store.append(folder, patient.public_key, raw, describe(raw))
        set_id = "^".join(p for p in header.set_id if p) if header.set_id else None
        await self.index.add(
            account_id=patient.account_id, unique_id=header.unique_id, set_id=set_id,
            version=header.version_number, restrictions=document.restrictions,
            folder_id=folder.id, uid=delivered.uid, cda=document.content, replaces=replaces,
        )  # fmt: skip
        for hook in self.on_filed:
            hook(patient.account_id)
        if replaces is not None:
            await self._retire(replaces)

    async def _retire(self, replaced: int) -> None:
        """The replaced version leaves the Dossier folder (its index row stays, marked)."""
        for filed in await self.index.documents_by_id([replaced]):
            await self.store.store_flags(filed.folder_id, [filed.uid], ["\\Deleted"], "add")
            await self.store.expunge(filed.folder_id, [filed.uid])

    async def _answer(self, filing: Filing, raw: bytes, sender: str) -> None:
        if not sender:
            return
        headers = BytesHeaderParser().parsebytes(raw)
        target = mdn.automatic_mdn_target(headers, sender)
        error = (
            mdn.INTEGRATION_ERRORS.get(filing.error.code, mdn.OTHER)
            if filing.error is not None
            else None
        )
        domain = self.config.server.domains[0]
        service = f"{DMP_SERVICE}@{domain}"
        final = filing.patient.address if filing.patient is not None else service
        if target is not None:
            notice = mdn.build_mdn(
                original=raw, reporting_ua=f"{self.config.server.hostname}; Hygie",
                from_address=service, to_address=target, final_recipient=final, error=error,
                message_id_domain=self.config.server.hostname,
            )  # fmt: skip
            await self.notify(notice, target)
            if self.usage is not None:
                await self.usage.mdn(raw, sender, error.code if error is not None else 0)
        elif error is not None:
            notice = mdn.build_error_mail(
                original=raw, from_address=service, to_address=sender, error=error,
                message_id_domain=self.config.server.hostname,
            )  # fmt: skip
            await self.notify(notice, sender)


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).upper().strip()


def _same_identity(header: CdaHeader, known: tuple[str, str, date, str]) -> bool:
    """The 4 traits of the X-MSS-INS rule: birth name, first given name, birth date, sex
    (accents and case aside, as the RNIV compares them)."""
    patient = header.patient
    family, given, born, sex = known
    return (
        _fold(patient.birth_name or "") == _fold(family)
        and _fold(patient.first_given_name or "") == _fold(given)
        and patient.birth_date == born
        and (patient.sex or "").upper() == sex.upper()
    )


def dossier_message(
    header: CdaHeader, document: XdmDocument, patient: str, pdf: bytes | None, number: int
) -> bytes:
    """One message per document for the patient's read-only ``Dossier`` folder: the MSSanté
    subject convention, a summary, the PDF (named by the convention) and the CDA."""
    kind = loinc.document_type(header.code.code)
    label = kind.short_label if kind is not None else (header.code.display_name or "Document")
    family = header.patient.birth_name or "PATIENT"
    given = header.patient.first_given_name or "-"
    message = EmailMessage(policy=email.policy.SMTP)
    author = header.authors[0] if header.authors else None
    author_name = (
        " ".join(p for p in (author.prefix, author.given, author.family) if p) if author else ""
    )
    message["From"] = f"Dossier <dossier@{patient.split('@', 1)[1]}>"
    message["To"] = patient
    message["Subject"] = xdm_subject(label, family, given, header.patient.birth_date)
    message["Date"] = format_datetime(header.effective_time)
    message["Message-ID"] = make_msgid(domain=patient.split("@", 1)[1])
    lines = [
        f"Document : {header.title}",
        f"Type : {kind.label if kind else header.code.display_name or header.code.code}",
        f"Auteur : {author_name or 'inconnu'}"
        + (f" ({author.organisation})" if author and author.organisation else ""),
        f"Date : {header.effective_time:%d/%m/%Y %H:%M}",
    ]
    if header.version_number and header.version_number > 1:
        lines.append(f"Version : {header.version_number} (annule et remplace la précédente)")
    message.set_content("\n".join(lines) + "\n")
    if pdf is not None:
        name = pdf_filename(header.effective_time, label, family, given, str(number))
        message.add_attachment(pdf, maintype="application", subtype="pdf", filename=name)
    message.add_attachment(
        document.content, maintype="text", subtype="xml", filename=f"DOC{number:04d}.XML"
    )
    return message.as_bytes()
