"""HL7 CDA R2 headers: read them safely, write minimal valid documents.

The header is what the dossier files a document by (design.md §6): the patient (recordTarget,
with the INS and its traits), the document type (LOINC ``code``), title, author (IdNat), dates,
confidentiality, and versioning (``setId``, ``versionNumber``, ``relatedDocument``). References:
HL7 CDA R2 (ANSI/HL7 CDA R2-2005, POCD_HD000040) and the CI-SIS header conventions (ANS,
"Volet Structuration minimale des documents de santé", en-tête CDA):

* patient: ``recordTarget/patientRole/id[@root=<INS OID>]/@extension``; birth name
  ``name/family[@qualifier="BR"]``; given names at birth ``name/given`` (a ``qualifier="BR"``
  element holds the whole list, space separated; the first given name is the first of it);
  ``administrativeGenderCode/@code`` (M, F, U); ``birthTime/@value``; INSEE birthplace code
  ``birthplace/place/addr/county``.
* author: ``author/assignedAuthor/id[@root="1.2.250.1.71.4.2.1"]/@extension`` is the IdNat
  (RPPS "8" + 11 digits, ADELI "0" + 9), ``assignedPerson/name``, ``representedOrganization``.
* "annule et remplace" is ``relatedDocument[@typeCode="RPLC"]/parentDocument/id`` with the
  same ``setId`` and a higher ``versionNumber`` (CDA R2 §4.2.3.1).

XML is parsed with defusedxml: DTDs, entities and external references are refused.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
import xml.etree.ElementTree as ET  # building only; parsing goes through defusedxml
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Final

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from dossier.errors import INS_MISSING, CdaError, InsError
from dossier.ins import INS_C_OID, INS_OIDS, Ins

HL7: Final = "urn:hl7-org:v3"
XSI: Final = "http://www.w3.org/2001/XMLSchema-instance"
_NS: Final = {"h": HL7}

LOINC_OID: Final = "2.16.840.1.113883.6.1"
CONFIDENTIALITY_OID: Final = "2.16.840.1.113883.5.25"  # HL7 v3 Confidentiality (N, R, V)
GENDER_OID: Final = "2.16.840.1.113883.5.1"  # HL7 v3 AdministrativeGender
IDNAT_PS_OID: Final = "1.2.250.1.71.4.2.1"  # national identifier of persons (IdNat PS)
IDNAT_STRUCT_OID: Final = "1.2.250.1.71.4.2.2"  # national identifier of structures
CDA_TYPE_ID: Final = ("2.16.840.1.113883.1.3", "POCD_HD000040")  # CDA R2 §4.2.1.2
CISIS_HEADER_TEMPLATE: Final = "1.2.250.1.213.1.1.1.1"  # CI-SIS "en-tête des documents"

MAX_CDA_BYTES: Final = 64 * 1024 * 1024


@dataclass(frozen=True)
class Code:
    """A coded value (CD/CE): code, code system OID, display name."""

    code: str
    code_system: str
    display_name: str | None = None


@dataclass(frozen=True)
class PatientIdentity:
    """The recordTarget: the INS (if the document carries one) and the INS traits."""

    ins: Ins | None
    birth_name: str | None = None
    given_names: tuple[str, ...] = ()  # at birth, in order; the first is the "premier prénom"
    birth_date: date | None = None
    sex: str | None = None  # HL7 AdministrativeGender: M, F, U
    birthplace: str | None = None  # INSEE code of the birth commune (or country, 99xxx)
    other_ids: tuple[tuple[str, str], ...] = ()  # (root, extension) of local identifiers

    @property
    def first_given_name(self) -> str | None:
        return self.given_names[0] if self.given_names else None

    def missing_traits(self) -> tuple[str, ...]:
        """The INS traits absent (the 4 of the X-MSS-INS rule, MSSanté reference §H)."""
        missing = []
        for name, value in (
            ("birth name", self.birth_name),
            ("first given name", self.first_given_name),
            ("birth date", self.birth_date),
            ("sex", self.sex),
        ):
            if not value:
                missing.append(name)
        return tuple(missing)


@dataclass(frozen=True)
class Author:
    """An author: a health professional (IdNat) and the structure they act for."""

    idnat: str | None
    family: str | None = None
    given: str | None = None
    prefix: str | None = None  # "Dr", "Pr" ...
    organisation: str | None = None
    organisation_id: str | None = None  # structure IdNat ("1" + FINESS, "3" + SIRET ...)
    time: datetime | None = None


@dataclass(frozen=True)
class CdaBody:
    """``structuredBody`` (kind "structured") or ``nonXMLBody`` (kind "nonXML")."""

    kind: str
    media_type: str | None = None  # nonXMLBody/text/@mediaType
    content: bytes | None = None  # the decoded nonXMLBody (e.g. the PDF)


@dataclass(frozen=True)
class CdaHeader:
    """What the dossier needs from a CDA R2 header."""

    document_id: tuple[str, str | None]  # ClinicalDocument/id (root, extension)
    code: Code  # ClinicalDocument/code: the document type (LOINC)
    title: str
    effective_time: datetime
    confidentiality: Code
    patient: PatientIdentity
    authors: tuple[Author, ...]
    set_id: tuple[str, str | None] | None
    version_number: int | None
    replaces: tuple[str, str | None] | None  # relatedDocument RPLC: the parent's id
    language_code: str | None
    custodian: str | None
    body: CdaBody

    @property
    def unique_id(self) -> str:
        """The XDS uniqueId of the document: ``root^extension`` or ``root`` (CI-SIS)."""
        return join_id(self.document_id)


def join_id(ii: tuple[str, str | None]) -> str:
    root, extension = ii
    return f"{root}^{extension}" if extension else root


# --- HL7 time stamps ---------------------------------------------------------------------------

# HL7 v3 TS: YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]
_TS = re.compile(
    r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,6}))?(?:([+-])(\d{2})(\d{2}))?"
)


def parse_ts(value: str) -> datetime:
    """An HL7 TS as a datetime; aware when the value has a time-zone offset."""
    match = _TS.fullmatch(value.strip())
    if match is None:
        raise CdaError("malformed HL7 time stamp")
    year, month, day, hour, minute, second, fraction, sign, tzh, tzm = match.groups()
    tz: timezone | None = None
    if sign is not None:
        offset = timedelta(hours=int(tzh), minutes=int(tzm))
        tz = timezone(-offset if sign == "-" else offset)
    try:
        return datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0").ljust(6, "0")),
            tzinfo=tz,
        )
    except ValueError as exc:
        raise CdaError("HL7 time stamp out of range") from exc


def format_ts(when: datetime) -> str:
    """``YYYYMMDDhhmmss+ZZZZ`` (aware) or ``YYYYMMDDhhmmss`` (naive)."""
    return when.strftime("%Y%m%d%H%M%S%z")


# --- parsing ---------------------------------------------------------------------------------


def _parse_xml(data: bytes, what: str) -> ET.Element:
    if len(data) > MAX_CDA_BYTES:
        raise CdaError(f"{what} larger than {MAX_CDA_BYTES} bytes")
    try:
        # forbid_dtd: no DOCTYPE at all (a CDA has none), so no entity tricks either.
        root: ET.Element = SafeET.fromstring(
            data, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException as exc:
        raise CdaError(f"{what}: DTDs, entities and external references are refused") from exc
    except (ET.ParseError, ValueError, LookupError) as exc:  # LookupError: unknown encoding
        raise CdaError(f"{what} is not well-formed XML") from exc
    return root


def _find(element: ET.Element, path: str) -> ET.Element | None:
    return element.find(path, _NS)


def _text(element: ET.Element | None) -> str | None:
    if element is None:
        return None
    text = " ".join("".join(element.itertext()).split())
    return text or None


def _ii(element: ET.Element | None) -> tuple[str, str | None] | None:
    if element is None or not element.get("root"):
        return None
    return element.get("root", ""), element.get("extension") or None


def _code(element: ET.Element | None) -> Code | None:
    if element is None or not element.get("code"):
        return None
    return Code(element.get("code", ""), element.get("codeSystem", ""), element.get("displayName"))


def _patient(record_target: ET.Element | None) -> PatientIdentity:
    if record_target is None:
        raise CdaError("no recordTarget/patientRole (CDA R2 §4.2.2.1)", code=INS_MISSING)
    ins: Ins | None = None
    others: list[tuple[str, str]] = []
    for ident in record_target.findall("h:id", _NS):
        root, extension = ident.get("root", ""), ident.get("extension", "")
        if root in INS_OIDS and ins is None:
            try:
                ins = Ins(extension, root)
            except InsError as exc:
                raise CdaError(f"recordTarget INS: {exc.reason}", code=exc.code) from exc
        elif root and extension and root != INS_C_OID:
            others.append((root, extension))
    patient = _find(record_target, "h:patient")
    if patient is None:
        return PatientIdentity(ins=ins, other_ids=tuple(others))
    name = _find(patient, "h:name")
    birth_name: str | None = None
    given_names: tuple[str, ...] = ()
    if name is not None:
        families = name.findall("h:family", _NS)
        birth = [f for f in families if f.get("qualifier") == "BR"] or families[:1]
        birth_name = _text(birth[0]) if birth else None
        givens = name.findall("h:given", _NS)
        at_birth = [g for g in givens if g.get("qualifier") == "BR"]
        chosen = at_birth or [g for g in givens if g.get("qualifier") in (None, "")]
        given_names = tuple(word for g in chosen for word in (_text(g) or "").split())
    gender = _find(patient, "h:administrativeGenderCode")
    birth_time = _find(patient, "h:birthTime")
    birth_date: date | None = None
    if birth_time is not None and birth_time.get("value"):
        birth_date = parse_ts(birth_time.get("value", "")).date()
    return PatientIdentity(
        ins=ins,
        birth_name=birth_name,
        given_names=given_names,
        birth_date=birth_date,
        sex=gender.get("code") if gender is not None else None,
        birthplace=_text(_find(patient, "h:birthplace/h:place/h:addr/h:county")),
        other_ids=tuple(others),
    )


def _author(element: ET.Element) -> Author:
    assigned = _find(element, "h:assignedAuthor")
    if assigned is None:
        raise CdaError("author without assignedAuthor (CDA R2 §4.2.2.2)")
    idnat = None
    for ident in assigned.findall("h:id", _NS):
        if ident.get("root") == IDNAT_PS_OID and ident.get("extension"):
            idnat = ident.get("extension")
            break
    name = _find(assigned, "h:assignedPerson/h:name")
    organisation = _find(assigned, "h:representedOrganization")
    organisation_id = None
    if organisation is not None:
        org_ii = _ii(_find(organisation, "h:id"))
        organisation_id = org_ii[1] if org_ii else None
    time = _find(element, "h:time")
    return Author(
        idnat=idnat,
        family=_text(_find(name, "h:family")) if name is not None else None,
        given=_text(_find(name, "h:given")) if name is not None else None,
        prefix=_text(_find(name, "h:prefix")) if name is not None else None,
        organisation=_text(_find(organisation, "h:name")) if organisation is not None else None,
        organisation_id=organisation_id,
        time=parse_ts(time.get("value", "")) if time is not None and time.get("value") else None,
    )


def _body(root: ET.Element) -> CdaBody:
    component = _find(root, "h:component")
    if component is None:
        raise CdaError("no component: a CDA has a body (CDA R2 §4.3)")
    if _find(component, "h:structuredBody") is not None:
        return CdaBody("structured")
    text = _find(component, "h:nonXMLBody/h:text")
    if text is None:
        raise CdaError("component holds neither structuredBody nor nonXMLBody")
    content: bytes | None = None
    if text.get("representation") == "B64":
        try:
            content = base64.b64decode("".join((text.text or "").split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise CdaError("nonXMLBody is not valid base64") from exc
    elif text.text:
        content = text.text.encode("utf-8")
    return CdaBody("nonXML", text.get("mediaType"), content)


def parse_cda(data: bytes) -> CdaHeader:
    """The header of a CDA R2 document; :class:`CdaError` when it is unsafe or incomplete."""
    root = _parse_xml(data, "CDA document")
    if root.tag != f"{{{HL7}}}ClinicalDocument":
        raise CdaError("root element is not hl7:ClinicalDocument")
    document_id = _ii(_find(root, "h:id"))
    code = _code(_find(root, "h:code"))
    effective = _find(root, "h:effectiveTime")
    confidentiality = _code(_find(root, "h:confidentialityCode"))
    if document_id is None:
        raise CdaError("no ClinicalDocument/id")
    if code is None:
        raise CdaError("no ClinicalDocument/code (document type)")
    if effective is None or not effective.get("value"):
        raise CdaError("no ClinicalDocument/effectiveTime")
    if confidentiality is None:
        raise CdaError("no ClinicalDocument/confidentialityCode")
    authors = tuple(_author(a) for a in root.findall("h:author", _NS))
    if not authors:
        raise CdaError("no author (CDA R2: 1..*)")
    version = _find(root, "h:versionNumber")
    version_number: int | None = None
    if version is not None and version.get("value"):
        try:
            version_number = int(version.get("value", ""))
        except ValueError as exc:
            raise CdaError("versionNumber is not an integer") from exc
    replaces = None
    for related in root.findall("h:relatedDocument", _NS):
        if related.get("typeCode") == "RPLC":
            replaces = _ii(_find(related, "h:parentDocument/h:id"))
            if replaces is None:
                raise CdaError("relatedDocument RPLC without parentDocument/id")
    language = _find(root, "h:languageCode")
    return CdaHeader(
        document_id=document_id,
        code=code,
        title=_text(_find(root, "h:title")) or code.display_name or "",
        effective_time=parse_ts(effective.get("value", "")),
        confidentiality=confidentiality,
        patient=_patient(_find(root, "h:recordTarget/h:patientRole")),
        authors=authors,
        set_id=_ii(_find(root, "h:setId")),
        version_number=version_number,
        replaces=replaces,
        language_code=language.get("code") if language is not None else None,
        custodian=_text(
            _find(root, "h:custodian/h:assignedCustodian/h:representedCustodianOrganization/h:name")
        ),
        body=_body(root),
    )


# --- building --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    """A section of a structured body: a title, narrative paragraphs, an optional LOINC code."""

    title: str
    paragraphs: tuple[str, ...]
    code: Code | None = None


@dataclass(frozen=True)
class Custodian:
    """The organisation in charge of keeping the document (CDA R2: custodian 1..1)."""

    name: str
    id_root: str = IDNAT_STRUCT_OID
    id_extension: str | None = None


def new_document_id() -> tuple[str, str | None]:
    """A fresh document id as a UUID-derived OID (``2.25.<int>``, ITU-T X.667 §6.3)."""
    return f"2.25.{uuid.uuid4().int}", None


@dataclass(frozen=True)
class CdaDocument:
    """The header values :func:`build_cda` writes."""

    code: Code
    title: str
    patient: PatientIdentity
    author: Author
    custodian: Custodian
    effective_time: datetime
    document_id: tuple[str, str | None] = field(default_factory=new_document_id)
    confidentiality: Code = Code("N", CONFIDENTIALITY_OID, "Normal")
    set_id: tuple[str, str | None] | None = None  # defaults to the document id
    version_number: int = 1
    replaces: tuple[str, str | None] | None = None  # the id of the version this one replaces
    language_code: str = "fr-FR"


def _sub(parent: ET.Element, tag: str, **attributes: str) -> ET.Element:
    return ET.SubElement(parent, f"{{{HL7}}}{tag}", attributes)


def _set_ii(element: ET.Element, ii: tuple[str, str | None]) -> None:
    element.set("root", ii[0])
    if ii[1]:
        element.set("extension", ii[1])


def _code_attrs(code: Code) -> dict[str, str]:
    attrs = {"code": code.code, "codeSystem": code.code_system}
    if code.display_name:
        attrs["displayName"] = code.display_name
    return attrs


def _write_patient(parent: ET.Element, patient: PatientIdentity) -> None:
    role = _sub(_sub(parent, "recordTarget"), "patientRole")
    if patient.ins is not None:
        _sub(role, "id", root=patient.ins.oid, extension=patient.ins.matricule)
    for root, extension in patient.other_ids:
        _sub(role, "id", root=root, extension=extension)
    person = _sub(role, "patient")
    name = _sub(person, "name")
    if patient.given_names:
        _sub(name, "given", qualifier="BR").text = " ".join(patient.given_names)
    if patient.birth_name:
        _sub(name, "family", qualifier="BR").text = patient.birth_name
    if patient.sex:
        _sub(person, "administrativeGenderCode", code=patient.sex, codeSystem=GENDER_OID)
    if patient.birth_date:
        _sub(person, "birthTime", value=patient.birth_date.strftime("%Y%m%d"))
    if patient.birthplace:
        place = _sub(_sub(person, "birthplace"), "place")
        _sub(_sub(place, "addr"), "county").text = patient.birthplace


def _write_author(parent: ET.Element, author: Author, when: datetime, tag: str) -> None:
    element = _sub(parent, tag)
    _sub(element, "time", value=format_ts(author.time or when))
    if tag == "legalAuthenticator":
        _sub(element, "signatureCode", code="S")
        assigned = _sub(element, "assignedEntity")
    else:
        assigned = _sub(element, "assignedAuthor")
    if author.idnat:
        _sub(assigned, "id", root=IDNAT_PS_OID, extension=author.idnat)
    else:
        _sub(assigned, "id", nullFlavor="UNK")
    name = _sub(_sub(assigned, "assignedPerson"), "name")
    if author.prefix:
        _sub(name, "prefix").text = author.prefix
    if author.given:
        _sub(name, "given").text = author.given
    if author.family:
        _sub(name, "family").text = author.family
    if author.organisation or author.organisation_id:
        organisation = _sub(assigned, "representedOrganization")
        if author.organisation_id:
            _sub(organisation, "id", root=IDNAT_STRUCT_OID, extension=author.organisation_id)
        if author.organisation:
            _sub(organisation, "name").text = author.organisation


def build_cda(
    document: CdaDocument,
    *,
    sections: Sequence[Section] = (),
    pdf: bytes | None = None,
) -> bytes:
    """A CDA R2 document (UTF-8, with XML declaration): the header of ``document`` and either a
    ``structuredBody`` of ``sections`` or a ``nonXMLBody`` holding ``pdf`` in base64."""
    if (pdf is None) == (not sections):
        raise ValueError("a CDA body is either structured sections or a PDF, exactly one")
    ET.register_namespace("", HL7)
    ET.register_namespace("xsi", XSI)
    root = ET.Element(f"{{{HL7}}}ClinicalDocument")
    _sub(root, "realmCode", code="FR")
    _sub(root, "typeId", root=CDA_TYPE_ID[0], extension=CDA_TYPE_ID[1])
    _sub(root, "templateId", root=CISIS_HEADER_TEMPLATE)
    _set_ii(_sub(root, "id"), document.document_id)
    _sub(root, "code", **_code_attrs(document.code))
    _sub(root, "title").text = document.title
    _sub(root, "effectiveTime", value=format_ts(document.effective_time))
    _sub(root, "confidentialityCode", **_code_attrs(document.confidentiality))
    _sub(root, "languageCode", code=document.language_code)
    _set_ii(_sub(root, "setId"), document.set_id or document.document_id)
    _sub(root, "versionNumber", value=str(document.version_number))
    _write_patient(root, document.patient)
    _write_author(root, document.author, document.effective_time, "author")
    custodian = _sub(
        _sub(_sub(root, "custodian"), "assignedCustodian"), "representedCustodianOrganization"
    )
    custodian_id = _sub(custodian, "id", root=document.custodian.id_root)
    if document.custodian.id_extension:
        custodian_id.set("extension", document.custodian.id_extension)
    _sub(custodian, "name").text = document.custodian.name
    _write_author(root, document.author, document.effective_time, "legalAuthenticator")
    if document.replaces is not None:
        related = _sub(root, "relatedDocument", typeCode="RPLC")
        _set_ii(_sub(_sub(related, "parentDocument"), "id"), document.replaces)
    component = _sub(root, "component")
    if pdf is not None:
        body = _sub(component, "nonXMLBody")
        text = _sub(body, "text", mediaType="application/pdf", representation="B64")
        text.text = base64.b64encode(pdf).decode("ascii")
    else:
        body = _sub(component, "structuredBody")
        for section in sections:
            element = _sub(_sub(body, "component"), "section")
            if section.code is not None:
                _sub(element, "code", **_code_attrs(section.code))
            _sub(element, "title").text = section.title
            text = _sub(element, "text")
            for paragraph in section.paragraphs:
                _sub(text, "paragraph").text = paragraph
    written: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return written


def read_sections(data: bytes) -> tuple[Section, ...]:
    """The sections of a structured body as plain text (title, then each paragraph or list
    item of its narrative block): what a patient's page shows, with no markup of the sender's
    kept. A nonXMLBody has none."""
    root = _parse_xml(data, "CDA")
    found: list[Section] = []
    for section in root.iterfind(".//h:structuredBody/h:component/h:section", _NS):
        heading = _find(section, "h:title")
        title = " ".join("".join(heading.itertext()).split()) if heading is not None else ""
        text = _find(section, "h:text")
        paragraphs: list[str] = []
        if text is not None:
            kinds = {f"{{{HL7}}}{tag}" for tag in ("paragraph", "item", "td", "th")}
            blocks = [e for e in text.iter() if e.tag in kinds]
            for block in blocks or [text]:
                line = " ".join("".join(block.itertext()).split())
                if line:
                    paragraphs.append(line)
        found.append(Section(title, tuple(paragraphs), _code(_find(section, "h:code"))))
    return tuple(found)


def utc_now() -> datetime:
    return datetime.now(UTC)
