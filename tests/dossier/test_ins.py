"""INS matricule keys, OIDs and the XDS patientId (design.md §5, MSSanté reference §H)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dossier.errors import InsError
from dossier.ins import (
    INS_C_OID,
    NIA_OID,
    NIR_DEMO_OID,
    NIR_OID,
    NIR_TEST_OID,
    Ins,
    check_matricule,
    ins_key,
    is_valid_matricule,
    parse_patient_id,
    patient_id,
)


def test_the_reference_example_is_valid() -> None:
    # 279035121518989@patient.mssante.fr, the address of the MSSanté examples
    assert ins_key("2790351215189") == 89
    assert check_matricule("2 79 03 51 215 189 89") == "279035121518989"


def test_a_wrong_key_is_refused_as_an_ins_mismatch() -> None:
    with pytest.raises(InsError) as caught:
        check_matricule("279035121518988")
    assert caught.value.code == 904
    assert "279035" not in str(caught.value)  # reasons never carry the INS


@pytest.mark.parametrize(
    ("first13", "department", "as_digits"),
    [("188102A004056", "2A", "19"), ("252072B033017", "2B", "18")],
)
def test_corsican_departments_count_as_19_and_18(
    first13: str, department: str, as_digits: str
) -> None:
    expected = 97 - int(first13.replace(department, as_digits)) % 97
    assert ins_key(first13) == expected
    assert is_valid_matricule(f"{first13}{expected:02d}")
    assert is_valid_matricule(f"{first13.lower()}{expected:02d}")  # 2a is 2A
    assert not is_valid_matricule(f"{first13}{(expected % 97) + 1:02d}")


@pytest.mark.parametrize(
    "bad",
    ["", "27903512151898", "2790351215189890", "2790351215A8989", "2C9035121518989", "x" * 15],
)
def test_malformed_matricules_are_refused(bad: str) -> None:
    assert not is_valid_matricule(bad)


@given(st.integers(min_value=0, max_value=10**13 - 1))
def test_every_computed_key_validates(number: int) -> None:
    first13 = f"{number:013d}"
    assert is_valid_matricule(f"{first13}{ins_key(first13):02d}")
    assert 1 <= ins_key(first13) <= 97


def test_patient_id_is_the_french_cx() -> None:
    assert patient_id("279035121518989") == "279035121518989^^^&1.2.250.1.213.1.4.8&ISO^NH"
    ins = parse_patient_id("279035121518989^^^&1.2.250.1.213.1.4.8&ISO^NH")
    assert ins == Ins("279035121518989", NIR_OID)
    # XDS itself allows only CX.1 and CX.4: read it without the type code too
    assert parse_patient_id("279035121518989^^^&1.2.250.1.213.1.4.9&ISO").oid == NIA_OID


@pytest.mark.parametrize(
    "bad",
    [
        "279035121518989",
        "279035121518989^^^&1.2.250.1.213.1.4.8&L^NH",
        "279035121518989^^^1.2.250.1.213.1.4.8^NH",
        f"279035121518989^^^&{INS_C_OID}&ISO^NH",  # INS-C is obsolete
        "279035121518989^^^&1.2.250.1.213.1.4.12&ISO^NH",  # not an INS OID we know
        "279035121518988^^^&1.2.250.1.213.1.4.8&ISO^NH",  # wrong key
    ],
)
def test_bad_patient_ids_are_refused(bad: str) -> None:
    with pytest.raises(InsError):
        parse_patient_id(bad)


def test_test_and_demo_oids_are_marked() -> None:
    assert Ins("279035121518989", NIR_TEST_OID).is_test
    assert Ins("279035121518989", NIR_DEMO_OID).is_test
    assert not Ins("279035121518989", NIR_OID).is_test
    assert "279035121518989" not in repr(Ins("279035121518989"))
