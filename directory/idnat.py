"""National identifiers of practitioners and structures (Annuaire Santé). Pure format module.

- Practitioner IdNat (``Identification nationale PP``): ``"8" + RPPS`` (RPPS: 11 digits, the
  last a Luhn check digit) or ``"0" + ADELI`` (9 characters).
- Structure IdNat: ``"1" + FINESS`` (9 characters), ``"3" + SIRET`` (14 digits),
  ``"4" + `` an RPPS-based cabinet identifier.
- FHIR identifier systems: ``urn:oid:1.2.250.1.71.4.2.1`` (IdNat PS) and
  ``urn:oid:1.2.250.1.71.4.2.2`` (IdNat structure).
"""

from __future__ import annotations

import re

OID_IDNAT_PS = "urn:oid:1.2.250.1.71.4.2.1"
OID_IDNAT_STRUCT = "urn:oid:1.2.250.1.71.4.2.2"
RPPS_TYPE = "8"
ADELI_TYPE = "0"
_RPPS = re.compile(r"^[0-9]{11}$")
_ADELI = re.compile(r"^[0-9A-Z]{9}$")


class IdNatError(ValueError):
    pass


_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def luhn_digit(digits: str) -> str:
    """The Luhn check digit to append to ``digits``."""
    rev = digits[::-1]
    total = sum(map(_DOUBLED.__getitem__, map(int, rev[0::2]))) + sum(map(int, rev[1::2]))
    return str((10 - total % 10) % 10)


def valid_rpps(rpps: str) -> bool:
    return bool(_RPPS.match(rpps)) and luhn_digit(rpps[:-1]) == rpps[-1]


def practitioner_idnat(id_type: str, identifier: str, idnat: str = "") -> str:
    """The IdNat of a practitioner from the extract's type and identifier columns.

    ``id_type`` is the extract's ``Type d'identifiant PP`` (``8`` RPPS, ``0`` ADELI); when the
    file carries ``Identification nationale PP`` it must agree with them.
    """
    identifier = identifier.strip().upper()
    id_type = id_type.strip()
    idnat = idnat.strip().upper()
    if not id_type and idnat[:1] in (RPPS_TYPE, ADELI_TYPE):
        id_type, identifier = idnat[0], identifier or idnat[1:]
    if id_type == RPPS_TYPE:
        if not _RPPS.match(identifier):
            raise IdNatError("an RPPS number has 11 digits")
        if not valid_rpps(identifier):
            raise IdNatError("bad RPPS check digit")
    elif id_type == ADELI_TYPE:
        if not _ADELI.match(identifier):
            raise IdNatError("an ADELI number has 9 characters")
    else:
        raise IdNatError(f"unknown practitioner identifier type {id_type!r} (8 RPPS, 0 ADELI)")
    built = id_type + identifier
    if idnat and idnat != built:
        raise IdNatError("Identification nationale PP disagrees with the type and identifier")
    return built


_STRUCT_TYPES = {"FINESS": "1", "SIRET": "3", "RPPS": "4", "CABINET": "4", "SIREN": "2"}


def structure_idnat(id_type: str, identifier: str) -> str:
    """A structure IdNat from a type (``1``/``3``/``4`` or FINESS/SIRET/…) and an identifier."""
    identifier = identifier.strip()
    id_type = _STRUCT_TYPES.get(id_type.strip().upper(), id_type.strip())
    if not identifier:
        return ""
    if len(id_type) != 1 or not id_type.isdigit():
        id_type = "9"  # unknown kind: keep the entry, under a separate prefix
    return id_type + identifier
