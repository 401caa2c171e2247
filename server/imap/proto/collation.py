"""What SORT and THREAD compare (RFC 5256 §2): the ``i;unicode-casemap`` collation (RFC 5051),
the base subject (RFC 5256 §2.1), the sent date (§2.2), message identifiers (RFC 5322 §3.6.4)
and the sort keys of RFC 5256 §3 and RFC 5957 (DISPLAYFROM, DISPLAYTO)."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# RFC 5051 §2: each character is replaced by its simple titlecase mapping, then fully
# decomposed (NFKD); the results compare as octet strings of UTF-8, i.e. by code point.


@lru_cache(maxsize=4096)
def _title(ch: str) -> str:
    mapped = ch.title()
    # Simple mappings only (one character for one): "ß".title() is the full "Ss".
    return mapped if len(mapped) == 1 else ch


def casemap(text: str) -> str:
    """``text`` as ``i;unicode-casemap`` compares it (RFC 5051 §2)."""
    if text.isascii():
        # The titlecase of an ASCII letter is its upper case; NFKD changes no ASCII.
        return text.upper()
    return unicodedata.normalize("NFKD", "".join(_title(ch) for ch in text))


# RFC 5256 §5: subj-trailer = "(fwd)" / WSP
_TRAILER_RE = re.compile(r"(?:\(fwd\)|[ \t])+\Z", re.IGNORECASE)
# subj-blob = "[" *BLOBCHAR "]" *WSP ; BLOBCHAR = %x01-5a / %x5c / %x5e-ff
_BLOB = r"\[[^\[\]]*\][ \t]*"
# subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"
# subj-leader = (*subj-blob subj-refwd) / WSP
_LEADER_RE = re.compile(rf"(?:{_BLOB})*(?:re|fwd?)[ \t]*(?:{_BLOB})?:|[ \t]+", re.IGNORECASE)
_BLOB_RE = re.compile(_BLOB)
_SPACES_RE = re.compile(r"[ \t\r\n]+")


def base_subject(subject: str) -> tuple[str, bool]:
    """RFC 5256 §2.1: the base subject of a decoded subject, and whether the extraction
    removed a reply or forward marker (``Re:``, ``Fwd:``, ``(fwd)``, ``[fwd: …]``), which
    THREAD=REFERENCES needs (§3 step 5)."""
    # (1) continuations and tabs to one space each run.
    text = _SPACES_RE.sub(" ", subject)
    reply = False
    while True:
        # (2) trailers.
        m = _TRAILER_RE.search(text)
        if m is not None and m.start() < len(text):
            if "(" in m.group():
                reply = True
            text = text[: m.start()]
        # (3)-(5) leaders and blobs, until none is left.
        while True:
            m = _LEADER_RE.match(text)
            if m is not None and m.end() > 0:
                if not m.group().isspace():
                    reply = True
                text = text[m.end() :]
                continue
            m = _BLOB_RE.match(text)
            if m is not None and text[m.end() :]:
                text = text[m.end() :]
                continue
            break
        # (6) "[fwd: … ]" around the whole of it.
        if text[:5].lower() == "[fwd:" and text.endswith("]"):
            text = text[5:-1]
            reply = True
            continue
        return text, reply


_MSG_ID_RE = re.compile(r"<([^<>]*)>")


def message_ids(value: str | None) -> list[str]:
    """The ``<id>`` values of a References / In-Reply-To / Message-ID field, white space
    inside removed (RFC 5322 §3.6.4 and its obsolete forms)."""
    if not value:
        return []
    out = []
    for raw in _MSG_ID_RE.findall(value):
        ident = "".join(raw.split())
        if ident:
            out.append(ident)
    return out


def first_mailbox(addresses: list[list[str | None]] | None) -> str:
    """RFC 5256 §3 FROM/TO/CC: the addr-mailbox of the first address (group names skipped)."""
    for _name, _adl, mailbox, host in addresses or []:
        if host is not None and mailbox is not None:
            return mailbox
    return ""


def display_name(addresses: list[list[str | None]] | None, decode: object) -> str:
    """RFC 5957 §3 DISPLAYFROM/DISPLAYTO: the first address's display name (RFC 2047 words
    decoded), or, when it has none or an empty one, its addr-spec."""
    for name, _adl, mailbox, host in addresses or []:
        if host is None or mailbox is None:
            continue
        assert callable(decode)
        shown = str(decode(name)) if name else ""
        return shown if shown.strip() else f"{mailbox}@{host}"
    return ""
