"""IMAP's views of a message (RFC 9051 §7.5.2): ENVELOPE, BODYSTRUCTURE and sections,
formatted from the structure :mod:`mailformats.mime` reads once."""

from __future__ import annotations

from typing import Any

from mailformats.mime import (
    ENVELOPE_FIELDS,
    MessageInfo,
    Part,
)
from mailformats.mime import HeaderFields as HeaderFields
from mailformats.mime import analyze as analyze
from mailformats.mime import binary_bytes as binary_bytes
from mailformats.mime import decode_body as decode_body
from mailformats.mime import decode_words as decode_words
from mailformats.mime import find_part as find_part
from mailformats.mime import parse_addresses as parse_addresses
from mailformats.mime import read_header as read_header
from mailformats.mime import seven_bit as seven_bit
from mailformats.mime import split_fields as split_fields

from .commands import Section
from .response import Value, Writer

# --- ENVELOPE and BODYSTRUCTURE formatting (RFC 9051 §7.5.2, §9) ---------------------------


def _addresses_value(addresses: list[list[str | None]] | None) -> Value:
    if not addresses:
        return None
    return [list(addr) for addr in addresses]


def envelope_value(envelope: dict[str, Any]) -> Value:
    # RFC 9051 §9: envelope = "(" env-date SP env-subject SP env-from SP env-sender SP
    #   env-reply-to SP env-to SP env-cc SP env-bcc SP env-in-reply-to SP env-message-id ")"
    return [
        envelope["date"],
        envelope["subject"],
        *(_addresses_value(envelope[name]) for name in ENVELOPE_FIELDS[2:]),
        envelope["in-reply-to"],
        envelope["message-id"],
    ]


def format_envelope(info: MessageInfo, *, utf8: bool = False) -> bytes:
    """``ENVELOPE`` of the message described by ``info``."""
    w = Writer(utf8=utf8)
    w.value(envelope_value(info["envelope"]))
    return w.getvalue()


def _params_value(params: list[list[str]]) -> Value:
    # RFC 9051 §9: body-fld-param = "(" string SP string *(SP string SP string) ")" / nil
    if not params:
        return None
    flat: list[Value] = []
    for key, val in params:
        flat += [key.upper(), val]
    return flat


def _ext_value(part: Part, *, single: bool) -> list[Value]:
    # RFC 9051 §9: body-ext-1part = body-fld-md5 [SP body-fld-dsp [SP body-fld-lang
    #   [SP body-fld-loc *(SP body-extension)]]]
    # body-ext-mpart = body-fld-param [SP body-fld-dsp [SP body-fld-lang [SP body-fld-loc …]]]
    # body-fld-dsp = "(" string SP body-fld-param ")" / nil
    disposition = part["disposition"]
    dsp: Value = None
    if disposition:
        dsp = [disposition[0].upper(), _params_value(disposition[1])]
    language: Value = list(part["language"]) if part["language"] else None
    first: Value = part["md5"] if single else _params_value(part["params"])
    return [first, dsp, language, part["location"]]


def _write_part(w: Writer, part: Part, extensible: bool) -> None:
    w.raw(b"(")
    if "parts" in part:
        # RFC 9051 §9: body-type-mpart = 1*body SP media-subtype [SP body-ext-mpart]
        for child in part["parts"]:
            _write_part(w, child, extensible)
        w.raw(b" ")
        w.value(part["subtype"].upper())
        if extensible:
            w.raw(b" ")
            w.values(_ext_value(part, single=False))
        w.raw(b")")
        return
    # RFC 9051 §9: body-type-1part = (body-type-basic / body-type-msg / body-type-text)
    #   [SP body-ext-1part]
    #   body-fields = body-fld-param SP body-fld-id SP body-fld-desc SP body-fld-enc SP
    #   body-fld-octets
    w.values(
        [
            part["type"].upper(),
            part["subtype"].upper(),
            _params_value(part["params"]),
            part["id"],
            part["description"],
            part["encoding"],
            part["size"],
        ]
    )
    if "message" in part:
        # body-type-msg = media-message SP body-fields SP envelope SP body SP body-fld-lines
        w.raw(b" ")
        w.value(envelope_value(part["message"]["envelope"]))
        w.raw(b" ")
        _write_part(w, part["message"]["body"], extensible)
        w.raw(b" ")
        w.value(part["lines"])
    elif part["type"] == "text":
        # body-type-text = media-text SP body-fields SP body-fld-lines
        w.raw(b" ")
        w.value(part["lines"])
    if extensible:
        w.raw(b" ")
        w.values(_ext_value(part, single=True))
    w.raw(b")")


def format_bodystructure(info: MessageInfo, extensible: bool, *, utf8: bool = False) -> bytes:
    """``BODYSTRUCTURE`` (``extensible=True``) or ``BODY`` of the message."""
    return format_part_structure(info["body"], extensible, utf8=utf8)


def format_part_structure(part: Part, extensible: bool, *, utf8: bool = False) -> bytes:
    w = Writer(utf8=utf8)
    _write_part(w, part, extensible)
    return w.getvalue()


# --- sections (RFC 9051 §6.4.5 BODY[section]) ------------------------------------------------


def _select_fields(block: bytes, names: tuple[str, ...], keep: bool) -> bytes:
    wanted = {n.lower() for n in names}
    out = [f for name, f in split_fields(block) if (name in wanted) == keep]
    out.append(b"\r\n")
    return b"".join(out)


def section_bytes(raw: bytes, info: MessageInfo, section: Section) -> bytes:
    """The bytes of ``BODY[section]`` (before any ``<partial>``); ``b""`` if it does not exist.

    ``HEADER`` includes the empty line ending the header; ``HEADER.FIELDS`` returns the
    matching fields, as sent, followed by CRLF.
    """
    if not section.part:
        header_start, body_start, end = 0, info["header_length"], len(raw)
    else:
        node = find_part(info, section.part)
        if node is None:
            return b""
        if section.text is None:
            return raw[node["body_start"] : node["end"]]
        if section.text == "MIME":
            return raw[node["header_start"] : node["body_start"]]
        if "message" not in node:
            return b""
        header_start = node["body_start"]
        body_start = node["message"]["body"]["body_start"]
        end = node["end"]
    text = section.text
    if text is None:
        return raw
    if text == "HEADER":
        return raw[header_start:body_start]
    if text == "TEXT":
        return raw[body_start:end]
    if text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        return _select_fields(raw[header_start:body_start], section.fields, text == "HEADER.FIELDS")
    return b""


