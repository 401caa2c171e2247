"""Errors of the dossier formats, each carrying the MSSanté integration error it maps to.

The volet "Transmission au LPS de documents CDA provenant d'un courriel MSSanté" (ANS, table
applicationErrorCondition) defines 900-906; the workflow turns :attr:`DossierError.code`
into ``mailformats.mdn.INTEGRATION_ERRORS[code]`` for the MDN.
"""

from __future__ import annotations

from typing import Final

# MSSanté integration error codes (the labels live in mailformats/mdn.py).
VERSION_MISMATCH: Final = 900
AUTHOR_NOT_ALLOWED: Final = 901
UNKNOWN_PATIENT: Final = 902
INS_MISSING: Final = 903
INS_MISMATCH: Final = 904
INS_INCOMPLETE: Final = 905
OTHER: Final = 906


class DossierError(ValueError):
    """A document or archive refused; ``reason`` is a short English sentence naming what was
    wrong (safe to log: it never holds an INS or a name), ``code`` the 900-906 error."""

    def __init__(self, reason: str, code: int = OTHER) -> None:
        if not 900 <= code <= 906:
            raise ValueError(f"MSSanté integration error codes are 900-906, not {code}")
        super().__init__(reason)
        self.reason = reason
        self.code = code


class InsError(DossierError):
    """A malformed INS matricule, a wrong key, or an unknown INS OID."""

    def __init__(self, reason: str, code: int = INS_INCOMPLETE) -> None:
        super().__init__(reason, code)


class CdaError(DossierError):
    """A CDA R2 document that cannot be read (unsafe or malformed XML, missing header)."""


class XdmError(DossierError):
    """An ``IHE_XDM.zip`` refused: unsafe archive, bad metadata, or files that disagree with
    their metadata. The only exception :func:`dossier.xdm.parse_xdm` raises."""
