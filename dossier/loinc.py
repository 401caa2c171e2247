"""DMP document types: the LOINC ``typeCode`` values Hygie files in a dossier.

The DMP accepts the document types of the value set JDV_J66-TypeCode-DMP (ANS terminology,
LOINC codes plus a few TRE_A05 complementary codes); the CI-SIS general set is
JDV_J07-XdsTypeCode-CISIS. The full value set was not available to us: this is a **subset
chosen by us**, the types the MSSanté reference notes list as used on the DMP (§F, sources S1
and S13) plus the pathology report. The French labels follow the CI-SIS wording where we knew
it and are otherwise our rendering of the LOINC name; ``short_label`` is the ``<libellé>`` of
the MSSanté subject (Réf#2 ECO.2.1.3, e.g. "CR d'imagerie"). The class codes are TRE_A03
(JDV_J57-ClassCode-DMP): 10 compte rendu, 11 synthèse, 42 prescription.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from dossier.cda import LOINC_OID, Code
from dossier.xdm import CLASS_CODE_OID


@dataclass(frozen=True)
class DocumentType:
    code: str  # LOINC
    label: str  # French display name
    short_label: str  # the <libellé> of the MSSanté subject and the PDF file name
    class_code: str  # TRE_A03-ClasseDocument

    @property
    def type_code(self) -> Code:
        return Code(self.code, LOINC_OID, self.label)

    @property
    def xds_class_code(self) -> Code:
        return Code(self.class_code, CLASS_CODE_OID, _CLASS_LABELS[self.class_code])


_CLASS_LABELS: Final = {"10": "Compte rendu", "11": "Synthèse", "42": "Prescription"}

_TYPES: Final = (
    DocumentType("11488-4", "Compte rendu de consultation", "CR de consultation", "10"),
    DocumentType("11490-0", "Lettre de liaison à la sortie", "Lettre de sortie", "10"),
    DocumentType("11502-2", "Compte rendu d'examens de biologie médicale", "CR de biologie", "10"),
    DocumentType("11526-1", "Compte rendu d'anatomie et cytologie pathologiques", "CR d'ACP", "10"),
    DocumentType("15507-7", "Compte rendu de passage aux urgences", "CR d'urgences", "10"),
    DocumentType("18748-4", "Compte rendu d'imagerie médicale", "CR d'imagerie", "10"),
    DocumentType("34112-3", "Compte rendu d'hospitalisation", "CR d'hospitalisation", "10"),
    DocumentType("34133-9", "Synthèse d'épisode de soins", "Synthèse d'épisode", "11"),
    DocumentType("34874-8", "Compte rendu opératoire", "CR opératoire", "10"),
    DocumentType("57833-6", "Prescription de produits de santé", "Prescription", "42"),
    DocumentType("60591-5", "Synthèse médicale (VSM)", "Synthèse médicale", "11"),
)

DMP_TYPES: Final[Mapping[str, DocumentType]] = MappingProxyType({t.code: t for t in _TYPES})


def is_dmp_type(code: str) -> bool:
    """Whether a LOINC ``typeCode`` may be filed in the dossier (issue 7 item 3)."""
    return code in DMP_TYPES


def document_type(code: str) -> DocumentType | None:
    return DMP_TYPES.get(code)
