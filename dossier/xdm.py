"""IHE XDM: build and parse ``IHE_XDM.zip``, the attachment that carries CDA documents in
MSSanté messages (Réf#2 ECO.2.1.1-2.1.2).

Layout (IHE ITI TF-2b §3.32.4.1.4 "Media content", ITI-32 Distribute Document Set on Media)::

    README.TXT                      who made the media, how to read it
    INDEX.HTM                       a browsable list of the documents
    IHE_XDM/SUBSET01/METADATA.XML   ebRIM 3.0 SubmitObjectsRequest (ITI TF-3 §4.2)
    IHE_XDM/SUBSET01/DOC0001.XML    a CDA R2 document, named by its DocumentEntry's URI slot
    IHE_XDM/SUBSET01/DOC0001.PDF    optional: its PDF rendering (MSSanté ECO.2.1.5)

METADATA.XML holds one SubmissionSet (RegistryPackage) and one DocumentEntry
(ExtrinsicObject) per document with the classifications and external identifiers of ITI TF-3
§4.2.3.2 and the French values of the CI-SIS (ANS "Volet Partage de documents de santé",
value sets JDV_J06/J07/J57/J58/J66). A PDF rendering is a DocumentEntry of its own, linked to
its CDA by an XFRM ("transformation") association (ITI TF-3 §4.2.2.2.4). The restriction
flags are encoded as docs/decisions.md "Dossier formats" says: MASQUE_PS, INVISIBLE_PATIENT
and INVISIBLE_REPRESENTANTS_LEGAUX as confidentialityCode values of TRE_A07
(1.2.250.1.213.1.1.4.13), CONNEXION_SECRETE in the extra slot ``urn:hygie:metaDMPMSS``.

Parsing trusts nothing: the archive's central directory, every name, every size and every
ratio is checked, and decompression is metered as it streams (a member's header is never
believed). Any refusal is an :class:`~dossier.errors.XdmError` with a reason and the MSSanté
integration error code (906 unless the problem is the patient's identity, 903-905).
"""

from __future__ import annotations

import hashlib
import html
import io
import re
import struct
import uuid
import xml.etree.ElementTree as ET  # building only; parsing goes through defusedxml
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from dossier.cda import (
    CONFIDENTIALITY_OID,
    IDNAT_PS_OID,
    IDNAT_STRUCT_OID,
    Author,
    CdaHeader,
    Code,
    parse_cda,
)
from dossier.errors import INS_MISSING, OTHER, CdaError, InsError, XdmError
from dossier.ins import Ins, parse_patient_id

# --- ebRIM 3.0 names (OASIS ebXML RegRep 3.0; ITI TF-3 §4.2.5) -------------------------------

LCM: Final = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
RIM: Final = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
RS: Final = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
_NS: Final = {"lcm": LCM, "rim": RIM, "rs": RS}

# ITI TF-3 §4.2.5.1 Table 4.2.5.1-1: the UUIDs of the metadata attributes
DOCUMENT_ENTRY: Final = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"  # stable DocumentEntry
SUBMISSION_SET: Final = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
DE_AUTHOR: Final = "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d"
DE_CLASS_CODE: Final = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"
DE_CONFIDENTIALITY: Final = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"
DE_FORMAT_CODE: Final = "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d"
DE_FACILITY_TYPE: Final = "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1"
DE_PRACTICE_SETTING: Final = "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead"
DE_TYPE_CODE: Final = "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983"
DE_PATIENT_ID: Final = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
DE_UNIQUE_ID: Final = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"
SS_AUTHOR: Final = "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d"
SS_CONTENT_TYPE: Final = "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500"
SS_PATIENT_ID: Final = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"
SS_SOURCE_ID: Final = "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832"
SS_UNIQUE_ID: Final = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"
HAS_MEMBER: Final = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
XFRM: Final = "urn:ihe:iti:2007:AssociationType:XFRM"
_CLASSIFICATION: Final = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Classification"
_ASSOCIATION: Final = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Association"
_EXTERNAL_ID: Final = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:ExternalIdentifier"

# --- French codes (CI-SIS value sets; see docs/decisions.md for the [I] defaults) -----------

CLASS_CODE_OID: Final = "1.2.250.1.213.1.1.4.1"  # TRE_A03-ClasseDocument (JDV_J57 for the DMP)
CLASS_COMPTE_RENDU: Final = Code("10", CLASS_CODE_OID, "Compte rendu")
CLASS_SYNTHESE: Final = Code("11", CLASS_CODE_OID, "Synthèse")
CLASS_IMAGERIE: Final = Code("31", CLASS_CODE_OID, "Imagerie médicale")
CLASS_PRESCRIPTION: Final = Code("42", CLASS_CODE_OID, "Prescription")
FORMAT_CODE_OID: Final = "1.3.6.1.4.1.19376.1.2.3"  # IHE format codes
FORMAT_PDF_IN_CDA: Final = Code("urn:ihe:iti:xds-sd:pdf:2008", FORMAT_CODE_OID, "PDF in CDA")
FORMAT_MIME_SUFFICIENT: Final = Code(
    "urn:ihe:iti:xds:2017:mimeTypeSufficient", FORMAT_CODE_OID, "Format from mimeType"
)
FACILITY_TYPE_OID: Final = "1.2.250.1.71.4.2.4"  # TRE_R02-SecteurActivite (JDV_J61)
FACILITY_CABINET: Final = Code("SA07", FACILITY_TYPE_OID, "Cabinet individuel")
PRACTICE_SETTING_OID: Final = "1.2.250.1.213.1.1.4.9"  # TRE_A00/A01 cadre d'exercice (JDV_J04)
PRACTICE_AMBULATOIRE: Final = Code("AMBULATOIRE", PRACTICE_SETTING_OID, "Ambulatoire")

