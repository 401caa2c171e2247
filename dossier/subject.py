"""MSSanté naming rules for messages that carry documents.

* Subject (Réf#2 ECO.2.1.3): ``XDM/1.0/DDM+<libellé> <NOM> <prénom> <date de naissance>``;
  every field is mandatory but the date, written ``JJ/MM/AAAA`` as in the volet's example
  (``XDM/1.0/DDM+CR d'imagerie DUPONT Jean 12/10/1988``). Receiving programs hide the prefix
  (SC.MSS/UX.28). The patient is never read from the subject: METADATA.XML says who it is.
* PDF file name (ECO.2.1.6): ``<date acte>_<type doc>_<NOM>_<prénom>_<n° dossier>.pdf``; the
  date is written ``AAAAMMJJ`` (sortable, no ``/`` in a file name; our choice).
* Header fields of a message carrying CDA documents (ECO.2.4.1-2): ``X-MSS-CODECDA``, the
  documents' ``ClinicalDocument/code/@code`` comma-separated, and ``X-MSS-INS``, ``O`` or ``N``
  for a qualified INS; both absent when the XDM holds no CDA.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final

from dossier.xdm import XdmPackage

XDM_PREFIX: Final = "XDM/1.0/DDM+"
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]")
_DATE = re.compile(r"(\d{2})/(\d{2})/(\d{4})")


def _field(value: str, what: str) -> str:
    if any(c in value for c in "\r\n"):  # never let a field fold or inject a header line
        raise ValueError(f"{what} holds a line break")
    value = " ".join(value.split())
    if not value:
        raise ValueError(f"the MSSanté subject needs a {what} (ECO.2.1.3)")
    return value


def xdm_subject(label: str, family: str, given: str, birth_date: date | None = None) -> str:
    """``XDM/1.0/DDM+<libellé> <NOM> <prénom> [<JJ/MM/AAAA>]``, the family name upper-cased."""
    parts = [
        _field(label, "document label"),
        _field(family, "family name").upper(),
        _field(given, "given name"),
    ]
    if birth_date is not None:
        parts.append(birth_date.strftime("%d/%m/%Y"))
    return XDM_PREFIX + " ".join(parts)


def is_xdm_subject(subject: str) -> bool:
    return subject.strip().startswith(XDM_PREFIX)


def display_subject(subject: str) -> str:
    """The subject as a mail program shows it: without the ``XDM/1.0/DDM+`` prefix (UX.28)."""
    stripped = subject.strip()
    return stripped[len(XDM_PREFIX) :] if stripped.startswith(XDM_PREFIX) else stripped


@dataclass(frozen=True)
class XdmSubject:
    label: str
    family: str
    given: str
    birth_date: date | None


def parse_xdm_subject(subject: str, family: str | None = None) -> XdmSubject | None:
    """The fields of an XDM subject, or None when it is not one. A display aid only, since
    the fields are separated by spaces that they may contain themselves. With ``family`` (the
    patient's name as METADATA.XML or the CDA gives it) the split is exact; without it, the
    family name is the run of upper-case words before the given name, leaving the label at
    least one word, which misreads a label in capitals (the volet's own example
    ``ECHOGRAPHIE ABDOMINOPELVIENNE CORSE FIGATELLIX 12/10/1988``)."""
    if not is_xdm_subject(subject):
        return None
    words = display_subject(subject).split()
    birth_date = None
    if words and (match := _DATE.fullmatch(words[-1])):
        try:
            birth_date = date(int(match.group(3)), int(match.group(2)), int(match.group(1)))
        except ValueError:
            return None
        words.pop()
    if len(words) < 3:
        return None
    if family is not None:
        wanted = " ".join(family.split()).upper().split()
        for start in range(len(words) - len(wanted) - 1, 0, -1):
            if [w.upper() for w in words[start : start + len(wanted)]] == wanted:
                return XdmSubject(
                    " ".join(words[:start]),
                    " ".join(words[start : start + len(wanted)]),
                    " ".join(words[start + len(wanted) :]),
                    birth_date,
                )
        return None
    given = words.pop()
    names: list[str] = []
    while len(words) > 1 and words[-1].isupper():
        names.insert(0, words.pop())
    if not names:
        return None
    return XdmSubject(" ".join(words), " ".join(names), given, birth_date)


def _file_part(value: str, what: str) -> str:
    value = _UNSAFE.sub("-", " ".join(value.split())).replace(" ", "-").replace("_", "-")
    value = unicodedata.normalize("NFC", value).strip("-.")
    if not value:
        raise ValueError(f"the PDF name needs a {what} (ECO.2.1.6)")
    return value


def pdf_filename(
    act_date: date | datetime, type_label: str, family: str, given: str, number: str
) -> str:
    """``<AAAAMMJJ>_<type>_<NOM>_<prénom>_<n°>.pdf``: spaces become ``-`` and ``_`` stays the
    field separator only; characters that are unsafe in file names become ``-``."""
    return (
        "_".join(
            [
                act_date.strftime("%Y%m%d"),
                _file_part(type_label, "document type"),
                _file_part(family, "family name").upper(),
                _file_part(given, "given name"),
                _file_part(number, "file number"),
            ]
        )
        + ".pdf"
    )


def mss_document_headers(package: XdmPackage, *, ins_qualified: bool) -> dict[str, str]:
    """``X-MSS-CODECDA`` and ``X-MSS-INS`` for a message carrying ``package`` (ECO.2.4.1-2);
    empty when it holds no CDA. Whether the INS is qualified is the sender's knowledge (its
    identity status, RNIV), not the archive's."""
    codes = [d.cda.code.code for d in package.documents if d.cda is not None]
    if not codes:
        return {}
    return {"X-MSS-CODECDA": ",".join(codes), "X-MSS-INS": "O" if ins_qualified else "N"}
