"""The client's MSSanté document support, from the `dossier` format modules (design.md §1:
`client_tui` may use them): building the IHE_XDM.zip of "send a document to a patient",
describing a received one, and the headers and subject such a message carries (ECO.2.4.1-3).

Registered with :mod:`client_tui.compose`'s hooks when this module is imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from email.message import EmailMessage
from pathlib import Path

from client_tui import compose
from dossier import loinc
from dossier.cda import parse_cda
from dossier.errors import DossierError
from dossier.ins import check_matricule
from dossier.subject import mss_document_headers, xdm_subject
from dossier.xdm import OutgoingDocument, build_xdm, parse_xdm

PRODUCT = "HYGIE-CLIENT-0.1.0"  # X-MSS-NIL (ECO.2.4.3)


class DocumentError(compose.XdmUnavailable):
    """The files cannot make an MSSanté document for this patient; the message says why
    (reported like "no XDM builder": one line, nothing sent)."""


def build_patient_archive(files: Sequence[Path], patient_ins: str, doc_type: str) -> bytes:
    """An IHE_XDM.zip from CDA R2 files (each may be followed by its PDF rendering).

    The CDA carries the patient's identity traits and the author, which the receiver checks
    (MSSanté codes 903–905): the client sends documents its medical software produced, and
    does not invent an identity for a lone PDF.
    """
    try:
        matricule = check_matricule(patient_ins)
    except DossierError as exc:
        raise DocumentError(f"not a valid INS: {exc.reason}") from None
    if not loinc.is_dmp_type(doc_type):
        raise DocumentError(f"{doc_type} is not a document type of the DMP value set")
    documents: list[OutgoingDocument] = []
    pending_pdf: bytes | None = None
    for path in files:
        data = path.read_bytes()
        if path.suffix.lower() == ".pdf" or data.startswith(b"%PDF"):
            if documents and documents[-1].pdf is None:
                last = documents[-1]
                documents[-1] = OutgoingDocument(last.cda, pdf=data)
            else:
                pending_pdf = data
            continue
        try:
            header = parse_cda(data)
        except DossierError as exc:
            raise DocumentError(f"{path.name}: not a CDA R2 document ({exc.reason})") from None
        if header.patient.ins is None or header.patient.ins.matricule != matricule:
            raise DocumentError(f"{path.name} is about another patient than {patient_ins}")
        if header.code.code != doc_type:
            raise DocumentError(f"{path.name} is a {header.code.code}, not a {doc_type}")
        documents.append(OutgoingDocument(data, pdf=pending_pdf))
        pending_pdf = None
    if not documents:
        raise DocumentError("attach the CDA R2 document (and its PDF if you have one)")
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
