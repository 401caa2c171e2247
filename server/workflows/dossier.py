"""The dossier step of the pipeline (design.md §2, §6; issue 7): a message carrying an
``IHE_XDM.zip`` to a patient's address, or to the operator's ``dmp@<domain>`` service address,
has its documents filed in that patient's dossier.

Before the commit (*route*), the archive decides who keeps a copy: ``dmp@`` never does, and a
patient never receives a document flagged INVISIBLE_PATIENT. Once the message is committed
(*after*, from the outbox) the archive is checked and filed, and the sender answered: an MDN
``processed`` or ``processed/error`` with the MSSanté integration codes 900–906 when
``Disposition-Notification-To`` asked for one (RFC 8098 rules, `mailformats.mdn`), else, on
error only, the volet's plain error mail. Each write is an outbox effect: filed once.

Checks, with their codes: the archive itself (`dossier.xdm`, 903/904/906 …); the patient of
METADATA.XML is the addressed patient (902), or for ``dmp@`` a patient with a mailbox here
(902); test and demonstration INS OIDs only when ``[server] test_mode``; every document type
in the DMP value set (906); "annule et remplace" against the version on file (900, 901).

The restriction flags (`dossier.visibility`, MSSanté test case 17) are applied here too:

- *check*: an archive holding a document masked from professionals (MASQUE_PS) is refused
  when a professional's mailbox (local or remote) is among the recipients, and so is one whose
  flags cannot be read;
- *route*: an archive holding a document the patient may not see (INVISIBLE_PATIENT), or one
  that cannot be read, reaches no patient's INBOX; the receipts of a masked or unreadable one
  (DSN, MDN, error mail) return its header section only;
- *after*: an INVISIBLE_PATIENT document is indexed for the professionals who may read it but
  never put in the patient's ``Dossier`` folder, and owes the patient no notification.
"""

from __future__ import annotations

import asyncio
import email.policy
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import format_datetime, make_msgid
from typing import TYPE_CHECKING

import structlog

from directory.ins import is_patient_address, patient_address, patient_domain
from dossier import loinc
from dossier.cda import CdaHeader, parse_cda
from dossier.errors import AUTHOR_NOT_ALLOWED, OTHER, DossierError
from dossier.subject import pdf_filename, xdm_subject
from dossier.versions import check_replacement, replaced_id
from dossier.visibility import (
    archive_visible_to_patient,
    archive_visible_to_professionals,
    restrictions_of,
    visible_to_patient,
)
from dossier.xdm import INVISIBLE_PATIENT, XDM_NAME, XdmDocument, XdmPackage, parse_xdm
from mailformats import mdn
from server.config import Config
from server.delivery import replies as S
from server.delivery.message import Message
from server.delivery.pipeline import FROM_OUTSIDE, AfterWork, Envelope, Notify, Pipeline, Plan, Step
from storage import audit
from storage.db import effect
from storage.dossier import NOT_IN_MAILBOX, DossierIndex
from storage.mailstore import MailStore, Recipient

if TYPE_CHECKING:
    from catalogue.access import AppGate
    from server.ops.usage import UsageRecorder

log = structlog.get_logger("hygie.workflows")
DOSSIER_FOLDER = "Dossier"
DMP_SERVICE = "dmp"


@dataclass
class Filing:
    """What :meth:`DossierWorkflow.prepare` decided for one message."""

    patient: Recipient | None
    package: XdmPackage | None = None
    error: DossierError | None = None
    skip_inbox: set[int] = field(default_factory=set)  # account ids not to deliver to
    # (document, the filed id it replaces) for each CDA document
    plan: list[tuple[XdmDocument, int | None]] = field(default_factory=list)


