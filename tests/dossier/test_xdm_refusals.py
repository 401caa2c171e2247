"""Malicious and inconsistent IHE_XDM.zip archives: each is refused with an XdmError whose
reason says why and whose code is the MSSanté integration error it becomes (906 unless the
patient's identity is at stake)."""

from __future__ import annotations

import functools
import io
import struct
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dossier.errors import XdmError
from dossier.xdm import XdmLimits, parse_xdm
from tests.dossier.archives import (
    DOC1,
    METADATA,
    edit_metadata,
    honest,
    members,
    replace_document,
    rezip,
    sample,
)


def refused(archive: bytes, reason: str, limits: XdmLimits | None = None) -> XdmError:
    with pytest.raises(XdmError, match=reason) as caught:
        parse_xdm(archive, limits)
    return caught.value


# --- the archive itself -------------------------------------------------------------------------


def test_not_a_zip() -> None:
    assert refused(b"PK\x03\x04 certainly not a zip", "not a readable zip").code == 906


def test_zip_bomb_by_ratio() -> None:
    # 8 MiB of zeros deflate to ~8 KiB: a ratio near 1000, far above the limit of 200
    files = members(honest())
    files[METADATA] = files[METADATA] + b"<!--" + b" " * (8 * 1024 * 1024) + b"-->"
    assert len(rezip(files)) < 100 * 1024
    refused(rezip(files), "ratio too high")


def test_zip_bomb_by_total_size() -> None:
    archive = honest()
    limits = XdmLimits(max_total_bytes=4096)  # the metadata alone passes it
    refused(archive, "total size limit", limits)


def test_member_declared_larger_than_the_limit() -> None:
    refused(honest(), "declared larger", XdmLimits(max_member_bytes=1024))


def _local_header(data: bytearray, name: str) -> int:
    """Offset of the local file header of ``name`` (APPNOTE 4.3.7)."""
    at = 0
    while (at := data.find(b"PK\x03\x04", at)) != -1:
        name_length = struct.unpack_from("<H", data, at + 26)[0]
        if data[at + 30 : at + 30 + name_length] == name.encode():
            return at
        at += 4
    raise AssertionError(name)


def _central_header(data: bytearray, name: str) -> int:
    """Offset of the central directory header of ``name`` (APPNOTE 4.3.12)."""
    at = 0
    while (at := data.find(b"PK\x01\x02", at)) != -1:
        name_length = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46 : at + 46 + name_length] == name.encode():
            return at
        at += 4
    raise AssertionError(name)


def _patch_sizes(archive: bytes, name: str, declared: int) -> bytes:
    """Rewrite the uncompressed size of ``name`` in both its headers: the member now lies
    about how much it inflates to."""
    data = bytearray(archive)
    struct.pack_into("<I", data, _local_header(data, name) + 22, declared)
    struct.pack_into("<I", data, _central_header(data, name) + 24, declared)
    return bytes(data)


def test_huge_member_declared_small_is_not_inflated_past_its_declaration() -> None:
    # METADATA.XML inflates to 4 MiB but both headers say 2 KiB: reading stops at 2 KiB and
    # the CRC of what was read gives the lie away
    files = members(honest())
    files[METADATA] = files[METADATA] + b"<!--" + b"A" * (4 * 1024 * 1024) + b"-->"
    archive = _patch_sizes(rezip(files), METADATA, 2048)
    refused(archive, "does not inflate to its declared size and CRC")


def test_document_declared_small_disagrees_with_its_metadata() -> None:
    files = members(honest())
    files[DOC1] = files[DOC1] + b"<!--" + b"A" * (4 * 1024 * 1024) + b"-->"
    archive = _patch_sizes(rezip(files), DOC1, 2048)
    assert refused(archive, "size disagrees").code == 906


def test_member_that_inflates_short_of_its_declaration() -> None:
    files = members(honest())
    archive = _patch_sizes(honest(), METADATA, len(files[METADATA]) + 100)
    refused(archive, "does not inflate|size differs")


def test_archive_larger_than_allowed() -> None:
    refused(honest(), "larger than", XdmLimits(max_archive_bytes=1000))


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/cron.d/hygie",
        "IHE_XDM/SUBSET01/../../../escape.xml",
        "/etc/passwd",
        "IHE_XDM\\SUBSET01\\DOC0002.XML",
        "C:/Windows/evil.xml",
        "IHE_XDM//SUBSET01/x",
        "./README.TXT",
    ],
)
def test_unsafe_member_names(name: str) -> None:
    files = [*members(honest()).items(), (name, b"x")]
    refused(rezip(files), "unsafe name|'\\.\\.'")


