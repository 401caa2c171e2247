"""INS (Identité Nationale de Santé): matricule key check, OIDs, and the XDS patientId.

Kept minimal and free of storage code so the client can use it alone; ``directory/ins.py``
holds the patient-side rules (identity status, traits).

* Matricule: the NIR or NIA, 13 characters then a 2-digit key; key = 97 - (the 13 characters
  read as a number mod 97), Corsican departments ``2A`` and ``2B`` read as ``19`` and ``18``
  (INSEE rule; design.md §5, MSSanté reference §H).
* OIDs (ANS FR Core ``fr-core-patient`` identifier slices; MSSanté reference §H).
* patientId in XDS metadata is an HL7 v2 CX: ``<matricule>^^^&<OID>&ISO^NH``
  (IHE ITI TF-3 §4.2.3.2.16; CI-SIS volet "Partage de documents de santé", MSSanté ECO.2.1.2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from dossier.errors import InsError

NIR_OID: Final = "1.2.250.1.213.1.4.8"  # INS-NIR, production
NIA_OID: Final = "1.2.250.1.213.1.4.9"  # INS-NIA (temporary number), production
NIR_TEST_OID: Final = "1.2.250.1.213.1.4.10"  # INS-NIR of fictitious test patients
NIR_DEMO_OID: Final = "1.2.250.1.213.1.4.11"  # INS-NIR of fictitious demonstration patients
INS_C_OID: Final = "1.2.250.1.213.1.4.2"  # obsolete INS-C: read, never accepted as an INS

INS_OIDS: Final = frozenset({NIR_OID, NIA_OID, NIR_TEST_OID, NIR_DEMO_OID})
# "Test OIDs must never appear in production" (MSSanté reference §H).
TEST_OIDS: Final = frozenset({NIR_TEST_OID, NIR_DEMO_OID})

# 13 characters: sex, year, month, department (2 digits or 2A/2B), commune, order; then key.
_MATRICULE = re.compile(r"[0-9]{5}(?:[0-9]{2}|2[AB])[0-9]{6}[0-9]{2}")
_CORSICA: Final = {"2A": "19", "2B": "18"}


def ins_key(first13: str) -> int:
    """The key of a 13-character NIR/NIA: 97 - (n mod 97), with 2A -> 19 and 2B -> 18."""
    if len(first13) != 13:
        raise InsError("an INS matricule has 13 characters before its key")
    department = first13[5:7]
    digits = first13[:5] + _CORSICA.get(department, department) + first13[7:]
    if not digits.isascii() or not digits.isdigit():
        raise InsError("an INS matricule is digits, with 2A or 2B as Corsican department")
    return 97 - int(digits) % 97


def check_matricule(matricule: str) -> str:
    """The matricule, spaces removed and upper-cased, if its form and key are right."""
    value = matricule.replace(" ", "").upper()
    if not _MATRICULE.fullmatch(value):
        raise InsError("an INS matricule is 15 characters: 13 (2A/2B allowed) and a 2-digit key")
    if int(value[13:]) != ins_key(value[:13]):
        raise InsError("the INS matricule's key is wrong", code=904)
    return value


def is_valid_matricule(matricule: str) -> bool:
    try:
        check_matricule(matricule)
    except InsError:
        return False
    return True


@dataclass(frozen=True)
class Ins:
    """An INS: a matricule with a valid key and the OID of its assigning authority."""

    matricule: str
    oid: str = NIR_OID

    def __post_init__(self) -> None:
        object.__setattr__(self, "matricule", check_matricule(self.matricule))
        if self.oid not in INS_OIDS:
            raise InsError("not an INS OID (INS-NIR, INS-NIA or their test/demo OIDs)")

    @property
    def is_test(self) -> bool:
        """Whether this is a fictitious test or demonstration patient's INS."""
        return self.oid in TEST_OIDS

    @property
    def patient_id(self) -> str:
        return patient_id(self.matricule, self.oid)

    def __repr__(self) -> str:  # an INS never goes to logs in full (style.md)
        return f"Ins({self.matricule[:1]}************{self.matricule[-2:]!s}, {self.oid})"


def patient_id(ins: str, oid: str = NIR_OID) -> str:
    """The XDS patientId CX: ``<INS>^^^&<OID>&ISO^NH`` (NH: national health number)."""
    return f"{Ins(ins, oid).matricule}^^^&{oid}&ISO^NH"


# CX (HL7 v2.5 §2.A.14): ID ^ check digit ^ scheme ^ assigning authority (HD) ^ type code.
# XDS allows only CX.1 and CX.4 (ITI TF-3 §4.2.3.1.7); the French DMP adds CX.5 = NH.
_CX = re.compile(r"([^^&]+)\^\^\^&([0-9.]+)&ISO(?:\^(NH|NI))?")


def parse_patient_id(value: str) -> Ins:
    """The INS of a patientId ``<INS>^^^&<OID>&ISO[^NH]``; :class:`InsError` otherwise."""
    match = _CX.fullmatch(value.strip())
    if match is None:
        raise InsError("patientId is not <INS>^^^&<OID>&ISO^NH", code=903)
    return Ins(match.group(1), match.group(2))
