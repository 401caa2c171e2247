"""Who may see a document of the dossier: the visibility rules (design.md §6).

The restriction flags travel with each document of an ``IHE_XDM.zip`` (MetaDMPMSS table of the
HL7 v2 volet "Transmission de documents CDA R2"; TRE_A07-StatutVisibiliteDocument) and are
kept with each filed document. Two of them decide who may see it, and each is one function
here that every reader calls, so that no path decides on its own:

- ``INVISIBLE_PATIENT``: the patient must not see the document (a diagnosis to be announced
  in consultation, say). :func:`visible_to_patient` is asked by every patient-facing view:
  the filing into the patient's ``Dossier`` IMAP folder and INBOX, the dossier HTTP API read
  as the patient or by an app acting for the patient, the notification to the patient's
  personal e-mail, the patient spaces. The professionals allowed to read the dossier still
  read it (:func:`professional_may_read`).
- ``MASQUE_PS``: no professional may see the document, and it "must not be sent to a
  professional's mailbox" (MSSanté reference (a) D, test case 17). :func:`visible_to_professionals`
  is asked by the dossier API for professionals and by every path that would put a mail
  carrying the document in a professional's mailbox (submission, the inbound relay).

A PDF rendering in the archive shows what its CDA says, so it carries the CDA's flags as well
as its own (:func:`restrictions_of`).

A pure module: no storage, no I/O; filed documents are read through :class:`Filed`.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from typing import Protocol, TypeVar

from dossier.xdm import INVISIBLE_PATIENT, MASQUE_PS, XdmDocument, XdmPackage


class Filed(Protocol):
    """What the rules read of a filed document (``storage.dossier.FiledDocument``)."""

    @property
    def restrictions(self) -> frozenset[str]: ...

    @property
    def replaced_by(self) -> int | None: ...

    @property
    def hidden(self) -> bool: ...


F = TypeVar("F", bound=Filed)


def visible_to_patient(restrictions: Set[str]) -> bool:
    """May the patient see a document with these flags, anywhere? The one rule of
    INVISIBLE_PATIENT: every patient-facing view asks it."""
    return INVISIBLE_PATIENT not in restrictions


def visible_to_professionals(restrictions: Set[str]) -> bool:
    """May any professional see a document with these flags, or receive it in a mailbox?
    The one rule of MASQUE_PS."""
    return MASQUE_PS not in restrictions


def patient_view(documents: Iterable[F]) -> list[F]:
    """What the patient (or an app acting for the patient) sees of their dossier: the
    current versions the patient may see."""
    return [d for d in documents if d.replaced_by is None and visible_to_patient(d.restrictions)]


def professional_may_read(document: Filed, *, traitant: bool, authored: bool) -> bool:
    """A professional reading a patient's dossier (design.md §6): the declared médecin
    traitant sees every current document not masked from professionals nor hidden by the
    patient; the author sees their own documents under the same two conditions."""
    return (
        document.replaced_by is None
        and visible_to_professionals(document.restrictions)
        and not document.hidden
        and (traitant or authored)
    )


def restrictions_of(package: XdmPackage, document: XdmDocument) -> frozenset[str]:
    """The flags that govern ``document``: its own, and for a rendering (a PDF made from a
    CDA of the archive, ITI XFRM) those of the document it renders."""
    flags = set(document.restrictions)
    source = document.entry.transformation_of
    if source is not None:
        for other in package.documents:
            if other.entry.entry_id == source:
                flags |= other.restrictions
    return frozenset(flags)


def archive_visible_to_patient(package: XdmPackage) -> bool:
    """May the patient receive this archive whole (the message in their INBOX)? Only if
    every document in it is visible to them."""
    return all(visible_to_patient(restrictions_of(package, d)) for d in package.documents)


def archive_visible_to_professionals(package: XdmPackage) -> bool:
    """May this archive be put in a professional's mailbox? Only if no document in it is
    masked from professionals."""
    return all(visible_to_professionals(restrictions_of(package, d)) for d in package.documents)
