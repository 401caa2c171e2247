"""The client's MSSanté document support, from the `dossier` format modules (design.md §1:
`client_tui` may use them): building the IHE_XDM.zip of "send a document to a patient",
describing a received one, and the headers and subject such a message carries (ECO.2.4.1-3).

Registered with :mod:`client_tui.compose`'s hooks when this module is imported.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

from client_tui import compose
from client_tui.compose import DocumentAuthor, PatientTraits
from dossier import loinc
from dossier.cda import (
    Author,
    CdaDocument,
    CdaHeader,
    Custodian,
    PatientIdentity,
    build_cda,
    parse_cda,
)
from dossier.errors import DossierError
from dossier.ins import Ins, check_matricule
from dossier.subject import mss_document_headers, xdm_subject
from dossier.xdm import OutgoingDocument, build_xdm, parse_xdm

PRODUCT = "HYGIE-CLIENT-0.1.0"  # X-MSS-NIL (ECO.2.4.3)


class DocumentError(compose.XdmUnavailable):
    """The files cannot make an MSSanté document for this patient; the message says why
    (reported like "no XDM builder": one line, nothing sent)."""


def check_traits(matricule: str, traits: PatientTraits) -> None:
    """What the INS itself says about the person (INSEE NIR: first digit 1 man, 2 woman;
    then the last two digits of the birth year and the month) must agree with the traits
    typed: a slip here files the document in someone else's dossier."""
    if not traits.birth_name.strip() or not traits.given_names.strip():
        raise DocumentError("the patient's birth name and given names are needed")
    if traits.sex not in ("M", "F"):
        raise DocumentError("the patient's sex is M or F (as on the INS)")
    if matricule[0] in "12" and {"1": "M", "2": "F"}[matricule[0]] != traits.sex:
        raise DocumentError("the sex does not match the INS (its first digit)")
    if matricule[0] in "12" and matricule[1:3] != f"{traits.birth_date.year % 100:02d}":
        raise DocumentError("the birth year does not match the INS")
    month = matricule[3:5]
    if matricule[0] in "12" and month.isdigit() and 1 <= int(month) <= 12 \
            and int(month) != traits.birth_date.month:  # fmt: skip
        raise DocumentError("the birth month does not match the INS")


