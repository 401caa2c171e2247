"""What IMAP answers most about a message, in a compact form made once (design.md §2 item 8).

Delivery stores a message's metadata as an encrypted JSON document (:func:`server.delivery.
describe`). Parsing it and formatting ENVELOPE and BODYSTRUCTURE on every FETCH cost more than
the rest of the command, so the first read turns it into a :class:`Summary`: the wire forms of
INTERNALDATE, ENVELOPE, BODY and BODYSTRUCTURE (the 7-bit form, and the UTF-8 form only where
they differ, RFC 9051 §4.3 / RFC 6855), the header length, and what SEARCH compares (days,
decoded subject and addresses). Its bytes are sealed for the owner in ``messages.owner_meta``
(so they are encrypted at rest like the rest of the metadata) and the loaded object is kept in
the process's opened-message cache. Flags, UIDs, MODSEQ and sizes are not in it: they change,
and are read from the database on every command.

It also holds what SORT and THREAD compare (RFC 5256, RFC 5957), computed once: the arrival
and sent times, the base subject and the first addresses as ``i;unicode-casemap`` keys, and the
message identifiers THREAD=REFERENCES links (:class:`SortKeys`).

Binary layout, version 2: ``02`` then each field as a 4-byte big-endian length and its bytes
(integers as decimal ASCII). A summary of another version loads as ``None`` and is rebuilt from
the metadata document.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.utils import parsedate_to_datetime
from typing import Any

from server.imap.proto import collation as col
from server.imap.proto import message as m
from server.imap.proto import response as r

VERSION = 2
_LEN = struct.Struct(">I")
#: Bytes of a loaded summary beyond its fields (object, slots, the small ints and strings).
_OVERHEAD = 400


def decode_words(text: str | None) -> str:
    """RFC 2047 encoded words decoded (RFC 9051 §6.4.4 SHOULD); the text as is if invalid."""
    if not text:
        return ""
    try:
        return str(make_header(decode_header(text)))
    except (HeaderParseError, LookupError, ValueError):
        return text


def envelope_text(meta: Mapping[str, Any], field: str) -> str:
    """What SEARCH FROM/TO/CC/BCC/SUBJECT compare: decoded names and ``mailbox@host``."""
    envelope = meta.get("envelope") or {}
    if field == "subject":
        return decode_words(envelope.get("subject"))
    out = []
    for address in envelope.get(field) or []:
        name, _adl, mailbox, host = (list(address) + [None] * 4)[:4]
        if host is None:
            if mailbox is not None:  # a group's name (RFC 5322 §3.4)
                out.append(f"{decode_words(mailbox)}:")
            continue
        # RFC 9051 §6.4.4: a substring of the field, display name included (decoded).
        shown = decode_words(name)
        out.append(f"{shown} <{mailbox or ''}@{host}>" if shown else f"<{mailbox or ''}@{host}>")
    return ", ".join(out)


@dataclass(frozen=True, slots=True)
class SortKeys:
    """What SORT and THREAD compare about one message (RFC 5256 §2-3, RFC 5957 §3)."""

    arrival: int  # INTERNALDATE, seconds since the epoch
    sent: int  # the Date: field in UTC, seconds; the INTERNALDATE when absent or invalid
    subject: str  # the base subject, i;unicode-casemap
    reply: bool  # the base subject extraction removed a Re: / Fwd: marker
    from_: str  # addr-mailbox of the first From address, i;unicode-casemap
    to: str
    cc: str
    display_from: str  # RFC 5957 display name or addr-spec, i;unicode-casemap
    display_to: str
    message_id: str  # without angle brackets, "" if none
    parents: tuple[str, ...]  # References (else the first In-Reply-To), oldest first


def sort_keys(meta: Mapping[str, Any], when: dt.datetime) -> SortKeys:
    envelope = meta.get("envelope") or {}
    arrival = int(when.timestamp())
    try:
        sent_at = parsedate_to_datetime(envelope.get("date") or "")
        if sent_at.tzinfo is None:
            sent_at = sent_at.replace(tzinfo=dt.UTC)  # RFC 5322 "-0000": no zone known
        sent = int(sent_at.timestamp())
    except (TypeError, ValueError, IndexError, OverflowError):
        sent = arrival
    base, reply = col.base_subject(decode_words(envelope.get("subject")))
    parents = col.message_ids(meta.get("references"))
    if not parents:
        parents = col.message_ids(envelope.get("in-reply-to"))[:1]
    ids = col.message_ids(envelope.get("message-id"))
    return SortKeys(
        arrival, sent, col.casemap(base), reply,
        col.casemap(col.first_mailbox(envelope.get("from"))),
        col.casemap(col.first_mailbox(envelope.get("to"))),
        col.casemap(col.first_mailbox(envelope.get("cc"))),
        col.casemap(col.display_name(envelope.get("from"), decode_words)),
        col.casemap(col.display_name(envelope.get("to"), decode_words)),
        ids[0] if ids else "", tuple(parents),
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Summary:
    internaldate: bytes  # the quoted date-time, as FETCH INTERNALDATE sends it
    internal_day: int  # date.toordinal() of the internal date, in its own offset
    sent_day: int  # date.toordinal() of the Date: field, 0 if there is none or it is invalid
    header_length: int
    envelope: bytes
    envelope_utf8: bytes
    body: bytes
    body_utf8: bytes
    bodystructure: bytes
    bodystructure_utf8: bytes
    subject: str
    from_: str
    to: str
    cc: str
    bcc: str
    sort: SortKeys

    def search_text(self, key: str) -> str:
        """SEARCH SUBJECT, FROM, TO, CC or BCC (``key`` in upper case)."""
        if key == "SUBJECT":
            return self.subject
        if key == "FROM":
            return self.from_
        if key == "TO":
            return self.to
        if key == "CC":
            return self.cc
        return self.bcc


def _day(when: dt.datetime | dt.date) -> int:
    return when.toordinal()


def _sent_day(meta: Mapping[str, Any]) -> int:
    try:
        date = (meta.get("envelope") or {})["date"]
        return _day(parsedate_to_datetime(date).date())
    except (TypeError, ValueError, IndexError, KeyError):
        return 0


def _two(build: Any, info: Mapping[str, Any]) -> tuple[bytes, bytes]:
    plain = build(info, utf8=False)
    utf8 = build(info, utf8=True)
    return plain, b"" if utf8 == plain else utf8


def build(meta: Mapping[str, Any]) -> bytes:
    """The summary bytes of a metadata document (``server.delivery.describe`` and the
    internal date the store added)."""
    info = dict(meta)
    when = dt.datetime.fromisoformat(info["internaldate"])
    envelope = _two(m.format_envelope, info)
    body = _two(lambda i, utf8: m.format_bodystructure(i, False, utf8=utf8), info)
    structure = _two(lambda i, utf8: m.format_bodystructure(i, True, utf8=utf8), info)
    fields: list[bytes] = [
        b'"' + r.format_date_time(when).encode("ascii") + b'"',
        str(_day(when.date())).encode(),
        str(_sent_day(info)).encode(),
        str(int(info.get("header_length", 0))).encode(),
        *envelope,
        *body,
        *structure,
        *(envelope_text(info, f).encode("utf-8", "surrogateescape")
          for f in ("subject", "from", "to", "cc", "bcc")),
        *_sort_fields(sort_keys(info, when)),
    ]  # fmt: skip
    return bytes([VERSION]) + b"".join(_LEN.pack(len(f)) + f for f in fields)


def _sort_fields(k: SortKeys) -> list[bytes]:
    texts = (k.subject, k.from_, k.to, k.cc, k.display_from, k.display_to, k.message_id)
    return [
        str(k.arrival).encode(), str(k.sent).encode(), b"1" if k.reply else b"0",
        *(t.encode("utf-8", "surrogateescape") for t in texts),
        " ".join(k.parents).encode("utf-8", "surrogateescape"),
    ]  # fmt: skip


def _load_sort(fields: list[bytes]) -> SortKeys:
    text = [f.decode("utf-8", "surrogateescape") for f in fields[3:]]
    return SortKeys(
        int(fields[0]), int(fields[1]), text[0], fields[2] == b"1", text[1], text[2],
        text[3], text[4], text[5], text[6], tuple(text[7].split()),
    )  # fmt: skip


#: Fields of a version-2 summary: 15 for FETCH and SEARCH, 11 for SORT and THREAD.
_FIELDS = 26


def load(data: bytes) -> Summary | None:
    """The summary in ``data``; ``None`` if it was made by another version of this module."""
    if not data or data[0] != VERSION:
        return None
    fields: list[bytes] = []
    pos, end = 1, len(data)
    while pos < end:
        (n,) = _LEN.unpack_from(data, pos)
        pos += 4
        fields.append(data[pos : pos + n])
        pos += n
    if len(fields) != _FIELDS:
        return None
    env, env8, body, body8, bs, bs8 = fields[4:10]
    subject, from_, to, cc, bcc = (f.decode("utf-8", "surrogateescape") for f in fields[10:15])
    return Summary(
        fields[0], int(fields[1]), int(fields[2]), int(fields[3]),
        env, env8 or env, body, body8 or body, bs, bs8 or bs,
        subject, from_, to, cc, bcc, _load_sort(fields[15:]),
    )  # fmt: skip


class ImapSummaries:
    """The :class:`storage.mailstore.SummaryCodec` of the IMAP server."""

    def build(self, meta: Mapping[str, Any]) -> bytes:
        return build(meta)

    def load(self, data: bytes) -> Summary | None:
        return load(data)

    def cost(self, summary: Summary) -> int:
        s = summary
        total = _OVERHEAD + len(s.internaldate)
        for plain, utf8 in (
            (s.envelope, s.envelope_utf8),
            (s.body, s.body_utf8),
            (s.bodystructure, s.bodystructure_utf8),
        ):
            total += len(plain) + (len(utf8) if utf8 is not plain else 0)
        k = s.sort
        sort = 200 + sum(
            len(t)
            for t in (k.subject, k.from_, k.to, k.cc, k.display_from, k.display_to, k.message_id)
        )
        return total + sort + sum(len(t) for t in (s.subject, s.from_, s.to, s.cc, s.bcc))
