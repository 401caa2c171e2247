"""The message as every step sees it (design.md §2 step 2): parsed once, immutable.

:func:`parse` reads the raw bytes once with the reader IMAP uses (:mod:`server.imap.proto.
message`): the header fields exactly as a mail reader will show them (a field name followed by
spaces before its colon is that field, RFC 5322 §4.5.3), and the MIME part list with byte
offsets into the raw message. The same analysis is what is stored (encrypted) for IMAP's
ENVELOPE and BODYSTRUCTURE, so delivery does not parse again either. Steps ask this value for
headers and attachments; none parses the message itself.
"""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from mailformats.mime import (
    HeaderFields,
    MessageInfo,
    Part,
    analyze,
    decode_body,
    decode_words,
    parse_addresses,
    read_header,
)

#: Parses made since start (the pipeline parses each message once; tests count this).
_parses = 0
_parses_lock = threading.Lock()


def parse_count() -> int:
    return _parses


@dataclass(frozen=True)
class Leaf:
    """One non-multipart MIME part: its path (IMAP part numbers) and what identifies it."""

    path: tuple[int, ...]
    content_type: str  # lower case, "type/subtype"
    filename: str | None
    params: tuple[tuple[str, str], ...]
    node: Part = field(repr=False, compare=False)

    def param(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.params if k.lower() == name), None)


@dataclass(frozen=True)
class Message:
    raw: bytes
    info: MessageInfo = field(repr=False)
    header_fields: HeaderFields = field(repr=False)  # the reading the From rules check
    fields: tuple[tuple[str, str], ...] = field(repr=False)  # (lower-case name, value)

    @property
    def size(self) -> int:
        return len(self.raw)

    def header(self, name: str) -> str | None:
        """The first field ``name`` (unfolded, encoded words as written), or None."""
        name = name.lower()
        return next((v for k, v in self.fields if k == name), None)

    def headers(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.fields if k == name]

    def text(self, name: str) -> str:
        """The first field ``name`` with its RFC 2047 encoded words decoded ("" if absent)."""
        return decode_words(self.header(name) or "")

    def addresses(self, name: str) -> list[tuple[str, str]]:
        """(display name decoded, address) of every address in every field ``name``, read as
        IMAP's ENVELOPE reads them (group markers left out)."""
        found = []
        for value in self.headers(name):
            for display, _adl, mailbox, host in parse_addresses(value) or []:
                if mailbox is not None and host is not None:
                    found.append((decode_words(display), f"{mailbox}@{host}"))
        return found

    @property
    def header_block(self) -> bytes:
        return self.raw[: self.info["header_length"]]

    def leaves(self) -> Iterator[Leaf]:
        """Every non-multipart part, depth first, the top level included (not descending into
        attached messages: what they carry is not this message's attachment)."""
        yield from _leaves(self.info["body"], ())

    def decoded(self, leaf: Leaf) -> bytes | None:
        """The part's body with its transfer encoding removed (None: unknown encoding)."""
        return decode_body(self.raw[leaf.node["body_start"] : leaf.node["end"]], leaf.node)

    def attachment(self, filename: str) -> bytes | None:
        """The decoded body of the first part named ``filename`` (case aside)."""
        wanted = filename.upper()
        for leaf in self.leaves():
            if (leaf.filename or "").upper() == wanted:
                return self.decoded(leaf)
        return None

    def first_of_type(self, content_type: str) -> Leaf | None:
        return next((leaf for leaf in self.leaves() if leaf.content_type == content_type), None)


def _leaves(node: Part, path: tuple[int, ...]) -> Iterator[Leaf]:
    children = node.get("parts")
    if node["type"] == "multipart" and children:
        for i, child in enumerate(children, 1):
            yield from _leaves(child, (*path, i))
        return
    params = tuple((str(k), str(v)) for k, v in node["params"])
    yield Leaf(
        path=path,
        content_type=f"{node['type']}/{node['subtype']}",
        filename=_filename(node),
        params=params,
        node=node,
    )


def _filename(node: Part) -> str | None:
    """RFC 2183 ``filename`` (or RFC 2231 ``filename*``), else Content-Type ``name``."""
    candidates: list[list[list[str]]] = []
    if node.get("disposition"):
        candidates.append(node["disposition"][1])
    candidates.append(node["params"])
    for params in candidates:
        for key, value in params:
            lowered = key.lower()
            if lowered in ("filename", "name"):
                return str(value)
            if lowered in ("filename*", "name*"):
                charset, _, rest = str(value).partition("'")
                _lang, _, encoded = rest.partition("'")
                try:
                    return urllib.parse.unquote(encoded, encoding=charset or "utf-8")
                except LookupError:
                    return urllib.parse.unquote(encoded)
    return None


def parse(raw: bytes) -> Message:
    """Read ``raw`` once (CPU only: large messages are parsed in a worker thread)."""
    global _parses
    info = analyze(raw)
    header = read_header(raw)
    fields = tuple((name, _value(field_bytes)) for name, field_bytes in header.fields if name)
    with _parses_lock:
        _parses += 1
    return Message(raw, info, header, fields)


def _value(raw_field: bytes) -> str:
    value = raw_field[raw_field.find(b":") + 1 :]
    return value.replace(b"\r\n", b"").replace(b"\n", b"").decode("utf-8", "replace").strip()


def meta_of(message: Message) -> dict[str, Any]:
    """What is stored (encrypted) beside each copy for IMAP: the same analysis."""
    return message.info
