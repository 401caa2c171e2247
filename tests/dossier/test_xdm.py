"""IHE_XDM.zip round trips: what a sender builds, the receiver reads back, hash and size
checked, patient from METADATA.XML (ECO.2.1.2), restriction flags as docs/decisions.md says."""

from __future__ import annotations

import hashlib
import io
import zipfile
from datetime import UTC, datetime

import pytest

from dossier import xdm
from dossier.cda import LOINC_OID, Author, Code, parse_cda
from dossier.errors import XdmError
from dossier.ins import NIR_TEST_OID, Ins
from dossier.xdm import (
    CONNEXION_SECRETE,
    FORMAT_PDF_IN_CDA,
    INVISIBLE_PATIENT,
    INVISIBLE_REPRESENTANTS_LEGAUX,
    MASQUE_PS,
    OutgoingDocument,
    build_xdm,
    parse_xdm,
)
from tests.dossier.archives import DOC1, METADATA, PDF, WHEN, edit_metadata, honest, members
from tests.dossier.archives import sample as read_sample


def test_layout_of_the_archive() -> None:
    names = list(members(honest()))
    assert names == [
        "README.TXT",
        "INDEX.HTM",
        METADATA,
        DOC1,
        "IHE_XDM/SUBSET01/DOC0001.PDF",
    ]
    files = members(honest())
    assert b"IHE XDM" in files["README.TXT"]
    assert b'href="IHE_XDM/SUBSET01/DOC0001.XML"' in files["INDEX.HTM"]
    assert files[DOC1] == read_sample("cr-consultation.xml")


def test_metadata_is_an_ebrim_submit_objects_request() -> None:
    text = members(honest())[METADATA].decode("utf-8")
    assert "<lcm:SubmitObjectsRequest" in text
    assert 'xmlns:rim="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"' in text
    assert "<rim:RegistryPackage" in text and "<rim:ExtrinsicObject" in text
    assert "279035145412366^^^&amp;1.2.250.1.213.1.4.10&amp;ISO^NH" in text
    assert "810001234567^MARTIN^Paul^^^Dr^^^&amp;1.2.250.1.71.4.2.1&amp;ISO^D^^^IDNPS" in text
    sha1 = hashlib.sha1(read_sample("cr-consultation.xml"), usedforsecurity=False).hexdigest()
    assert f"<rim:Value>{sha1}</rim:Value>" in text
    assert f"<rim:Value>{len(read_sample('cr-consultation.xml'))}</rim:Value>" in text
    assert "<rim:Value>DOC0001.XML</rim:Value>" in text


@pytest.mark.parametrize(
    ("sample", "type_code", "idnat"),
    [
        ("cr-consultation.xml", "11488-4", "810001234567"),
        ("cr-imagerie.xml", "18748-4", "810002345678"),
        ("cr-biologie.xml", "11502-2", "810003456789"),
    ],
)
def test_round_trip_of_each_sample(sample: str, type_code: str, idnat: str) -> None:
    package = parse_xdm(honest(sample))
    cda = parse_cda(read_sample(sample))
    assert package.patient == cda.patient.ins
    (document,) = package.cda_documents
    entry = document.entry
    assert document.content == read_sample(sample)
    assert document.cda == cda
    assert entry.type_code == Code(type_code, LOINC_OID, cda.code.display_name)
    assert entry.unique_id == cda.unique_id
    assert entry.patient_id == cda.patient.ins
    assert entry.authors[0].idnat == idnat
    assert entry.authors[0].organisation == cda.authors[0].organisation
    assert entry.creation_time == cda.effective_time.astimezone(UTC)
    assert entry.confidentiality[0] == cda.confidentiality
    assert entry.class_code == xdm.CLASS_COMPTE_RENDU
    assert entry.healthcare_facility_type == xdm.FACILITY_CABINET
    assert entry.practice_setting == xdm.PRACTICE_AMBULATOIRE
    assert entry.mime_type == "text/xml" and entry.language_code == "fr-FR"
    assert entry.title == cda.title
    rendering = package.rendering_of(document)
    assert rendering is not None and rendering.content == PDF
    assert rendering.entry.mime_type == "application/pdf"
    assert rendering.cda is None
    submission = package.submission_set
    assert submission.source_id == "1.2.250.1.999.9"
    assert submission.submission_time == WHEN
    assert submission.authors[0].idnat == idnat


def test_without_pdf_there_is_one_document() -> None:
    package = parse_xdm(honest(pdf=None))
    assert len(package.documents) == 1
    assert package.rendering_of(package.documents[0]) is None


