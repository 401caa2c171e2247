"""INS (Identité Nationale de Santé): the matricule, its key, its OIDs and identity statuses.

A pure format module: no storage, no I/O.

- Matricule: NIR or NIA, 13 characters then a 2-digit key (15 characters). The key is
  ``97 - (first 13 digits mod 97)``; in a Corsican matricule ``2A`` counts as ``19`` and ``2B``
  as ``18`` (département digits 6–7).
- OIDs (FR Core): INS-NIR ``1.2.250.1.213.1.4.8``, INS-NIA ``…4.9``; test NIR ``…4.10`` and test
  NIA ``…4.11`` must never appear in production; INS-C ``…4.2`` is obsolete.
- Identity statuses (RNIV): PROV, RECUP, VALI, QUAL; only QUAL may reference data with the INS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

OID_NIR = "1.2.250.1.213.1.4.8"
OID_NIA = "1.2.250.1.213.1.4.9"
OID_TEST_NIR = "1.2.250.1.213.1.4.10"
OID_TEST_NIA = "1.2.250.1.213.1.4.11"
OID_INS_C = "1.2.250.1.213.1.4.2"
PRODUCTION_OIDS = frozenset({OID_NIR, OID_NIA})
TEST_OIDS = frozenset({OID_TEST_NIR, OID_TEST_NIA})

_MATRICULE = re.compile(r"^[0-9]{5}(?:[0-9]{2}|2A|2B)[0-9]{8}$")


class InsError(ValueError):
    """Not a valid INS. The message never repeats the matricule (it identifies a patient)."""


class IdentityStatus(StrEnum):
    PROV = "PROV"  # provisional identity
    RECUP = "RECUP"  # recovered: INS read from the INSi service, identity not checked
    VALI = "VALI"  # validated: identity checked against an ID document
    QUAL = "QUAL"  # qualified: recovered and validated


def _numeric(thirteen: str) -> int:
    # Corsica: the département "2A" counts as 19, "2B" as 18 (INSEE rule for the NIR key).
    if thirteen[5:7] == "2A":
        return int(thirteen[:5] + "19" + thirteen[7:])
    if thirteen[5:7] == "2B":
        return int(thirteen[:5] + "18" + thirteen[7:])
    return int(thirteen)


def ins_key(thirteen: str) -> str:
    """The 2-digit key of the first 13 characters of a matricule."""
    thirteen = thirteen.upper()
    if not _MATRICULE.match(thirteen + "00"):
        raise InsError("an INS matricule starts with 13 digits (2A/2B allowed for Corsica)")
    return f"{97 - _numeric(thirteen) % 97:02d}"


def check_matricule(matricule: str) -> str:
    """The matricule in canonical form (upper case), or :class:`InsError`."""
    value = matricule.strip().upper()
    if len(value) != 15 or not _MATRICULE.match(value):
        raise InsError("an INS matricule has 15 characters: 13 digits (or 2A/2B) and a key")
    if ins_key(value[:13]) != value[13:]:
        raise InsError("the INS key does not match the matricule")
    return value


def check_oid(oid: str, *, test_mode: bool) -> str:
    """The OID if it names an INS assigning authority allowed here, or :class:`InsError`."""
    if oid in PRODUCTION_OIDS:
        return oid
    if oid in TEST_OIDS:
        if test_mode:
            return oid
        raise InsError(f"test INS OID {oid} refused: this operator does not run in test mode")
    if oid == OID_INS_C:
        raise InsError("INS-C (1.2.250.1.213.1.4.2) is obsolete")
    raise InsError(f"{oid} is not an INS OID")


@dataclass(frozen=True)
class Ins:
    """A checked INS: matricule and assigning-authority OID."""

    matricule: str
    oid: str

    @classmethod
    def parse(cls, matricule: str, oid: str = OID_NIR, *, test_mode: bool = False) -> Ins:
        return cls(check_matricule(matricule), check_oid(oid, test_mode=test_mode))

    def __repr__(self) -> str:  # never print a patient's identifier by accident
        return f"Ins(oid={self.oid!r})"


# -- patients' mailbox addresses (design.md §5) ---------------------------------------------------
#
# A patient's MSSanté address is ``<INS matricule>@patient.<domain>``: the one rule, used by
# every part of Hygie that must tell a patient's mailbox from a professional's.

PATIENT_LABEL = "patient."
#: The matricule as a local part: 13 characters (sex, year, month, département incl. 2A/2B,
#: commune, order) and the 2-digit key; only its form, :func:`check_matricule` checks the key.
_INS_LOCAL = re.compile(r"^[12378][0-9]{4}(?:[0-9]{2}|2[AB])[0-9]{6}[0-9]{2}$", re.I)


def is_patient_domain(domain: str) -> bool:
    return domain.lower().startswith(PATIENT_LABEL)


def is_patient_address(address: str) -> bool:
    """Whether ``address`` names a patient's mailbox (its form; see :func:`check_matricule`)."""
    local, _, domain = address.lower().rpartition("@")
    return is_patient_domain(domain) and bool(_INS_LOCAL.match(local))


def patient_domain(domains: list[str] | tuple[str, ...]) -> str | None:
    """The patients' domain among an operator's mail domains (``patient.<domain>``)."""
    return next((d for d in domains if is_patient_domain(d)), None)


def patient_address(matricule: str, domain: str) -> str:
    """A patient's address in ``domain`` (a patient domain, or the professional domain whose
    ``patient.`` sub-domain it is)."""
    if not is_patient_domain(domain):
        domain = PATIENT_LABEL + domain
    return f"{matricule.lower()}@{domain.lower()}"
