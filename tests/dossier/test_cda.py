"""CDA R2 headers: the samples read back with their INS traits, versions and authors; unsafe
or incomplete documents are refused with the MSSanté code they would earn."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dossier.cda import (
    LOINC_OID,
    Author,
    CdaDocument,
    Code,
    Custodian,
    PatientIdentity,
    Section,
    build_cda,
    parse_cda,
    parse_ts,
)
from dossier.errors import CdaError
from dossier.ins import NIR_DEMO_OID, NIR_TEST_OID, Ins
from tests.dossier.archives import PDF, sample

PARIS = timezone(timedelta(hours=1))


def test_consultation_report_header() -> None:
    header = parse_cda(sample("cr-consultation.xml"))
    assert header.code == Code("11488-4", LOINC_OID, "Compte rendu de consultation")
    assert header.title == "Compte rendu de consultation de pneumologie"
    assert header.effective_time == datetime(2026, 11, 3, 14, 30, tzinfo=PARIS)
    assert header.confidentiality.code == "N"
    assert header.unique_id == "1.2.250.1.999.1.1.7^CR-2026-000417"
    assert header.version_number == 1 and header.replaces is None
    patient = header.patient
    assert patient.ins == Ins("279035145412366", NIR_TEST_OID)
    assert patient.birth_name == "DUPONT"  # the BR family, not the used name LEROY
    assert patient.given_names == ("Marie", "Claire", "Odile")
    assert patient.first_given_name == "Marie"
    assert patient.birth_date == date(1979, 3, 12)
    assert (patient.sex, patient.birthplace) == ("F", "51454")
    assert patient.other_ids == (("1.2.250.1.999.1.2", "IPP-0048213"),)
    assert patient.missing_traits() == ()
    (author,) = header.authors
    assert (author.idnat, author.family, author.given, author.prefix) == (
        "810001234567",
        "MARTIN",
        "Paul",
        "Dr",
    )
    assert author.organisation == "Cabinet de pneumologie des Capucins"
    assert header.custodian == "Cabinet de pneumologie des Capucins"
    assert header.body.kind == "structured"


def test_imaging_report_replaces_its_first_version() -> None:
    header = parse_cda(sample("cr-imagerie.xml"))
    assert header.patient.ins == Ins("188102A00405656", NIR_TEST_OID)
    assert header.patient.birthplace == "2A004"
    assert header.set_id == ("1.2.250.1.999.2.1.3", "RAD-2026-11-0091")
    assert header.version_number == 2
    assert header.replaces == ("1.2.250.1.999.2.1.3", "RAD-2026-11-0091-V1")


def test_lab_report_is_restricted_and_uses_the_demo_oid() -> None:
    header = parse_cda(sample("cr-biologie.xml"))
    assert header.patient.ins is not None and header.patient.ins.oid == NIR_DEMO_OID
    assert header.patient.ins.is_test
    assert header.confidentiality.code == "R"
    assert header.code.code == "11502-2"


def _document(**changes: object) -> CdaDocument:
    values: dict[str, object] = {
        "code": Code("18748-4", LOINC_OID, "Compte rendu d'imagerie médicale"),
        "title": "Échographie abdominale",
        "patient": PatientIdentity(
            Ins("279035121518989"), "DUPONT", ("Jean", "Luc"), date(1979, 3, 12), "M", "51215"
        ),
        "author": Author(
            "810002345678", "SANTONI", "Anne", "Dr", "Centre d'imagerie", "1200000016"
        ),
        "custodian": Custodian("Centre d'imagerie", id_extension="1200000016"),
        "effective_time": datetime(2026, 11, 5, 9, 15, tzinfo=PARIS),
    }
    values.update(changes)
    return CdaDocument(**values)  # type: ignore[arg-type]


def test_build_then_parse_a_structured_document() -> None:
    document = _document(replaces=("1.2.3", "V1"), version_number=2, set_id=("1.2.3", "SET"))
    header = parse_cda(build_cda(document, sections=[Section("Conclusion", ("Normal.",))]))
    assert header.document_id == document.document_id
    assert header.patient == document.patient
    assert header.code == document.code and header.title == document.title
    assert header.effective_time == document.effective_time
    assert header.authors[0].idnat == "810002345678"
    assert header.authors[0].organisation_id == "1200000016"
    assert (header.set_id, header.version_number, header.replaces) == (
        ("1.2.3", "SET"),
        2,
        ("1.2.3", "V1"),
    )
    assert header.body.kind == "structured"


def test_build_then_parse_a_pdf_in_nonxmlbody() -> None:
    header = parse_cda(build_cda(_document(), pdf=PDF))
    assert header.body.kind == "nonXML"
    assert header.body.media_type == "application/pdf"
    assert header.body.content == PDF


def test_a_body_is_sections_or_a_pdf() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        build_cda(_document())
    with pytest.raises(ValueError, match="exactly one"):
        build_cda(_document(), sections=[Section("x", ())], pdf=PDF)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE ClinicalDocument [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&lol3;</title></ClinicalDocument>
"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE ClinicalDocument [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&secret;</title></ClinicalDocument>
"""