# Restriction flags (MetaDMPMSS table of the HL7 v2 volet "Transmission de documents CDA R2";
# TRE_A07-StatutVisibiliteDocument, OID 1.2.250.1.213.1.1.4.13, for the three that XDS carries
# as confidentialityCode values, JDV_J58-ConfidentialityCode-DMP).
VISIBILITY_OID: Final = "1.2.250.1.213.1.1.4.13"
MASQUE_PS: Final = "MASQUE_PS"
INVISIBLE_PATIENT: Final = "INVISIBLE_PATIENT"
#: The attachment that carries an XDM archive in an MSSanté message (IHE ITI TF-1 §16).
XDM_NAME: Final = "IHE_XDM.zip"
INVISIBLE_REPRESENTANTS_LEGAUX: Final = "INVISIBLE_REPRESENTANTS_LEGAUX"
CONNEXION_SECRETE: Final = "CONNEXION_SECRETE"  # noqa: S105 (a flag name, not a secret)
RESTRICTIONS: Final = frozenset(
    {MASQUE_PS, INVISIBLE_PATIENT, INVISIBLE_REPRESENTANTS_LEGAUX, CONNEXION_SECRETE}
)
_VISIBILITY_LABELS: Final = {
    MASQUE_PS: "Masqué aux professionnels de santé",
    INVISIBLE_PATIENT: "Non visible par le patient",
    INVISIBLE_REPRESENTANTS_LEGAUX: "Non visible par les représentants légaux du patient",
}
# The HL7 v2 OBX names were cut to 20 characters; read them as the TRE_A07 codes.
_RESTRICTION_ALIASES: Final = {"INVISIBLE_REP_LEGAUX": INVISIBLE_REPRESENTANTS_LEGAUX}
META_DMP_MSS_SLOT: Final = "urn:hygie:metaDMPMSS"  # extra metadata, ITI TF-3 §4.2.3.1.5

SUBSET_DIR: Final = "IHE_XDM/SUBSET01"
METADATA_NAME: Final = "METADATA.XML"


# --- what parsing gives ------------------------------------------------------------------------


@dataclass(frozen=True)
class DocumentEntry:
    """An XDS DocumentEntry (ITI TF-3 §4.2.3.2), as METADATA.XML states it."""

    entry_id: str  # the ExtrinsicObject's id (entryUUID or a symbolic id)
    unique_id: str
    patient_id: Ins
    mime_type: str
    type_code: Code
    class_code: Code
    format_code: Code
    confidentiality: tuple[Code, ...]
    restrictions: frozenset[str]
    authors: tuple[Author, ...]
    creation_time: datetime
    hash: str  # SHA-1, lower-case hex
    size: int
    uri: str
    title: str | None = None
    healthcare_facility_type: Code | None = None
    practice_setting: Code | None = None
    language_code: str | None = None
    service_start: datetime | None = None
    transformation_of: str | None = None  # entry id of the document this one renders (XFRM)


@dataclass(frozen=True)
class XdmDocument:
    """A document of the archive: its metadata, its bytes (hash and size checked), and for a
    CDA its parsed header (patient checked against the metadata)."""

    entry: DocumentEntry
    content: bytes
    path: str
    cda: CdaHeader | None

    @property
    def restrictions(self) -> frozenset[str]:
        return self.entry.restrictions


@dataclass(frozen=True)
class SubmissionSet:
    """The XDS SubmissionSet (ITI TF-3 §4.2.3.3)."""

    unique_id: str
    source_id: str
    patient_id: Ins
    submission_time: datetime
    authors: tuple[Author, ...]
    title: str | None
    intended_recipients: tuple[str, ...]  # e-mail addresses of the XTN part
    content_type: Code | None


@dataclass(frozen=True)
class XdmPackage:
    submission_set: SubmissionSet
    documents: tuple[XdmDocument, ...]

    @property
    def patient(self) -> Ins:
        """The patient, read from patientId in METADATA.XML (MSSanté ECO.2.1.2)."""
        return self.submission_set.patient_id

    @property
    def cda_documents(self) -> tuple[XdmDocument, ...]:
        return tuple(d for d in self.documents if d.cda is not None)

    def rendering_of(self, document: XdmDocument) -> XdmDocument | None:
        """The PDF rendering of ``document`` carried in the archive, if any."""
        for other in self.documents:
            if other.entry.transformation_of == document.entry.entry_id:
                return other
        return None


@dataclass(frozen=True)
class XdmLimits:
    """What an archive may cost to open. The defaults fit MSSanté mail (25 MB to Mon espace
    santé) with room for XML's compressibility."""

    max_archive_bytes: int = 32 * 1024 * 1024
    max_members: int = 64
    max_member_bytes: int = 32 * 1024 * 1024
    max_total_bytes: int = 96 * 1024 * 1024
    max_metadata_bytes: int = 4 * 1024 * 1024
    max_ratio: int = 200  # uncompressed / compressed, once a member passes ratio_floor bytes
    ratio_floor: int = 1024 * 1024
    max_documents: int = 32


# --- the archive ------------------------------------------------------------------------------

