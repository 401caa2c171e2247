"""MSSanté naming: the XDM subject (ECO.2.1.3), the PDF name (ECO.2.1.6), the DMP types."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dossier.loinc import DMP_TYPES, document_type, is_dmp_type
from dossier.subject import (
    XdmSubject,
    display_subject,
    is_xdm_subject,
    parse_xdm_subject,
    pdf_filename,
    xdm_subject,
)


def test_subject_of_the_reference_example() -> None:
    subject = xdm_subject("CR d'imagerie", "Dupont", "Jean", date(1988, 10, 12))
    assert subject == "XDM/1.0/DDM+CR d'imagerie DUPONT Jean 12/10/1988"
    assert display_subject(subject) == "CR d'imagerie DUPONT Jean 12/10/1988"
    assert is_xdm_subject(subject)


def test_the_birth_date_is_optional_the_rest_is_not() -> None:
    assert xdm_subject("CR de biologie", "Bernard", "Lucie") == (
        "XDM/1.0/DDM+CR de biologie BERNARD Lucie"
    )
    for label, family, given_name in (("", "X", "Y"), ("CR", "  ", "Y"), ("CR", "X", "")):
        with pytest.raises(ValueError, match=r"ECO\.2\.1\.3"):
            xdm_subject(label, family, given_name)
    with pytest.raises(ValueError, match="line break"):
        xdm_subject("CR\r\nBcc: x@y", "X", "Y")


def test_parsing_a_subject() -> None:
    assert parse_xdm_subject("XDM/1.0/DDM+CR d'imagerie DUPONT Jean 12/10/1988") == XdmSubject(
        "CR d'imagerie", "DUPONT", "Jean", date(1988, 10, 12)
    )
    assert parse_xdm_subject("XDM/1.0/DDM+CR de consultation DE LA TOUR Anne") == XdmSubject(
        "CR de consultation", "DE LA TOUR", "Anne", None
    )
    assert parse_xdm_subject("Re: rendez-vous") is None
    assert parse_xdm_subject("XDM/1.0/DDM+CR DUPONT 31/02/1988") is None


def test_a_label_in_capitals_needs_the_family_name() -> None:
    # the volet's own example: without a hint the split is ambiguous
    subject = "XDM/1.0/DDM+ECHOGRAPHIE ABDOMINOPELVIENNE CORSE FIGATELLIX 12/10/1988"
    assert parse_xdm_subject(subject, family="Corse") == XdmSubject(
        "ECHOGRAPHIE ABDOMINOPELVIENNE", "CORSE", "FIGATELLIX", date(1988, 10, 12)
    )
    assert parse_xdm_subject(subject, family="Martin") is None


@given(
    st.text(alphabet="abcdéè' ", min_size=1).filter(str.strip),
    st.text(alphabet="ABCDÉ-", min_size=1),
    st.text(alphabet="Jeanéï-", min_size=1),
    st.dates(min_value=date(1900, 1, 1)),
)
def test_subjects_read_back_with_the_family_name(
    label: str, family: str, given_name: str, born: date
) -> None:
    subject = xdm_subject(label, family, given_name, born)
    parsed = parse_xdm_subject(subject, family=family)
    assert parsed == XdmSubject(" ".join(label.split()), family, given_name, born)


def test_pdf_file_name() -> None:
    name = pdf_filename(date(2026, 11, 5), "CR d'imagerie", "Martin", "Jean Pierre", "RAD-0091")
    assert name == "20261105_CR-d'imagerie_MARTIN_Jean-Pierre_RAD-0091.pdf"
    assert pdf_filename(datetime(2026, 1, 2, 3, 4), "CR", "de la Tour", "Anne", "7") == (
        "20260102_CR_DE-LA-TOUR_Anne_7.pdf"
    )


def test_pdf_file_name_keeps_to_one_directory_and_five_fields() -> None:
    name = pdf_filename(date(2026, 1, 2), "../../etc", "A/B\\C", "x_y", "1:2")
    assert "/" not in name and "\\" not in name and ":" not in name
    assert name.count("_") == 4
    with pytest.raises(ValueError, match=r"ECO\.2\.1\.6"):
        pdf_filename(date(2026, 1, 2), "CR", "///", "Anne", "1")


def test_dmp_types() -> None:
    for code in ("11488-4", "18748-4", "11502-2", "34133-9", "57833-6", "60591-5"):
        assert is_dmp_type(code)
    assert not is_dmp_type("00000-0")
    assert not is_dmp_type("")
    imaging = document_type("18748-4")
    assert imaging is not None and imaging.short_label == "CR d'imagerie"
    assert imaging.type_code.code_system == "2.16.840.1.113883.6.1"
    assert imaging.xds_class_code.code == "10"
    assert DMP_TYPES["57833-6"].xds_class_code.display_name == "Prescription"


def test_x_mss_headers_name_every_cda() -> None:
    from dossier.subject import mss_document_headers
    from dossier.xdm import OutgoingDocument, build_xdm, parse_xdm
    from tests.dossier.archives import PDF, sample

    first = sample("cr-consultation.xml")
    second = first.replace(b"CR-2026-000417", b"CR-2026-000418").replace(
        b'code="11488-4"', b'code="34133-9"'
    )
    package = parse_xdm(
        build_xdm([OutgoingDocument(first, pdf=PDF), OutgoingDocument(second)], source_id="1.2")
    )
    assert mss_document_headers(package, ins_qualified=True) == {
        "X-MSS-CODECDA": "11488-4,34133-9",
        "X-MSS-INS": "O",
    }
    assert mss_document_headers(package, ins_qualified=False)["X-MSS-INS"] == "N"
    pdf_only = dataclasses.replace(
        package, documents=tuple(d for d in package.documents if d.cda is None)
    )
    assert pdf_only.documents and mss_document_headers(pdf_only, ins_qualified=True) == {}
