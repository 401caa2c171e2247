"""INS matricule keys (97 − n mod 97, Corsica 2A/2B), OIDs and test mode; IdNat and RPPS."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from directory.idnat import IdNatError, practitioner_idnat, structure_idnat, valid_rpps
from directory.ins import (
    OID_INS_C,
    OID_NIR,
    OID_TEST_NIR,
    Ins,
    InsError,
    check_matricule,
    check_oid,
    ins_key,
)


def test_the_mssante_example_matricule_is_valid() -> None:
    assert check_matricule("279035121518989") == "279035121518989"
    assert ins_key("2790351215189") == "89"


def test_a_wrong_key_is_refused_without_echoing_the_matricule() -> None:
    with pytest.raises(InsError) as err:
        check_matricule("279035121518988")
    assert "2790351215" not in str(err.value)


def test_corsica_2a_counts_as_19_and_2b_as_18() -> None:
    # 1 85 05 2A 004 017: key computed on 1850519004017
    assert ins_key("185052A004017") == f"{97 - 1850519004017 % 97:02d}"
    assert ins_key("185052B004017") == f"{97 - 1850518004017 % 97:02d}"
    assert check_matricule("185052a004017" + ins_key("185052A004017")).startswith("185052A")
    assert ins_key("185052A004017") != ins_key("185052B004017")


@given(st.integers(min_value=10**12, max_value=10**13 - 1))
def test_every_thirteen_digits_get_the_key_that_validates(n: int) -> None:
    thirteen = str(n)
    assert check_matricule(thirteen + ins_key(thirteen))


@pytest.mark.parametrize("bad", ["", "27903512151898", "2790351215189890", "27903X121518989"])
def test_malformed_matricules_are_refused(bad: str) -> None:
    with pytest.raises(InsError):
        check_matricule(bad)


def test_test_oids_only_in_test_mode() -> None:
    assert check_oid(OID_NIR, test_mode=False) == OID_NIR
    with pytest.raises(InsError, match="test mode"):
        check_oid(OID_TEST_NIR, test_mode=False)
    assert check_oid(OID_TEST_NIR, test_mode=True) == OID_TEST_NIR
    with pytest.raises(InsError, match="obsolete"):
        check_oid(OID_INS_C, test_mode=True)
    with pytest.raises(InsError):
        Ins.parse("279035121518989", OID_TEST_NIR)
    ins = Ins.parse("279035121518989", OID_TEST_NIR, test_mode=True)
    assert "279035121518989" not in repr(ins)


def test_idnat_prefixes_and_rpps_check_digit() -> None:
    assert valid_rpps("10000005479")  # the ANS sample
    assert practitioner_idnat("8", "10000005479") == "810000005479"
    assert practitioner_idnat("0", "012807590") == "0012807590"
    assert practitioner_idnat("", "", "810000005479") == "810000005479"
    with pytest.raises(IdNatError, match="check digit"):
        practitioner_idnat("8", "10000005478")
    with pytest.raises(IdNatError, match="disagrees"):
        practitioner_idnat("8", "10000005479", "810000005487")
    assert structure_idnat("FINESS", "690000001") == "1690000001"
    assert structure_idnat("3", "12345678900017") == "312345678900017"
