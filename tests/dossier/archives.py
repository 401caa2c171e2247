"""Helpers to build IHE_XDM.zip archives for the tests, honest and malicious."""

from __future__ import annotations

import hashlib
import io
import warnings
import zipfile
from datetime import UTC, datetime
from pathlib import Path

from dossier.xdm import OutgoingDocument, build_xdm

SAMPLES = Path(__file__).parent / "samples"
METADATA = "IHE_XDM/SUBSET01/METADATA.XML"
DOC1 = "IHE_XDM/SUBSET01/DOC0001.XML"
WHEN = datetime(2026, 11, 8, 9, 0, tzinfo=UTC)
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def honest(name: str = "cr-consultation.xml", **options: object) -> bytes:
    """A valid archive carrying one sample CDA (and its PDF rendering unless pdf=None)."""
    pdf = options.pop("pdf", PDF)
    document = OutgoingDocument(sample(name), pdf=pdf, **options)  # type: ignore[arg-type]
    return build_xdm([document], source_id="1.2.250.1.999.9", now=WHEN)


def members(archive: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def rezip(
    entries: list[tuple[str, bytes]] | dict[str, bytes],
    *,
    compression: int = zipfile.ZIP_DEFLATED,
    encrypted: frozenset[str] = frozenset(),
) -> bytes:
    """A zip of ``entries`` in order, duplicates and odd names written as given."""
    items = list(entries.items()) if isinstance(entries, dict) else entries
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name" is what some tests want
        with zipfile.ZipFile(out, "w", compression=compression) as zf:
            for name, content in items:
                info = zipfile.ZipInfo(name, date_time=(2026, 11, 8, 9, 0, 0))
                info.compress_type = compression
                if name in encrypted:
                    info.flag_bits |= 0x1
                zf.writestr(info, content)
    return out.getvalue()


def replace_document(archive: bytes, name: str, content: bytes, *, fix: bool = True) -> bytes:
    """The archive with member ``name`` replaced; with ``fix``, METADATA.XML's hash and size of
    it are rewritten to match, so that only the new content is on trial."""
    files = members(archive)
    old = files[name]
    files[name] = content
    if fix:
        metadata = files[METADATA].decode("utf-8")
        metadata = metadata.replace(_sha1(old), _sha1(content)).replace(
            f"<rim:Value>{len(old)}</rim:Value>", f"<rim:Value>{len(content)}</rim:Value>"
        )
        files[METADATA] = metadata.encode("utf-8")
    return rezip(files)


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()  # XDS hash (ITI TF-3 §4.2.3.2.10)


def edit_metadata(archive: bytes, old: str, new: str) -> bytes:
    files = members(archive)
    text = files[METADATA].decode("utf-8")
    assert old in text, old
    files[METADATA] = text.replace(old, new).encode("utf-8")
    return rezip(files)