def test_too_many_members() -> None:
    files = list(members(honest()).items())
    files += [(f"IHE_XDM/SUBSET01/EXTRA{n:03d}.TXT", b"x") for n in range(70)]
    refused(rezip(files), "more than 64 members")


def test_duplicate_names() -> None:
    files = [*members(honest()).items(), (DOC1, b"<evil/>")]
    refused(rezip(files), "same name")


def test_names_differing_only_in_case_are_duplicates() -> None:
    files = [*members(honest()).items(), (DOC1.lower(), b"<evil/>")]
    refused(rezip(files), "same name")


def test_encrypted_member() -> None:
    # APPNOTE 4.4.4: bit 0 of the general purpose flags, set in both headers
    data = bytearray(honest())
    for at, offset in ((_local_header(data, DOC1), 6), (_central_header(data, DOC1), 8)):
        flags = struct.unpack_from("<H", data, at + offset)[0]
        struct.pack_into("<H", data, at + offset, flags | 0x1)
    refused(bytes(data), "encrypted")


def test_unusual_compression_method() -> None:
    refused(rezip(members(honest()), compression=zipfile.ZIP_BZIP2), "stored or deflated")


def test_missing_metadata() -> None:
    files = members(honest())
    del files[METADATA]
    refused(rezip(files), "no IHE_XDM/SUBSET01/METADATA.XML")


def test_two_submission_sets() -> None:
    files = members(honest())
    files["IHE_XDM/SUBSET02/METADATA.XML"] = files[METADATA]
    refused(rezip(files), "several submission sets")


def test_metadata_outside_ihe_xdm() -> None:
    files = members(honest())
    files["OTHER/SUBSET01/METADATA.XML"] = files.pop(METADATA)
    refused(rezip(files), "IHE_XDM/<subset>")


# --- the XML -------------------------------------------------------------------------------------

LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lcm:SubmitObjectsRequest [\n'
    '<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>\n'
)


def test_entity_expansion_in_metadata() -> None:
    files = members(honest())
    text = files[METADATA].decode().split("?>", 1)[1]
    files[METADATA] = (LAUGHS + text.replace("<rim:Value>DOC0001.XML", "<rim:Value>&c;")).encode()
    refused(rezip(files), "METADATA.XML: DTDs, entities")


def test_external_entity_in_a_cda() -> None:
    evil = (
        sample("cr-consultation.xml")
        .replace(
            b"<ClinicalDocument",
            b'<!DOCTYPE ClinicalDocument [<!ENTITY x SYSTEM "file:///etc/shadow">]>\n<ClinicalDocument',
            1,
        )
        .replace(b"Toux persistante", b"&x;")
    )
    refused(replace_document(honest(), DOC1, evil), "DOC0001.XML: CDA document: DTDs, entities")


def test_metadata_that_is_not_xml() -> None:
    files = members(honest())
    files[METADATA] = b"\x00\x01 not xml"
    refused(rezip(files), "not well-formed")


def test_metadata_that_is_not_a_submit_objects_request() -> None:
    files = members(honest())
    files[METADATA] = (
        b'<rs:RegistryResponse xmlns:rs="urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"/>'
    )
    refused(rezip(files), "not an lcm:SubmitObjectsRequest")


# --- files against their metadata --------------------------------------------------------------


def test_hash_mismatch() -> None:
    altered = sample("cr-consultation.xml").replace(b"six semaines", b"sept semaines")
    # same size? no: one byte longer; keep the size right and the hash stale
    altered = altered.replace(b"sept semaines", b"sept semaine")
    assert len(altered) == len(sample("cr-consultation.xml"))
    refused(replace_document(honest(), DOC1, altered, fix=False), "hash disagrees")


def test_size_mismatch() -> None:
    size = len(sample("cr-consultation.xml"))
    archive = edit_metadata(
        honest(), f"<rim:Value>{size}</rim:Value>", f"<rim:Value>{size - 1}</rim:Value>"
    )
    refused(archive, "size disagrees")


def test_missing_document() -> None:
    files = members(honest())
    del files[DOC1]
    refused(rezip(files), "missing from the archive")


def test_uri_that_escapes_the_subset() -> None:
    archive = edit_metadata(honest(), "<rim:Value>DOC0001.XML", "<rim:Value>../../README.TXT")
    refused(archive, "'\\.\\.'")


def test_absolute_uri() -> None:
    archive = edit_metadata(honest(), "<rim:Value>DOC0001.XML", "<rim:Value>file:///etc/passwd")
    refused(archive, "not a relative path")


# --- the patient ---------------------------------------------------------------------------------

OTHER_INS = "279035121518989"  # valid key, another patient


