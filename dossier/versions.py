""" "Annule et remplace": whether a new version of a document may replace the one on file.

A replacement is a CDA whose ``relatedDocument[@typeCode="RPLC"]/parentDocument/id`` names
the version it replaces, with the same ``setId`` and a higher ``versionNumber`` (HL7 CDA R2
§4.2.3.1, §4.2.1.8-9; MSSanté AMBU.MSS/va1.02). The MSSanté integration errors say what is
wrong: 900 "version du document incorrecte", 901 "auteur non autorisé à remplacer".
Pure rules over two parsed headers: the dossier looks the previous version up, this module
judges.
"""

from __future__ import annotations

from dossier.cda import CdaHeader, join_id
from dossier.errors import AUTHOR_NOT_ALLOWED, OTHER, VERSION_MISMATCH, DossierError


def replaced_id(header: CdaHeader) -> str | None:
    """The uniqueId (``root^extension``) of the version ``header`` replaces, if any."""
    return join_id(header.replaces) if header.replaces is not None else None


def check_replacement(previous: CdaHeader, replacement: CdaHeader) -> None:
    """Raise :class:`DossierError` (900, 901 or 906) unless ``replacement`` may replace
    ``previous``: it names ``previous`` in RPLC, shares its setId, has a higher
    versionNumber, is about the same patient, and one of its authors (by IdNat) wrote
    ``previous``."""
    if replacement.replaces is None:
        raise DossierError("the document replaces nothing (no relatedDocument RPLC)", 900)
    if replacement.replaces != previous.document_id:
        raise DossierError(
            "the document replaces another version than the one on file", VERSION_MISMATCH
        )
    if (
        previous.set_id is not None
        and replacement.set_id is not None
        and previous.set_id != replacement.set_id
    ):
        raise DossierError("the replacement's setId differs from the original's", 900)
    if (
        previous.version_number is not None
        and replacement.version_number is not None
        and replacement.version_number <= previous.version_number
    ):
        raise DossierError("the replacement's versionNumber is not higher", VERSION_MISMATCH)
    if replacement.patient.ins != previous.patient.ins:
        raise DossierError("the replacement is about another patient", OTHER)
    before = {a.idnat for a in previous.authors if a.idnat}
    after = {a.idnat for a in replacement.authors if a.idnat}
    if not before & after:
        raise DossierError(
            "the replacement's author did not write the original", AUTHOR_NOT_ALLOWED
        )