def _fold(text: str) -> str:
    """Compared as the INS traits are: case and accents aside (LEFÈVRE = Lefevre)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).upper().split())


def same_person(patient: PatientIdentity, traits: PatientTraits) -> bool:
    """The CDA's recordTarget and the typed traits: birth name, first given name, birth date,
    sex (the four of the X-MSS-INS rule)."""
    given = traits.given_names.split()
    return (_fold(patient.birth_name or "") == _fold(traits.birth_name)
            and _fold(patient.first_given_name or "") == _fold(given[0] if given else "")
            and patient.birth_date == traits.birth_date and patient.sex == traits.sex)  # fmt: skip


def wrap_pdf(pdf: bytes, matricule: str, doc_type: str, traits: PatientTraits,
             author: DocumentAuthor, when: datetime | None = None,
             previous: CdaHeader | None = None) -> bytes:  # fmt: skip
    """A lone PDF as a CDA R2 with a ``nonXMLBody`` (CI-SIS "PDF-in-CDA", dossier/cda.py):
    the header carries the INS, the traits and the author the receiver checks (903–905).
    With ``previous``, the new version of that document ("annule et remplace", HL7 CDA R2
    §4.2.3.1): its setId, the next versionNumber, relatedDocument RPLC naming it."""
    kind = loinc.document_type(doc_type)
    assert kind is not None
    identity = PatientIdentity(
        Ins(matricule), traits.birth_name.strip().upper(),
        tuple(traits.given_names.split()), traits.birth_date, traits.sex,
    )  # fmt: skip
    writer = Author(author.idnat or None, author.family, author.given, "Dr",
                    organisation=author.organisation)  # fmt: skip
    document = CdaDocument(
        code=kind.type_code, title=kind.label, patient=identity, author=writer,
        custodian=Custodian(author.organisation or f"Dr {author.given} {author.family}"),
        effective_time=when or datetime.now(UTC),
    )  # fmt: skip
    if previous is not None:
        document = replace(
            document, set_id=previous.set_id or previous.document_id,
            version_number=(previous.version_number or 1) + 1, replaces=previous.document_id,
        )  # fmt: skip
    return build_cda(document, pdf=pdf)


def replaced_document(archive: bytes, doc_type: str) -> CdaHeader:
    """The CDA of ``archive`` (the version sent before) that a new ``doc_type`` replaces."""
    try:
        package = parse_xdm(archive)
    except DossierError as exc:
        raise DocumentError(f"the replaced message's IHE_XDM.zip: {exc.reason}") from None
    headers = [d.cda for d in package.cda_documents if d.cda is not None]
    same = [h for h in headers if h.code.code == doc_type]
    if len(same) != 1:
        raise DocumentError(f"the replaced message holds {len(same)} document(s) of type "
                            f"{doc_type}: one is needed to replace it")  # fmt: skip
    return same[0]


def build_patient_archive(
    files: Sequence[Path], patient_ins: str, doc_type: str, *,
    traits: PatientTraits | None = None, author: DocumentAuthor | None = None,
    replacing: bytes | None = None,
) -> bytes:  # fmt: skip
    """An IHE_XDM.zip from CDA R2 files (each may be followed by its PDF rendering), or from
    a lone PDF wrapped in a CDA written from the patient's ``traits`` and the ``author``.

    A CDA carries the patient's identity traits and the author itself, which the receiver
    checks (MSSanté codes 903–905); for a lone PDF the sender types the traits, and they are
    checked against what the INS encodes (sex, birth year and month).

    ``replacing``: the IHE_XDM.zip of the version this one cancels and replaces ("annule et
    remplace"): a wrapped PDF becomes its next version; a CDA file must name it in its
    relatedDocument RPLC (the software that wrote it did).
    """
    try:
        matricule = check_matricule(patient_ins)
    except DossierError as exc:
        raise DocumentError(f"not a valid INS: {exc.reason}") from None
    if not loinc.is_dmp_type(doc_type):
        raise DocumentError(f"{doc_type} is not a document type of the DMP value set")
    previous = replaced_document(replacing, doc_type) if replacing is not None else None
    documents: list[OutgoingDocument] = []
    pending_pdf: bytes | None = None
    lone_pdfs: list[bytes] = []
    for path in files:
        data = path.read_bytes()
        if path.suffix.lower() == ".pdf" or data.startswith(b"%PDF"):
            if documents and documents[-1].pdf is None:
                last = documents[-1]
                documents[-1] = OutgoingDocument(last.cda, pdf=data)
            elif pending_pdf is None:
                pending_pdf = data
            else:
                lone_pdfs.append(data)
            continue
        try:
            header = parse_cda(data)
        except DossierError as exc:
            raise DocumentError(f"{path.name}: not a CDA R2 document ({exc.reason})") from None
        if header.patient.ins is None or header.patient.ins.matricule != matricule:
            raise DocumentError(f"{path.name} is about another patient than {patient_ins}")
        if header.code.code != doc_type:
            raise DocumentError(f"{path.name} is a {header.code.code}, not a {doc_type}")
        if traits is not None and not same_person(header.patient, traits):
            raise DocumentError(f"{path.name} names the patient with other identity traits")
        if previous is not None and header.replaces != previous.document_id:
            raise DocumentError(f"{path.name} does not replace the document of the replaced "
                                "message (relatedDocument RPLC)")  # fmt: skip
        documents.append(OutgoingDocument(data, pdf=pending_pdf))
        pending_pdf = None
    if pending_pdf is not None:
        lone_pdfs.insert(0, pending_pdf)
    if lone_pdfs:
        if documents:
            raise DocumentError("attach each PDF after its CDA, or send PDFs alone")
        if traits is None:
            raise DocumentError("a PDF alone needs the patient's identity traits (birth name, "
                                "given names, birth date, sex) to write its CDA")  # fmt: skip
        check_traits(matricule, traits)
        who = author or DocumentAuthor("", "")
        if not who.family:
            raise DocumentError("the author's name is unknown: sign in with your certificate "
                                "or use a prenom.nom address")  # fmt: skip
        for pdf in lone_pdfs:
            cda = wrap_pdf(pdf, matricule, doc_type, traits, who, previous=previous)
            documents.append(OutgoingDocument(cda, pdf=pdf))
    if not documents:
        raise DocumentError("attach the document: a PDF, or a CDA R2 (and its PDF)")
    try:
        return build_xdm(documents, source_id="1.2.250.1.999.1.1")
    except DossierError as exc:
        raise DocumentError(exc.reason) from None


def describe_archive(data: bytes) -> list[tuple[str, str]]:
    package = parse_xdm(data)
    lines: list[tuple[str, str]] = []
    for document in package.cda_documents:
        header = document.cda
        assert header is not None
        kind = loinc.document_type(header.code.code)
        author = header.authors[0] if header.authors else None
        patient = header.patient
        lines += [
            ("Patient", f"{patient.birth_name or ''} {patient.first_given_name or ''}".strip()),
            ("Document", kind.label if kind else header.code.display_name or header.code.code),
            ("Title", header.title),
            ("Author", " ".join(p for p in (author.prefix, author.given, author.family) if p)
             if author else "unknown"),
            ("Date", f"{header.effective_time:%d/%m/%Y %H:%M}"),
        ]  # fmt: skip
    return lines


def dress(message: EmailMessage, archive: bytes) -> None:
    """The MSSanté headers of a message carrying ``archive``, and its conventional subject
    when the user left the subject empty."""
    package = parse_xdm(archive)
    for name, value in mss_document_headers(package, ins_qualified=True).items():
        del message[name]
        message[name] = value
    if not str(message.get("Subject", "")).strip() and package.cda_documents:
        header = package.cda_documents[0].cda
        assert header is not None
        kind = loinc.document_type(header.code.code)
        label = kind.short_label if kind else header.title
        del message["Subject"]
        message["Subject"] = xdm_subject(
            label, header.patient.birth_name or "", header.patient.first_given_name or "",
            header.patient.birth_date,
        )  # fmt: skip


compose.register_xdm_builder(build_patient_archive)
compose.register_xdm_describer(describe_archive)
compose.register_xdm_dresser(dress)