def test_metadata_patient_disagrees_with_the_cda() -> None:
    archive = edit_metadata(honest(), "279035145412366^^^", f"{OTHER_INS}^^^")
    error = refused(archive, "patientId disagrees with the CDA recordTarget")
    assert error.code == 906
    assert OTHER_INS not in str(error)


def test_same_matricule_but_another_oid_is_another_patient() -> None:
    archive = edit_metadata(honest(), "1.2.250.1.213.1.4.10&amp;", "1.2.250.1.213.1.4.8&amp;")
    refused(archive, "patientId disagrees with the CDA recordTarget")


def test_document_entry_and_submission_set_disagree() -> None:
    files = members(honest(pdf=None))
    text = files[METADATA].decode()
    marker = 'registryObject="SubmissionSet01" value="279035145412366'
    assert marker in text
    wrong = f'registryObject="SubmissionSet01" value="{OTHER_INS}'
    files[METADATA] = text.replace(marker, wrong).encode()
    refused(rezip(files), "DocumentEntry and SubmissionSet patientId differ")


def test_cda_without_ins_is_903() -> None:
    cda = sample("cr-consultation.xml").replace(b"1.2.250.1.213.1.4.10", b"1.2.250.1.999.77")
    error = refused(replace_document(honest(), DOC1, cda), "no INS")
    assert error.code == 903


def test_patient_id_with_a_bad_key_is_904() -> None:
    archive = edit_metadata(honest(), "279035145412366^^^", "279035145412367^^^")
    assert refused(archive, "key is wrong").code == 904


def test_type_code_disagrees_with_the_cda() -> None:
    archive = edit_metadata(
        honest(), 'nodeRepresentation="11488-4"', 'nodeRepresentation="11502-2"'
    )
    refused(archive, "typeCode disagrees")


# --- any bytes -----------------------------------------------------------------------------------

HONEST = honest()


@given(st.binary(max_size=4096))
@settings(max_examples=300, deadline=None)
def test_arbitrary_bytes_raise_only_xdm_error(data: bytes) -> None:
    try:
        parse_xdm(data)
    except XdmError:
        pass


@given(st.lists(st.tuples(st.integers(0, len(HONEST) - 1), st.integers(0, 255)), max_size=8))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_damaged_archives_raise_only_xdm_error(changes: list[tuple[int, int]]) -> None:
    data = bytearray(HONEST)
    for index, value in changes:
        data[index] = value
    try:
        parse_xdm(bytes(data))
    except XdmError:
        pass


@given(st.binary(min_size=1, max_size=2048))
@settings(max_examples=200, deadline=None)
def test_arbitrary_metadata_raises_only_xdm_error(metadata: bytes) -> None:
    files = members(HONEST)
    files[METADATA] = metadata
    try:
        parse_xdm(rezip(files))
    except XdmError:
        pass


def test_deflate_stream_that_is_garbage() -> None:
    data = bytearray(honest())
    local = _local_header(data, DOC1)
    name_length, extra_length = struct.unpack_from("<HH", data, local + 26)
    body = local + 30 + name_length + extra_length
    data[body + 10 : body + 40] = b"\xff" * 30
    refused(bytes(data), "does not inflate")


BOMB_SIZE = 256 * 1024 * 1024


@functools.cache
def _bomb(point_metadata_at_it: bool) -> bytes:
    """An honest archive plus DOC0009.XML, 256 MiB of zeros streamed into the zip (the test
    never holds them in memory); optionally METADATA.XML names it instead of DOC0001.XML."""
    files = members(honest(pdf=None))
    if point_metadata_at_it:
        size = len(files[DOC1])
        text = files[METADATA].decode()
        text = text.replace("<rim:Value>DOC0001.XML", "<rim:Value>DOC0009.XML")
        text = text.replace(f"<rim:Value>{size}</rim:Value>", f"<rim:Value>{BOMB_SIZE}</rim:Value>")
        files[METADATA] = text.encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            zf.writestr(name, content)
        with zf.open("IHE_XDM/SUBSET01/DOC0009.XML", "w", force_zip64=True) as member:
            chunk = bytes(1024 * 1024)
            for _ in range(BOMB_SIZE // len(chunk)):
                member.write(chunk)
    return out.getvalue()


def test_a_real_bomb_is_refused_by_its_declared_size() -> None:
    bomb = _bomb(False)
    assert len(bomb) < 1024 * 1024  # 256 MiB of zeros in a few hundred KiB
    refused(bomb, "declared larger")


def test_a_real_bomb_is_refused_by_its_ratio_even_when_sizes_are_allowed() -> None:
    limits = XdmLimits(max_member_bytes=1 << 30, max_total_bytes=1 << 31)
    refused(_bomb(True), "ratio too high", limits)