def test_restriction_flags_round_trip() -> None:
    flags = frozenset({MASQUE_PS, INVISIBLE_PATIENT, INVISIBLE_REPRESENTANTS_LEGAUX})
    package = parse_xdm(honest("cr-biologie.xml", restrictions=flags | {CONNEXION_SECRETE}))
    document = package.cda_documents[0]
    assert document.restrictions == flags | {CONNEXION_SECRETE}
    visibility = {
        c.code for c in document.entry.confidentiality if c.code_system == xdm.VISIBILITY_OID
    }
    assert visibility == flags  # the three TRE_A07 codes are confidentialityCode values
    text = members(honest(restrictions=frozenset({CONNEXION_SECRETE})))[METADATA].decode()
    assert '<rim:Slot name="urn:hygie:metaDMPMSS">' in text  # the fourth is an extra slot
    assert "1.2.250.1.213.1.1.4.13" not in text


def test_the_hl7v2_short_name_reads_as_the_tre_a07_code() -> None:
    archive = honest(restrictions=frozenset({CONNEXION_SECRETE}))
    archive = edit_metadata(
        archive,
        "<rim:Value>CONNEXION_SECRETE</rim:Value>",
        "<rim:Value>INVISIBLE_REP_LEGAUX</rim:Value>",
    )
    restrictions = parse_xdm(archive).documents[0].restrictions
    assert restrictions == {INVISIBLE_REPRESENTANTS_LEGAUX}


def test_unknown_restriction_flags_are_refused() -> None:
    with pytest.raises(ValueError, match="restriction flags"):
        honest(restrictions=frozenset({"SECRET_DEFENSE"}))
    archive = edit_metadata(
        honest(restrictions=frozenset({CONNEXION_SECRETE})),
        "<rim:Value>CONNEXION_SECRETE</rim:Value>",
        "<rim:Value>SECRET_DEFENSE</rim:Value>",
    )
    with pytest.raises(XdmError, match="restriction"):
        parse_xdm(archive)


def test_a_pdf_in_a_nonxmlbody_gets_the_pdf_format_code() -> None:
    from dossier.cda import CdaDocument, Custodian, build_cda

    cda = parse_cda(read_sample("cr-imagerie.xml"))
    document = CdaDocument(
        code=cda.code,
        title=cda.title,
        patient=cda.patient,
        author=cda.authors[0],
        custodian=Custodian("Centre d'imagerie médicale d'Ajaccio"),
        effective_time=cda.effective_time,
    )
    archive = build_xdm(
        [OutgoingDocument(build_cda(document, pdf=PDF), class_code=xdm.CLASS_IMAGERIE)],
        source_id="1.2.3",
        intended_recipients=["188102A00405656@patient.hygie.test"],
        content_type=Code("11", "1.2.250.1.213.1.1.4.1", "Synthèse"),
        now=WHEN,
    )
    package = parse_xdm(archive)
    entry = package.documents[0].entry
    assert entry.format_code == FORMAT_PDF_IN_CDA
    assert entry.class_code == xdm.CLASS_IMAGERIE
    assert package.documents[0].cda is not None
    assert package.documents[0].cda.body.content == PDF
    assert package.submission_set.intended_recipients == ("188102A00405656@patient.hygie.test",)
    assert package.submission_set.content_type is not None
    assert package.patient == Ins("188102A00405656", NIR_TEST_OID)


def test_several_documents_of_one_patient() -> None:
    first = read_sample("cr-consultation.xml")
    second = first.replace(b"CR-2026-000417", b"CR-2026-000418")
    archive = build_xdm(
        [OutgoingDocument(first, pdf=PDF), OutgoingDocument(second)],
        source_id="1.2.3",
        submission_author=Author("810001234567", "MARTIN", "Paul"),
        now=WHEN,
    )
    package = parse_xdm(archive)
    assert [d.entry.uri for d in package.documents] == ["DOC0001.XML", "DOC0001.PDF", "DOC0002.XML"]
    assert len(package.cda_documents) == 2


def test_one_archive_carries_one_patient() -> None:
    with pytest.raises(XdmError, match="one patient"):
        build_xdm(
            [
                OutgoingDocument(read_sample("cr-consultation.xml")),
                OutgoingDocument(read_sample("cr-imagerie.xml")),
            ],
            source_id="1.2.3",
        )


def test_lower_case_member_names_are_found() -> None:
    files = members(honest(pdf=None))
    renamed = {name.replace("DOC0001.XML", "doc0001.xml"): data for name, data in files.items()}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in renamed.items():
            zf.writestr(name, data)
    assert parse_xdm(out.getvalue()).documents[0].path.endswith("DOC0001.XML")


def test_creation_time_is_utc() -> None:
    entry = parse_xdm(honest()).documents[0].entry
    assert entry.creation_time == datetime(2026, 11, 3, 13, 30, tzinfo=UTC)