_BAD_NAME_CHARS = re.compile(r"[\x00-\x1f\\:*?\"<>|]")


def _check_name(name: str) -> str:
    """A member name that is safe to honour: relative, no ``..``, no drive, no control
    characters or backslashes (APPNOTE 4.4.17: forward slashes only)."""
    if not name or name.startswith("/") or _BAD_NAME_CHARS.search(name):
        raise XdmError("archive member with an absolute or unsafe name")
    parts = name.rstrip("/").split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise XdmError("archive member name with '..', '.' or an empty component")
    return name


class _Archive:
    """The checked central directory and a metered reader over it."""

    def __init__(self, data: bytes, limits: XdmLimits) -> None:
        if len(data) > limits.max_archive_bytes:
            raise XdmError(f"IHE_XDM.zip larger than {limits.max_archive_bytes} bytes")
        self.limits = limits
        self.total = 0
        # APPNOTE 4.3.16: the end of central directory record says how many entries follow;
        # refuse a crowd before zipfile builds an object for each of them.
        end = data.rfind(b"PK\x05\x06", max(0, len(data) - 0xFFFF - 22))
        if end >= 0 and end + 22 <= len(data):
            entries = struct.unpack_from("<H", data, end + 10)[0]
            if entries != 0xFFFF and entries > limits.max_members:  # 0xFFFF: see ZIP64 record
                raise XdmError(f"IHE_XDM.zip has more than {limits.max_members} members")
        self.zip = zipfile.ZipFile(io.BytesIO(data))
        infos = self.zip.infolist()
        if len(infos) > limits.max_members:
            raise XdmError(f"IHE_XDM.zip has more than {limits.max_members} members")
        self.members: dict[str, zipfile.ZipInfo] = {}
        folded: set[str] = set()
        compressed = 0
        for info in infos:
            name = _check_name(info.filename)
            if name.casefold() in folded:  # ISO 9660 / FAT media fold case (ITI TF-2b §3.32)
                raise XdmError("IHE_XDM.zip has two members with the same name")
            folded.add(name.casefold())
            if info.flag_bits & 0x1:  # APPNOTE 4.4.4 bit 0: encrypted
                raise XdmError("IHE_XDM.zip has an encrypted member")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise XdmError("IHE_XDM.zip member compressed other than stored or deflated")
            if info.file_size > limits.max_member_bytes:
                raise XdmError(f"archive member declared larger than {limits.max_member_bytes}")
            compressed += info.compress_size
            if not name.endswith("/"):
                self.members[name] = info
        if compressed > len(data):
            raise XdmError("IHE_XDM.zip members declare more bytes than the archive holds")

    def find(self, name: str) -> zipfile.ZipInfo | None:
        info = self.members.get(name)
        if info is None:  # media written by hand or by Windows tools may change the case
            matches = [i for n, i in self.members.items() if n.casefold() == name.casefold()]
            info = matches[0] if matches else None
        return info

    def read(self, info: zipfile.ZipInfo, limit: int) -> bytes:
        """The member's bytes, decompressed in chunks and stopped at the first limit passed:
        the member limit, the archive total, the ratio to the compressed bytes. zipfile reads
        at most ``compress_size`` compressed bytes and checks the CRC at the end, so a member
        that inflates past its declared size fails too."""
        limit = min(limit, self.limits.max_member_bytes)
        out = bytearray()
        with self.zip.open(info) as stream:
            while True:
                try:
                    chunk = stream.read(64 * 1024)
                except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
                    raise XdmError(
                        "archive member does not inflate to its declared size and CRC"
                    ) from exc
                if not chunk:
                    break
                out += chunk
                self.total += len(chunk)
                if len(out) > limit:
                    raise XdmError(f"archive member larger than {limit} bytes once inflated")
                if self.total > self.limits.max_total_bytes:
                    raise XdmError("IHE_XDM.zip inflates past its total size limit")
                if len(out) > self.limits.ratio_floor and len(out) > self.limits.max_ratio * max(
                    info.compress_size, 1
                ):
                    raise XdmError("archive member compression ratio too high (zip bomb)")
        if len(out) != info.file_size:
            raise XdmError("archive member size differs from its header")
        return bytes(out)


# --- metadata parsing ------------------------------------------------------------------------


def _slot(element: ET.Element, name: str) -> list[str]:
    for slot in element.findall("rim:Slot", _NS):
        if slot.get("name") == name:
            return [(v.text or "").strip() for v in slot.findall("rim:ValueList/rim:Value", _NS)]
    return []


def _slot1(element: ET.Element, name: str) -> str | None:
    values = _slot(element, name)
    return values[0] if values else None


def _localized(element: ET.Element, path: str) -> str | None:
    string = element.find(f"{path}/rim:LocalizedString", _NS)
    return string.get("value") if string is not None else None


