"""The From rules of submission (issue 17): who a message says it is from.

Sans-I/O: a :class:`~server.imap.proto.message.HeaderFields` in (the header section exactly as
IMAP reads it, RFC 5322 §4.5.3 obsolete syntax included), the addresses it claims out, or a
refusal from the reply table. The pipeline's :class:`server.delivery.senders.FromRules` step
asks the directory whether the account may use each claimed address.

- Exactly one ``From:`` field (RFC 5322 §3.6); none: submission adds one with the account's
  address (RFC 6409 §8.1, :func:`with_from`).
- Every address of ``From``, ``Sender``, ``Resent-From`` and ``Resent-Sender`` is claimed: it
  must be a mailbox (no group, no source route) that the account may send as.
- ``Reply-To`` and the other ``Resent-`` address fields may name any address, but in all these
  fields the only ``@`` a mail reader can show is in the addresses themselves: a display name,
  group name or comment that shows another address (as sent, RFC 2047-decoded whatever its
  charset, Unicode-compatibility folded so that ``＠`` is ``@``) is refused.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from mailformats.mime import HeaderFields, decode_words, parse_addresses
from server.delivery import replies as S
from storage.accounts import AccountError, normalize_address

#: Fields whose every address must be one the account may send as (RFC 5322 §3.6.2, §3.6.6).
CLAIMED = {
    "from": "From",
    "sender": "Sender",
    "resent-from": "Resent-From",
    "resent-sender": "Resent-Sender",
}
#: Fields a mail reader shows as "who this is from" or "whom to answer": no posing names.
SHOWN = {
    **CLAIMED,
    "reply-to": "Reply-To",
    "resent-reply-to": "Resent-Reply-To",
    "resent-to": "Resent-To",
    "resent-cc": "Resent-Cc",
    "resent-bcc": "Resent-Bcc",
}
_MISSING = ("MISSING_MAILBOX", "MISSING_DOMAIN")
# RFC 2047 §2: encoded-word = "=?" charset "?" encoding "?" encoded-text "?="
_ENCODED_WORD = re.compile(r"=\?([^?\s]*)\?([QqBb])\?([^?\s]*)\?=")


class Refused(Exception):
    """The message breaks a From rule; ``reply`` is the SMTP reply, ``rule`` a log word."""

    def __init__(self, reply: str, rule: str, field: str) -> None:
        super().__init__(reply)
        self.reply = reply
        self.rule = rule
        self.field = field


@dataclass(frozen=True)
class Claim:
    """An address the message says it is from, in the field that says so."""

    field: str  # as RFC 5322 writes it: "From", "Sender" …
    address: str  # normalised (storage.accounts.normalize_address)


def needs_from(header: HeaderFields) -> bool:
    return not header.values("from")


def with_from(raw: bytes, address: str) -> bytes:
    """RFC 6409 §8.1: the MSA adds ``From:`` with the authenticated sender's address. On top,
    so the field is whole whatever the header below holds; the caller reads the result again."""
    return b"From: " + address.encode("ascii") + b"\r\n" + raw


def claims(header: HeaderFields) -> list[Claim]:
    """Every address the message claims to be from; raises :class:`Refused`."""
    froms = header.values("from")
    if len(froms) > 1:
        raise Refused(S.S550_FROM_TWICE, "from_twice", "From")
    if froms and parse_addresses(froms[0]) is None:
        raise Refused(S.S550_FROM_EMPTY, "from_empty", "From")
    found: list[Claim] = []
    for name, field in SHOWN.items():
        for value in header.values(name):
            found += _field(field, value, claimed=name in CLAIMED)
    return found


def _field(field: str, value: str, *, claimed: bool) -> list[Claim]:
    entries = parse_addresses(value) or []
    own: list[str] = []
    found: list[Claim] = []
    for display, adl, mailbox, host in entries:
        if host is None:  # group start [None, None, name, None] or end [None, None, None, None]
            if claimed:
                raise Refused(S.S550_FIELD_NOT_OWNED.format(field=field), "group", field)
            continue
        if adl is not None:
            raise Refused(S.S550_SOURCE_ROUTE.format(field=field), "source_route", field)
        address = f"{mailbox}@{host}"
        if display is not None and shows_other_address(display, [address]):
            raise Refused(S.S550_NAME_SHOWS_ADDRESS.format(field=field), "display_name", field)
        own.append(address)
        if claimed:
            try:
                if mailbox in _MISSING or host in _MISSING:
                    raise AccountError("incomplete address")
                found.append(Claim(field, normalize_address(address)))
            except AccountError:
                raise Refused(
                    S.S550_FIELD_NOT_OWNED.format(field=field), "bad_address", field
                ) from None
    # Comments and group names are not in ENVELOPE, but some readers show them as names.
    if shows_other_address(value, own):
        raise Refused(S.S550_NAME_SHOWS_ADDRESS.format(field=field), "display_name", field)
    return found


def shows_other_address(text: str, own: Iterable[str]) -> bool:
    """True when some reading of ``text`` shows an ``@`` outside the addresses ``own``."""
    owned = [unicodedata.normalize("NFKC", a).casefold() for a in own]
    for reading in _readings(text):
        for address in owned:
            reading = reading.replace(address, "")
        if "@" in reading:
            return True
    return False


def _readings(text: str) -> set[str]:
    """``text`` as a mail reader may show it: as sent, decoded as SEARCH decodes it, and each
    encoded word alone in its own charset, in UTF-8 and in Latin-1 (readers differ on broken
    words and unknown charsets), each NFKC-folded (``＠`` → ``@``) and case-folded."""
    shown = {text, decode_words(text)}
    for match in _ENCODED_WORD.finditer(text):
        shown.add(decode_words(match[0]))
        payload = _payload(match[2], match[3])
        shown.add(payload.decode("utf-8", "replace"))
        shown.add(payload.decode("latin-1"))
    return {unicodedata.normalize("NFKC", s).casefold() for s in shown}


def _payload(encoding: str, text: str) -> bytes:
    data = text.encode("utf-8", "surrogateescape")
    if encoding in "Qq":  # RFC 2047 §4.2: "_" is a space, "=XX" an octet
        return binascii.a2b_qp(data, header=True)
    data = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
    data = data[: len(data) - len(data) % 4 if len(data) % 4 == 1 else None]
    try:
        return base64.b64decode(data + b"=" * (-len(data) % 4))
    except binascii.Error:
        return b""