class DossierWorkflow(Step):
    name = "dossier"
    origins = FROM_OUTSIDE
    apps: AppGate | None = None  # consent enforcement for app mailboxes (issue 10)
    usage: UsageRecorder | None = None  # set by server.app (issue 11 item 4)

    def __init__(
        self, config: Config, store: MailStore, index: DossierIndex, pipeline: Pipeline
    ) -> None:
        self.config = config
        self.store = store
        self.index = index
        self.pipeline = pipeline
        self.notify: Notify = pipeline.notice
        #: Told of each document filed, with the patient's account id (must not block).
        self.on_filed: list[Callable[[int], None]] = []

    def _is_dmp(self, address: str) -> bool:
        local, _, domain = address.lower().partition("@")
        return local == DMP_SERVICE and self.config.is_local_domain(domain)

    def _is_professional(self, address: str) -> bool:
        """A mailbox a professional reads: anything but a patient's and the dmp@ service
        (which files documents and keeps nothing to read)."""
        return not is_patient_address(address) and not self._is_dmp(address)

    # -- the pipeline's hooks ----------------------------------------------------------------

    async def check(self, message: Message, envelope: Envelope) -> str | None:
        """MASQUE_PS (MSSanté test case 17): an archive holding a document masked from
        professionals never reaches a professional's mailbox, nor one whose flags cannot be
        read. A patient's archive reaches no other patient's mailbox (test case 13). The
        whole message is refused: SMTP has no per-recipient answer after DATA."""
        addresses = [r.address for r in envelope.local] + [r.address for r in envelope.remote]
        professionals = any(self._is_professional(a) for a in addresses)
        patients = [a for a in addresses if is_patient_address(a)]
        if not professionals and not patients:
            return None
        xdm = message.attachment(XDM_NAME)
        if xdm is None:
            return None
        try:
            package = await asyncio.to_thread(parse_xdm, xdm)
        except DossierError as exc:
            if not professionals:
                return None  # the patient's filing answers with its MDN code (90x)
            log.info("xdm_unreadable_for_professionals", code=exc.code)
            return S.S554_XDM_UNREADABLE.format(reason=" ".join(exc.reason.split())[:200])
        # MSSanté test case 13 (ENS MES): a patient's documents go to that patient's own
        # address, a minor's or a protected adult's too, never to another patient's mailbox
        # (a parent's, a guardian's): the other mailbox would read a document about someone
        # else before any filing could refuse it.
        matricule = package.patient.matricule.lower()
        if any(a.split("@", 1)[0].lower() != matricule for a in patients):
            log.info("document_to_another_patient_refused")
            return S.S550_DOCUMENT_OF_ANOTHER_PATIENT
        if not professionals or archive_visible_to_professionals(package):
            return None
        log.info("masked_from_professionals_refused")
        return S.S550_MASKED_FROM_PROFESSIONALS

    async def route(self, message: Message, envelope: Envelope, plan: Plan) -> None:
        """Who keeps a copy: never ``dmp@``; no patient when the archive holds a document the
        patient may not see, or cannot be read (its flags unknown). The receipts of an
        archive masked from professionals return its header section only. The filing itself
        is after-commit work."""
        xdm = message.attachment(XDM_NAME)
        if xdm is None:
            return  # an ordinary message: delivered, nothing to file
        patients = [r for r in envelope.local if is_patient_address(r.address)]
        services = [r for r in envelope.local if self._is_dmp(r.address)]
        try:
            package: XdmPackage | None = await asyncio.to_thread(parse_xdm, xdm)
        except DossierError:
            package = None  # refused after the commit, with its MDN code
        if package is None or not archive_visible_to_professionals(package):
            plan.headers_only = True  # no DSN carries it back to the sender's mailbox
        if not patients and not services:
            return
        plan.skip({r.account_id for r in services})
        if package is None or not archive_visible_to_patient(package):
            plan.skip({r.account_id for r in patients})
        plan.jobs.append((self.name, {}))

    async def after(self, work: AfterWork) -> None:
        sender = work.envelope.sender
        filing = await self.prepare(work.message, sender, list(work.envelope.local))
        if filing is not None:
            await self.complete(filing, work.message, sender)

    # -- the filing ---------------------------------------------------------------------------

    async def prepare(
        self, message: Message, sender: str, recipients: list[Recipient]
    ) -> Filing | None:
        patients = [r for r in recipients if is_patient_address(r.address)]
        services = [r for r in recipients if self._is_dmp(r.address)]
        if not patients and not services:
            return None
        xdm = message.attachment(XDM_NAME)
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
        if filing.package is None or not archive_visible_to_patient(filing.package):
            filing.skip_inbox.update(r.account_id for r in patients)  # as route decided
        return filing

    async def _check(self, filing: Filing, xdm: bytes) -> None:
        package = await asyncio.to_thread(parse_xdm, xdm)
        filing.package = package
        matricule = package.patient.matricule.lower()
        if package.patient.is_test and not self.config.server.test_mode:
            raise DossierError("test INS refused outside test mode", 902)
        if filing.patient is not None:
            if filing.patient.address.split("@", 1)[0].lower() != matricule:
                raise DossierError("the archive is about another patient than the address", 902)
        else:
            domain = patient_domain(self.config.server.domains)
            found = (
                await self.store.resolve(patient_address(matricule, domain)) if domain else None
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

    async def complete(self, filing: Filing, message: Message, sender: str) -> None:
        """File the documents (or not) and answer the sender."""
        if filing.error is None and filing.package is not None and filing.patient is not None:
            try:
                for number, (document, replaces) in enumerate(filing.plan, 1):
                    await self._file(filing.patient, filing.package, document, replaces, number)
                log.info("dossier_filed", documents=len(filing.plan))
                if self.usage is not None:
                    nil = message.header("X-MSS-NIL")
                    await self.usage.filed(nil, sender, filing.patient, len(filing.plan))
            except DossierError as exc:
                filing.error = exc
        await self._answer(filing, message, sender)

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
        rendering = package.rendering_of(document)
        # The flags of the document and of the PDF made from it, which the message carries.
        restrictions = restrictions_of(package, document)
        if rendering is not None:
            restrictions |= restrictions_of(package, rendering)
        folder_id = uid = NOT_IN_MAILBOX
        visible = visible_to_patient(restrictions)
        if visible:
            folder = await self.store.folder(patient.account_id, DOSSIER_FOLDER)
            if folder is None:
                with effect("folder"):
                    folder = await self.store.create_folder(patient.account_id, DOSSIER_FOLDER)
            pdf = rendering.content if rendering is not None else None
            if (
                pdf is None
                and header.body.kind == "nonXML"
                and header.body.media_type == "application/pdf"
            ):
                pdf = header.body.content
            raw = dossier_message(header, document, patient.address, pdf, number)
            into = Recipient(patient.account_id, patient.address, patient.public_key, folder.id)
            with effect(f"file:{header.unique_id}"):
                delivered = await self.pipeline.file(raw, into)
            folder_id, uid = folder.id, delivered.uid
        # An INVISIBLE_PATIENT document is indexed only: the professionals who may read the
        # dossier read its CDA from the index; nothing of it is in the patient's mailbox.
        set_id = "^".join(p for p in header.set_id if p) if header.set_id else None
        with effect(f"index:{header.unique_id}"):
            await self.index.add(
                account_id=patient.account_id, unique_id=header.unique_id, set_id=set_id,
                version=header.version_number, restrictions=restrictions, folder_id=folder_id,
                uid=uid, cda=document.content, replaces=replaces,
            )  # fmt: skip
        if visible:  # the notification to the patient's personal e-mail, among others
            for hook in self.on_filed:
                hook(patient.account_id)
        if replaces is not None:
            await self._retire(replaces)

    async def _retire(self, replaced: int) -> None:
        """The replaced version leaves the Dossier folder (its index row stays, marked)."""
        for filed in await self.index.documents_by_id([replaced]):
            if not filed.in_mailbox:
                continue
            with effect(f"retire-flag:{filed.id}"):
                await self.store.store_flags(filed.folder_id, [filed.uid], ["\\Deleted"], "add")
            with effect(f"retire:{filed.id}"):
                await self.store.expunge(filed.folder_id, [filed.uid])

    async def withdraw_invisible(self) -> int:
        """Take out of the patients' Dossier folders the INVISIBLE_PATIENT documents filed
        there before the rule kept them out (run at start; a no-op once done, and safe on
        several nodes at once). Returns how many were withdrawn."""
        withdrawn = 0
        for filed in await self.index.in_mailbox_with(INVISIBLE_PATIENT):
            await self.store.store_flags(filed.folder_id, [filed.uid], ["\\Deleted"], "add")
            await self.store.expunge(filed.folder_id, [filed.uid])
            await self.index.leave_mailbox(filed.id)
            withdrawn += 1
        if withdrawn:
            log.warning("dossier_invisible_withdrawn", documents=withdrawn)
        return withdrawn

    async def _answer(self, filing: Filing, message: Message, sender: str) -> None:
        if not sender:
            return
        raw = message.raw
        headers = BytesHeaderParser().parsebytes(message.header_block)
        target = mdn.automatic_mdn_target(headers, sender)
        error = (
            mdn.INTEGRATION_ERRORS.get(filing.error.code, mdn.OTHER)
            if filing.error is not None
            else None
        )
        domain = self.config.server.domains[0]
        service = f"{DMP_SERVICE}@{domain}"
        final = filing.patient.address if filing.patient is not None else service
        # A document masked from professionals goes back to no professional, its sender
        # included: the receipt carries the original's header section only.
        masked = filing.package is None or not archive_visible_to_professionals(filing.package)
        if target is not None:
            notice = mdn.build_mdn(
                original=raw, reporting_ua=f"{self.config.server.hostname}; Hygie",
                from_address=service, to_address=target, final_recipient=final, error=error,
                message_id_domain=self.config.server.hostname, headers_only=masked,
            )  # fmt: skip
            with effect("answer"):
                await self.notify(notice, target)
            # MSSanté test case 19: every MDN is in the audit log (to whom, which outcome).
            with effect("audit-mdn"):
                await audit.record(
                    self.store.db, service, "mdn.sent", f"mailbox:{target}",
                    detail={"code": error.code if error is not None else 0},
                )  # fmt: skip
            if self.usage is not None:
                code = error.code if error is not None else 0
                await self.usage.mdn(message.header("X-MSS-NIL"), sender, code)
        elif error is not None:
            notice = mdn.build_error_mail(
                original=raw, from_address=service, to_address=sender, error=error,
                message_id_domain=self.config.server.hostname, headers_only=masked,
            )  # fmt: skip
            with effect("answer"):
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
