"""Health-sector identifiers and the subjects of ORG and PER certificates.

* SIRET (INSEE): 14 digits whose Luhn sum is a multiple of 10; La Poste's establishments
  (SIREN 356 000 000) are the one documented exception, with a digit sum that is a multiple of 5.
* FINESS (ministry of health): 9 digits. Corsican numbers ("2A…"/"2B…") are not accepted.
* RPPS: 11 digits; the practitioner's national identifier (IdNat) is "8" + RPPS.

ORG subject: ``C=FR, O=<organisation>, OU=<"3" + SIRET | "1" + FINESS>, CN=<service name>``,
the structure identifier in ``OU`` as in IGC-Santé's ORG template.

PER subject: ``C=FR, [O=<organisation>,] CN=<Given SURNAME>, GN=<given>, SN=<SURNAME>,
serialNumber=<IdNat>, UID=<IdNat>``. IGC-Santé carries the IdNat of a person in the subject's
``serialNumber`` (X.520, OID 2.5.4.5); we repeat it in ``UID`` (RFC 4519, 0.9.2342.19200300.100.1.1)
rather than in ``OU``, because ``OU`` already means "structure identifier" in ORG certificates and
a relying party mapping certificates to mailboxes must never confuse a person with a structure.
"""

from __future__ import annotations

import re
from typing import Final

from cryptography import x509
from cryptography.x509.oid import NameOID

from pki.errors import PkiError

COUNTRY: Final = "FR"
UB_NAME: Final = 64  # RFC 5280 Appendix A.1: ub-common-name, ub-organization-name, ub-name
SIRET_PREFIX: Final = "3"
FINESS_PREFIX: Final = "1"
RPPS_PREFIX: Final = "8"
_LA_POSTE_SIREN: Final = "356000000"


def luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def check_siret(siret: str) -> str:
    siret = siret.replace(" ", "")
    if not re.fullmatch(r"[0-9]{14}", siret):
        raise PkiError(f"a SIRET is 14 digits, not {siret!r}")
    if siret.startswith(_LA_POSTE_SIREN):
        valid = sum(int(c) for c in siret) % 5 == 0
    else:
        valid = luhn_ok(siret)
    if not valid:
        raise PkiError(f"SIRET {siret} fails its check digit (Luhn)")
    return siret


def check_finess(finess: str) -> str:
    finess = finess.replace(" ", "")
    if not re.fullmatch(r"[0-9]{9}", finess):
        raise PkiError(f"a FINESS number is 9 digits, not {finess!r}")
    return finess


def check_rpps(rpps: str) -> str:
    rpps = rpps.replace(" ", "")
    if not re.fullmatch(r"[0-9]{11}", rpps):
        raise PkiError(f"an RPPS number is 11 digits, not {rpps!r}")
    return rpps


def _text(value: str, what: str) -> str:
    value = " ".join(value.split())
    if not value or len(value) > UB_NAME:
        raise PkiError(f"{what} must be 1 to {UB_NAME} characters")
    return value


def org_subject(
    service_name: str, organisation: str, *, siret: str | None, finess: str | None
) -> x509.Name:
    if (siret is None) == (finess is None):
        raise PkiError("an ORG certificate needs exactly one of a SIRET or a FINESS number")
    structure = (
        SIRET_PREFIX + check_siret(siret)
        if siret is not None
        else FINESS_PREFIX + check_finess(finess or "")
    )
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, COUNTRY),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, _text(organisation, "organisation")),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, structure),
            x509.NameAttribute(NameOID.COMMON_NAME, _text(service_name, "service name")),
        ]
    )


def person_subject(
    rpps: str, given_name: str, surname: str, *, organisation: str | None
) -> x509.Name:
    idnat = RPPS_PREFIX + check_rpps(rpps)
    given = _text(given_name, "given name")
    family = _text(surname, "surname").upper()
    attributes = [x509.NameAttribute(NameOID.COUNTRY_NAME, COUNTRY)]
    if organisation is not None:
        attributes.append(
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, _text(organisation, "organisation"))
        )
    attributes += [
        x509.NameAttribute(NameOID.COMMON_NAME, _text(f"{given} {family}", "full name")),
        x509.NameAttribute(NameOID.GIVEN_NAME, given),
        x509.NameAttribute(NameOID.SURNAME, family),
        x509.NameAttribute(NameOID.SERIAL_NUMBER, idnat),
        x509.NameAttribute(NameOID.USER_ID, idnat),
    ]
    return x509.Name(attributes)