BARE_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE ClinicalDocument SYSTEM "http://example.invalid/cda.dtd">
<ClinicalDocument xmlns="urn:hl7-org:v3"/>
"""


@pytest.mark.parametrize("evil", [BILLION_LAUGHS, EXTERNAL_ENTITY, BARE_DTD])
def test_dtds_and_entities_are_refused(evil: bytes) -> None:
    with pytest.raises(CdaError, match="DTDs, entities"):
        parse_cda(evil)


def _without(element: bytes) -> bytes:
    text = sample("cr-consultation.xml")
    start = text.index(b"<" + element)
    end = text.index(b"</" + element + b">") + len(element) + 3
    return text[:start] + text[end:]


def test_no_record_target_is_903() -> None:
    with pytest.raises(CdaError) as caught:
        parse_cda(_without(b"recordTarget"))
    assert caught.value.code == 903


def test_a_bad_ins_key_in_the_record_target_is_904() -> None:
    bad = sample("cr-consultation.xml").replace(b"279035145412366", b"279035145412367")
    with pytest.raises(CdaError) as caught:
        parse_cda(bad)
    assert caught.value.code == 904


def test_missing_traits_are_named() -> None:
    text = sample("cr-consultation.xml")
    text = re.sub(rb"<birthTime[^>]*/>", b"", text)
    text = re.sub(rb"<administrativeGenderCode[^>]*/>", b"", text)
    patient = parse_cda(text).patient
    assert patient.ins is not None
    assert patient.missing_traits() == ("birth date", "sex")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not xml", "well-formed"),
        (b"<ClinicalDocument/>", "hl7:ClinicalDocument"),
        (_without(b"author"), "author"),
        (
            re.sub(
                rb"<component>\s*<structuredBody>.*</structuredBody>\s*</component>",
                b"",
                sample("cr-consultation.xml"),
                flags=re.DOTALL,
            ),
            "body",
        ),
    ],
)
def test_incomplete_documents_are_refused(data: bytes, reason: str) -> None:
    with pytest.raises(CdaError, match=reason):
        parse_cda(data)


def test_hl7_time_stamps() -> None:
    assert parse_ts("2026") == datetime(2026, 1, 1)
    assert parse_ts("20261103") == datetime(2026, 11, 3)
    assert parse_ts("20261103143000.25+0100") == datetime(2026, 11, 3, 14, 30, 0, 250000, PARIS)
    assert parse_ts("20261103133000+0000") == datetime(2026, 11, 3, 13, 30, tzinfo=UTC)
    for bad in ("", "2026-11-03", "20261399", "202611031430+1"):
        with pytest.raises(CdaError):
            parse_ts(bad)


def test_an_unknown_encoding_is_malformed_xml() -> None:
    with pytest.raises(CdaError, match="well-formed"):
        parse_cda(b'<?xml version="1.0" encoding="x-hygie"?><ClinicalDocument/>')


SAMPLE = sample("cr-consultation.xml")


@given(st.binary(max_size=2048))
@settings(max_examples=300, deadline=None)
def test_arbitrary_bytes_raise_only_cda_error(data: bytes) -> None:
    try:
        parse_cda(data)
    except CdaError:
        pass


@given(st.lists(st.tuples(st.integers(0, len(SAMPLE) - 1), st.binary(max_size=3)), max_size=6))
@settings(max_examples=400, deadline=None)
def test_damaged_samples_raise_only_cda_error(changes: list[tuple[int, bytes]]) -> None:
    data = bytearray(SAMPLE)
    for index, value in changes:
        data[index : index + len(value)] = value
    try:
        parse_cda(bytes(data))
    except CdaError:
        pass