def _dtm(value: str | None, what: str) -> datetime | None:
    """An XDS DTM (UTC, ``YYYY[MM[DD[hh[mm[ss]]]]]``; ITI TF-3 §4.2.3.1.4)."""
    if value is None:
        return None
    if not re.fullmatch(r"\d{4}(?:\d{2}){0,5}", value):
        raise XdmError(f"{what} is not an XDS time (YYYYMMDDhhmmss, UTC)")
    padded = value + "0101000000"[len(value) - 4 :] if len(value) < 14 else value
    try:
        return datetime.strptime(padded, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError as exc:
        raise XdmError(f"{what} out of range") from exc


def _classifications(element: ET.Element, scheme: str) -> list[ET.Element]:
    return [
        c
        for c in element.findall("rim:Classification", _NS)
        if c.get("classificationScheme") == scheme
    ]


def _coded(element: ET.Element, scheme: str, what: str, required: bool = True) -> Code | None:
    found = _classifications(element, scheme)
    if not found:
        if required:
            raise XdmError(f"DocumentEntry without {what}")
        return None
    return _classification_code(found[0], what)


def _classification_code(c: ET.Element, what: str) -> Code:
    code = c.get("nodeRepresentation") or ""
    system = _slot1(c, "codingScheme")
    if not code or not system:
        raise XdmError(f"{what} without a code or codingScheme")
    return Code(code, system, _localized(c, "rim:Name"))


def _external_id(element: ET.Element, scheme: str) -> str | None:
    for ext in element.findall("rim:ExternalIdentifier", _NS):
        if ext.get("identificationScheme") == scheme:
            return ext.get("value")
    return None


def _patient(value: str | None, what: str) -> Ins:
    if not value:
        raise XdmError(f"{what} without patientId", code=INS_MISSING)
    try:
        return parse_patient_id(value)
    except InsError as exc:
        raise XdmError(f"{what} patientId: {exc.reason}", code=exc.code) from exc


_XCN_ID = re.compile(r"&([0-9.]+)&ISO")


def _author_from(c: ET.Element) -> Author:
    """authorPerson (XCN) and authorInstitution (XON) slots (ITI TF-3 §4.2.3.1.4)."""
    person = (_slot1(c, "authorPerson") or "").split("^")
    institutions = _slot(c, "authorInstitution")
    person += [""] * (13 - len(person))
    idnat = person[0] or None
    authority = _XCN_ID.search(person[8])
    if idnat and authority is not None and authority.group(1) != IDNAT_PS_OID:
        idnat = None  # not a national identifier of a health professional
    organisation = organisation_id = None
    if institutions:
        xon = institutions[0].split("^")
        xon += [""] * (10 - len(xon))
        organisation, organisation_id = xon[0] or None, xon[9] or None
    return Author(
        idnat=idnat,
        family=person[1] or None,
        given=person[2] or None,
        prefix=person[5] or None,
        organisation=organisation,
        organisation_id=organisation_id,
    )


def _restrictions(entry: ET.Element, confidentiality: list[Code]) -> frozenset[str]:
    flags = {c.code for c in confidentiality if c.code_system == VISIBILITY_OID}
    flags |= set(_slot(entry, META_DMP_MSS_SLOT))
    flags = {_RESTRICTION_ALIASES.get(f, f) for f in flags}
    unknown = flags - RESTRICTIONS
    if unknown:
        raise XdmError("unknown restriction flag in DocumentEntry")
    return frozenset(flags)


def _uri(entry: ET.Element) -> str:
    uri = _slot1(entry, "URI")
    if not uri:
        raise XdmError("DocumentEntry without URI slot (required in XDM, ITI TF-3 §4.3.1)")
    if "://" in uri or uri.startswith("/") or "\\" in uri:
        raise XdmError("DocumentEntry URI is not a relative path in the subset")
    _check_name(uri)
    return uri


def _document_entry(entry: ET.Element, transformations: dict[str, str]) -> DocumentEntry:
    entry_id = entry.get("id") or ""
    unique_id = _external_id(entry, DE_UNIQUE_ID)
    if not unique_id:
        raise XdmError("DocumentEntry without uniqueId")
    confidentiality = [
        _classification_code(c, "confidentialityCode")
        for c in _classifications(entry, DE_CONFIDENTIALITY)
    ]
    if not confidentiality:
        raise XdmError("DocumentEntry without confidentialityCode")
    creation = _dtm(_slot1(entry, "creationTime"), "creationTime")
    if creation is None:
        raise XdmError("DocumentEntry without creationTime")
    hash_value = (_slot1(entry, "hash") or "").lower()
    if not re.fullmatch(r"[0-9a-f]{40}", hash_value):
        raise XdmError("DocumentEntry hash is not a SHA-1 in hex (required in XDM)")
    size = _slot1(entry, "size") or ""
    if not size.isascii() or not size.isdigit() or len(size) > 12:
        raise XdmError("DocumentEntry size is not a byte count (required in XDM)")
    type_code = _coded(entry, DE_TYPE_CODE, "typeCode")
    class_code = _coded(entry, DE_CLASS_CODE, "classCode")
    format_code = _coded(entry, DE_FORMAT_CODE, "formatCode")
    assert type_code is not None and class_code is not None and format_code is not None
    return DocumentEntry(
        entry_id=entry_id,
        unique_id=unique_id,
        patient_id=_patient(_external_id(entry, DE_PATIENT_ID), "DocumentEntry"),
        mime_type=entry.get("mimeType") or "",
        type_code=type_code,
        class_code=class_code,
        format_code=format_code,
        confidentiality=tuple(confidentiality),
        restrictions=_restrictions(entry, confidentiality),
        authors=tuple(_author_from(c) for c in _classifications(entry, DE_AUTHOR)),
        creation_time=creation,
        hash=hash_value,
        size=int(size),
        uri=_uri(entry),
        title=_localized(entry, "rim:Name"),
        healthcare_facility_type=_coded(
            entry, DE_FACILITY_TYPE, "healthcareFacilityTypeCode", required=False
        ),
        practice_setting=_coded(entry, DE_PRACTICE_SETTING, "practiceSettingCode", False),
        language_code=_slot1(entry, "languageCode"),
        service_start=_dtm(_slot1(entry, "serviceStartTime"), "serviceStartTime"),
        transformation_of=transformations.get(entry_id),
    )


def _submission_set(package: ET.Element) -> SubmissionSet:
    unique_id = _external_id(package, SS_UNIQUE_ID)
    source_id = _external_id(package, SS_SOURCE_ID)
    if not unique_id or not source_id:
        raise XdmError("SubmissionSet without uniqueId or sourceId")
    submitted = _dtm(_slot1(package, "submissionTime"), "submissionTime")
    if submitted is None:
        raise XdmError("SubmissionSet without submissionTime")
    recipients = []
    for value in _slot(package, "intendedRecipient"):
        xtn = value.split("|")[-1].split("^")  # XON|XCN|XTN; XTN.3 "Internet", XTN.4 address
        if len(xtn) >= 4 and xtn[2] == "Internet" and xtn[3]:
            recipients.append(xtn[3])
    content = _classifications(package, SS_CONTENT_TYPE)
    return SubmissionSet(
        unique_id=unique_id,
        source_id=source_id,
        patient_id=_patient(_external_id(package, SS_PATIENT_ID), "SubmissionSet"),
        submission_time=submitted,
        authors=tuple(_author_from(c) for c in _classifications(package, SS_AUTHOR)),
        title=_localized(package, "rim:Name"),
        intended_recipients=tuple(recipients),
        content_type=_classification_code(content[0], "contentTypeCode") if content else None,
    )


def _parse_metadata(data: bytes) -> tuple[SubmissionSet, list[DocumentEntry]]:
    try:
        root: ET.Element = SafeET.fromstring(
            data, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException as exc:
        raise XdmError("METADATA.XML: DTDs, entities and external references are refused") from exc
    except (ET.ParseError, ValueError, LookupError) as exc:  # LookupError: unknown encoding
        raise XdmError("METADATA.XML is not well-formed XML") from exc
    if root.tag != f"{{{LCM}}}SubmitObjectsRequest":
        raise XdmError("METADATA.XML is not an lcm:SubmitObjectsRequest (ITI TF-3 §4.2)")
    objects = root.find("rim:RegistryObjectList", _NS)
    if objects is None:
        raise XdmError("METADATA.XML has no rim:RegistryObjectList")
    # A RegistryPackage is the SubmissionSet when classified by the SubmissionSet node
    # (inside it or as a free-standing Classification).
    classified = {
        c.get("classifiedObject", "")
        for c in objects.iter(f"{{{RIM}}}Classification")
        if c.get("classificationNode") == SUBMISSION_SET
    }
    packages = [
        p
        for p in objects.findall("rim:RegistryPackage", _NS)
        if p.get("id") in classified or _external_id(p, SS_UNIQUE_ID)
    ]
    if len(packages) != 1:
        raise XdmError("METADATA.XML must hold exactly one SubmissionSet")
    transformations = {
        a.get("sourceObject", ""): a.get("targetObject", "")
        for a in objects.findall("rim:Association", _NS)
        if a.get("associationType") == XFRM
    }
    entries = [
        _document_entry(e, transformations)
        for e in objects.findall("rim:ExtrinsicObject", _NS)
        if e.get("objectType") in (DOCUMENT_ENTRY, None)
    ]
    return _submission_set(packages[0]), entries


# --- the whole archive -----------------------------------------------------------------------

_CDA_MIME_TYPES: Final = frozenset({"text/xml", "application/xml", "application/hl7-v3+xml"})


def _check_cda_against(entry: DocumentEntry, cda: CdaHeader) -> None:
    patient = cda.patient.ins
    if patient is None:
        raise XdmError("CDA recordTarget carries no INS", code=INS_MISSING)
    if patient != entry.patient_id:
        raise XdmError("METADATA.XML patientId disagrees with the CDA recordTarget", code=OTHER)
    if entry.type_code.code != cda.code.code:
        raise XdmError("DocumentEntry typeCode disagrees with the CDA code")
    if entry.unique_id != cda.unique_id:
        raise XdmError("DocumentEntry uniqueId disagrees with the CDA id")


def _parse(data: bytes, limits: XdmLimits) -> XdmPackage:
    archive = _Archive(data, limits)
    metadata_names = [n for n in archive.members if n.upper().endswith("/" + METADATA_NAME)]
    if not metadata_names:
        raise XdmError("no IHE_XDM/SUBSET01/METADATA.XML in the archive")
    if len(metadata_names) > 1:
        raise XdmError("several submission sets in one IHE_XDM.zip are not supported")
    metadata_name = metadata_names[0]
    subset = metadata_name.rsplit("/", 1)[0]
    if subset.upper().split("/")[0] != "IHE_XDM" or subset.count("/") != 1:
        raise XdmError("METADATA.XML is not in IHE_XDM/<subset>/ (ITI TF-2b §3.32.4.1.4)")
    metadata = archive.read(archive.members[metadata_name], limits.max_metadata_bytes)
    submission_set, entries = _parse_metadata(metadata)
    if not entries:
        raise XdmError("METADATA.XML lists no DocumentEntry")
    if len(entries) > limits.max_documents:
        raise XdmError(f"more than {limits.max_documents} documents in one IHE_XDM.zip")
    documents = []
    seen: set[str] = set()
    for entry in entries:
        if entry.patient_id != submission_set.patient_id:
            raise XdmError("DocumentEntry and SubmissionSet patientId differ")
        path = f"{subset}/{entry.uri}"
        if path.casefold() in seen:
            raise XdmError("two DocumentEntries name the same file")
        seen.add(path.casefold())
        info = archive.find(path)
        if info is None:
            raise XdmError("a DocumentEntry names a file missing from the archive")
        if info.file_size != entry.size:
            raise XdmError("DocumentEntry size disagrees with the file")
        content = archive.read(info, entry.size)
        if len(content) != entry.size:
            raise XdmError("DocumentEntry size disagrees with the file")
        if hashlib.sha1(content, usedforsecurity=False).hexdigest() != entry.hash:
            raise XdmError("DocumentEntry hash disagrees with the file")
        cda = None
        if entry.mime_type in _CDA_MIME_TYPES:
            try:
                cda = parse_cda(content)
            except CdaError as exc:
                raise XdmError(f"document {entry.uri}: {exc.reason}", code=exc.code) from exc
            _check_cda_against(entry, cda)
        documents.append(XdmDocument(entry=entry, content=content, path=path, cda=cda))
    ids = {e.entry_id for e in entries}
    for entry in entries:
        if entry.transformation_of is not None and entry.transformation_of not in ids:
            raise XdmError("XFRM association to a document not in the submission")
    return XdmPackage(submission_set=submission_set, documents=tuple(documents))


def parse_xdm(data: bytes, limits: XdmLimits | None = None) -> XdmPackage:
    """The documents of an ``IHE_XDM.zip`` with their metadata; raises only
    :class:`XdmError`, whatever the bytes."""
    try:
        return _parse(data, limits or XdmLimits())
    except XdmError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise XdmError("not a readable zip archive") from exc
    except (
        NotImplementedError,  # zipfile: a compression method it cannot decode
        zlib.error,
        EOFError,
        OSError,
        ValueError,
        struct.error,
        UnicodeError,
        KeyError,
        IndexError,
        OverflowError,
        RuntimeError,
    ) as exc:  # zipfile's assorted errors on damaged archives
        raise XdmError("damaged zip archive") from exc


# --- building ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutgoingDocument:
    """A CDA R2 document to put in an archive, with the metadata its header does not give."""

    cda: bytes
    class_code: Code = CLASS_COMPTE_RENDU
    healthcare_facility_type: Code = FACILITY_CABINET
    practice_setting: Code = PRACTICE_AMBULATOIRE
    format_code: Code | None = None  # default: PDF-in-CDA for a nonXMLBody, else mimeType
    restrictions: frozenset[str] = frozenset()
    pdf: bytes | None = None  # its PDF/A rendering (MSSanté ECO.2.1.5), stored alongside


def _hl7(value: str | None) -> str:
    """A value for an HL7 v2 data type component: the delimiters ^ & | ~ \\ replaced."""
    return re.sub(r"[\^&|~\\\r\n]", " ", value or "").strip()


def _xcn(author: Author) -> str:
    # XCN: ID^family^given^^^prefix^^^&OID&ISO^D^^^IDNPS (CI-SIS authorPerson)
    parts = [_hl7(author.idnat), _hl7(author.family), _hl7(author.given), "", ""]
    parts += [_hl7(author.prefix), "", ""]
    if author.idnat:
        parts += [f"&{IDNAT_PS_OID}&ISO", "D", "", "", "IDNPS"]
    return "^".join(parts).rstrip("^")


def _xon(author: Author) -> str | None:
    # XON: name^^^^^&OID&ISO^IDNST^^^identifier (CI-SIS authorInstitution)
    if not author.organisation and not author.organisation_id:
        return None
    if not author.organisation_id:
        return _hl7(author.organisation)
    return f"{_hl7(author.organisation)}^^^^^&{IDNAT_STRUCT_OID}&ISO^IDNST^^^" + _hl7(
        author.organisation_id
    )


def _dtm_text(when: datetime) -> str:
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.strftime("%Y%m%d%H%M%S")


class _Writer:
    def __init__(self) -> None:
        ET.register_namespace("lcm", LCM)
        ET.register_namespace("rim", RIM)
        ET.register_namespace("rs", RS)
        self.root = ET.Element(f"{{{LCM}}}SubmitObjectsRequest")
        self.objects = ET.SubElement(self.root, f"{{{RIM}}}RegistryObjectList")
        self.counter = 0

    def new_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter:02d}"

    @staticmethod
    def slot(parent: ET.Element, name: str, values: Iterable[str]) -> None:
        slot = ET.SubElement(parent, f"{{{RIM}}}Slot", {"name": name})
        value_list = ET.SubElement(slot, f"{{{RIM}}}ValueList")
        for value in values:
            ET.SubElement(value_list, f"{{{RIM}}}Value").text = value

    @staticmethod
    def name(parent: ET.Element, value: str) -> None:
        element = ET.SubElement(parent, f"{{{RIM}}}Name")
        ET.SubElement(element, f"{{{RIM}}}LocalizedString", {"value": value})

    def classification(
        self, parent: ET.Element, scheme: str, code: Code | None, obj: str
    ) -> ET.Element:
        element = ET.SubElement(
            parent,
            f"{{{RIM}}}Classification",
            {
                "classificationScheme": scheme,
                "classifiedObject": obj,
                "id": self.new_id("cl"),
                "nodeRepresentation": code.code if code else "",
                "objectType": _CLASSIFICATION,
            },
        )
        if code is not None:
            self.slot(element, "codingScheme", [code.code_system])
            self.name(element, code.display_name or code.code)
        return element

    def author(self, parent: ET.Element, scheme: str, author: Author, obj: str) -> None:
        element = self.classification(parent, scheme, None, obj)
        self.slot(element, "authorPerson", [_xcn(author)])
        institution = _xon(author)
        if institution:
            self.slot(element, "authorInstitution", [institution])

    def external_id(
        self, parent: ET.Element, scheme: str, value: str, obj: str, label: str
    ) -> None:
        element = ET.SubElement(
            parent,
            f"{{{RIM}}}ExternalIdentifier",
            {
                "id": self.new_id("ei"),
                "identificationScheme": scheme,
                "objectType": _EXTERNAL_ID,
                "registryObject": obj,
                "value": value,
            },
        )
        self.name(element, label)

    def association(self, kind: str, source: str, target: str) -> None:
        element = ET.SubElement(
            self.objects,
            f"{{{RIM}}}Association",
            {
                "associationType": kind,
                "id": self.new_id("as"),
                "objectType": _ASSOCIATION,
                "sourceObject": source,
                "targetObject": target,
            },
        )
        if kind == HAS_MEMBER:
            self.slot(element, "SubmissionSetStatus", ["Original"])

    def document_entry(
        self,
        entry_id: str,
        *,
        mime_type: str,
        content: bytes,
        uri: str,
        cda: CdaHeader,
        unique_id: str,
        outgoing: OutgoingDocument,
        format_code: Code,
        title: str,
    ) -> None:
        assert cda.patient.ins is not None
        element = ET.SubElement(
            self.objects,
            f"{{{RIM}}}ExtrinsicObject",
            {"id": entry_id, "mimeType": mime_type, "objectType": DOCUMENT_ENTRY},
        )
        created = cda.effective_time
        self.slot(element, "creationTime", [_dtm_text(created)])
        self.slot(element, "hash", [hashlib.sha1(content, usedforsecurity=False).hexdigest()])
        self.slot(element, "languageCode", [cda.language_code or "fr-FR"])
        self.slot(element, "serviceStartTime", [_dtm_text(created)])
        self.slot(element, "size", [str(len(content))])
        self.slot(element, "sourcePatientId", [cda.patient.ins.patient_id])
        self.slot(element, "URI", [uri])
        flags = sorted(outgoing.restrictions - set(_VISIBILITY_LABELS))
        if flags:
            self.slot(element, META_DMP_MSS_SLOT, flags)
        self.name(element, title)
        for author in cda.authors:
            self.author(element, DE_AUTHOR, author, entry_id)
        self.classification(element, DE_CLASS_CODE, outgoing.class_code, entry_id)
        self.classification(element, DE_CONFIDENTIALITY, cda.confidentiality, entry_id)
        for flag in sorted(outgoing.restrictions & set(_VISIBILITY_LABELS)):
            code = Code(flag, VISIBILITY_OID, _VISIBILITY_LABELS[flag])
            self.classification(element, DE_CONFIDENTIALITY, code, entry_id)
        self.classification(element, DE_FORMAT_CODE, format_code, entry_id)
        self.classification(element, DE_FACILITY_TYPE, outgoing.healthcare_facility_type, entry_id)
        self.classification(element, DE_PRACTICE_SETTING, outgoing.practice_setting, entry_id)
        self.classification(element, DE_TYPE_CODE, cda.code, entry_id)
        self.external_id(
            element,
            DE_PATIENT_ID,
            cda.patient.ins.patient_id,
            entry_id,
            "XDSDocumentEntry.patientId",
        )
        self.external_id(element, DE_UNIQUE_ID, unique_id, entry_id, "XDSDocumentEntry.uniqueId")


def new_oid() -> str:
    """A fresh UUID-derived OID (ITU-T X.667 §6.3)."""
    return f"2.25.{uuid.uuid4().int}"


_README: Final = """IHE XDM media / support IHE XDM

Producteur / producer: {vendor}
Créé le / created: {created} UTC
Contenu / content: {count} document(s) dans IHE_XDM/SUBSET01 (METADATA.XML, DOCnnnn.XML).

Ce support suit le profil IHE ITI XDM (Cross-Enterprise Document Media Interchange).
Ouvrez INDEX.HTM pour la liste des documents.
This media follows the IHE ITI XDM profile; open INDEX.HTM for the list of documents.
"""


def _index(rows: Sequence[tuple[str, str, str]]) -> str:
    items = "\n".join(
        f'<li><a href="{html.escape(path)}">{html.escape(title)}</a> ({html.escape(kind)})</li>'
        for path, title, kind in rows
    )
    return (
        '<!DOCTYPE html>\n<html lang="fr"><head><meta charset="utf-8">'
        "<title>IHE XDM</title></head><body>\n<h1>Documents</h1>\n<ul>\n"
        f"{items}\n</ul>\n"
        '<p><a href="README.TXT">README.TXT</a></p>\n</body></html>\n'
    )


def build_xdm(
    documents: Sequence[OutgoingDocument],
    *,
    source_id: str,
    submission_author: Author | None = None,
    intended_recipients: Sequence[str] = (),
    content_type: Code | None = None,
    title: str | None = None,
    vendor: str = "Hygie",
    submission_unique_id: str | None = None,
    now: datetime | None = None,
) -> bytes:
    """An ``IHE_XDM.zip`` holding ``documents`` (CDA R2, each with an optional PDF rendering)
    for one patient. DocumentEntry values come from each CDA header (patientId, typeCode,
    uniqueId, author, creationTime, confidentiality) and from ``OutgoingDocument``."""
    if not documents:
        raise ValueError("an IHE_XDM.zip holds at least one document")
    when = now or datetime.now(UTC)
    headers = [parse_cda(d.cda) for d in documents]
    patients = {h.patient.ins for h in headers}
    if None in patients:
        raise XdmError("a CDA without an INS in recordTarget cannot be sent", code=INS_MISSING)
    if len(patients) != 1:
        raise XdmError("one IHE_XDM.zip carries documents of one patient (ECO.2.1.1)")
    for document in documents:
        if document.restrictions - RESTRICTIONS:
            raise ValueError(f"restriction flags are {sorted(RESTRICTIONS)}")
    patient = headers[0].patient.ins
    assert patient is not None

    writer = _Writer()
    package_id = "SubmissionSet01"
    files: list[tuple[str, bytes]] = []
    index_rows: list[tuple[str, str, str]] = []
    members: list[str] = []
    for number, (document, header) in enumerate(zip(documents, headers, strict=True), 1):
        uri = f"DOC{number:04d}.XML"
        entry_id = f"Document{number:02d}"
        format_code = document.format_code or (
            FORMAT_PDF_IN_CDA if header.body.kind == "nonXML" else FORMAT_MIME_SUFFICIENT
        )
        writer.document_entry(
            entry_id,
            mime_type="text/xml",
            content=document.cda,
            uri=uri,
            cda=header,
            unique_id=header.unique_id,
            outgoing=document,
            format_code=format_code,
            title=header.title,
        )
        files.append((f"{SUBSET_DIR}/{uri}", document.cda))
        index_rows.append((f"{SUBSET_DIR}/{uri}", header.title, "CDA R2"))
        members.append(entry_id)
        if document.pdf is not None:
            pdf_uri = f"DOC{number:04d}.PDF"
            pdf_id = f"{entry_id}PDF"
            writer.document_entry(
                pdf_id,
                mime_type="application/pdf",
                content=document.pdf,
                uri=pdf_uri,
                cda=header,
                unique_id=new_oid(),
                outgoing=document,
                format_code=FORMAT_MIME_SUFFICIENT,
                title=f"{header.title} (PDF)",
            )
            writer.association(XFRM, pdf_id, entry_id)  # ITI TF-3 §4.2.2.2.4
            files.append((f"{SUBSET_DIR}/{pdf_uri}", document.pdf))
            index_rows.append((f"{SUBSET_DIR}/{pdf_uri}", header.title, "PDF"))
            members.append(pdf_id)

    package = ET.Element(f"{{{RIM}}}RegistryPackage", {"id": package_id})
    writer.objects.insert(0, package)
    writer.slot(package, "submissionTime", [_dtm_text(when)])
    if intended_recipients:
        writer.slot(
            package, "intendedRecipient", [f"||^^Internet^{_hl7(a)}" for a in intended_recipients]
        )
    writer.name(package, title or headers[0].title)
    author = submission_author or headers[0].authors[0]
    writer.author(package, SS_AUTHOR, author, package_id)
    if content_type is not None:
        writer.classification(package, SS_CONTENT_TYPE, content_type, package_id)
    writer.external_id(
        package,
        SS_UNIQUE_ID,
        submission_unique_id or new_oid(),
        package_id,
        "XDSSubmissionSet.uniqueId",
    )
    writer.external_id(package, SS_SOURCE_ID, source_id, package_id, "XDSSubmissionSet.sourceId")
    writer.external_id(
        package, SS_PATIENT_ID, patient.patient_id, package_id, "XDSSubmissionSet.patientId"
    )
    ET.SubElement(
        writer.objects,
        f"{{{RIM}}}Classification",
        {
            "classificationNode": SUBMISSION_SET,
            "classifiedObject": package_id,
            "id": writer.new_id("cl"),
            "objectType": _CLASSIFICATION,
        },
    )
    for member in members:
        writer.association(HAS_MEMBER, package_id, member)
    metadata: bytes = ET.tostring(writer.root, encoding="utf-8", xml_declaration=True)

    out = io.BytesIO()
    stamp = when.astimezone(UTC).timetuple()[:6] if when.tzinfo else when.timetuple()[:6]
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:

        def add(name: str, content: bytes) -> None:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, content)

        add(
            "README.TXT",
            _README.format(vendor=vendor, created=_dtm_text(when), count=len(documents))
            .replace("\n", "\r\n")
            .encode("utf-8"),
        )
        add("INDEX.HTM", _index(index_rows).encode("utf-8"))
        add(f"{SUBSET_DIR}/{METADATA_NAME}", metadata)
        for name, content in files:
            add(name, content)
    return out.getvalue()


__all__ = [
    "CLASS_COMPTE_RENDU",
    "CLASS_IMAGERIE",
    "CLASS_PRESCRIPTION",
    "CLASS_SYNTHESE",
    "CONFIDENTIALITY_OID",
    "CONNEXION_SECRETE",
    "INVISIBLE_PATIENT",
    "INVISIBLE_REPRESENTANTS_LEGAUX",
    "MASQUE_PS",
    "RESTRICTIONS",
    "DocumentEntry",
    "OutgoingDocument",
    "SubmissionSet",
    "XdmDocument",
    "XdmError",
    "XdmLimits",
    "XdmPackage",
    "build_xdm",
    "new_oid",
    "parse_xdm",
]
