"""Building blocks of ``multipart/report`` messages (RFC 6522), shared by DSNs and MDNs.

Sans-I/O and byte-exact: the report is assembled as bytes, not through
:class:`email.message.EmailMessage`, so that a returned original is carried verbatim (the
stdlib generator would refold its header fields) and every line ends in CRLF.
"""

from __future__ import annotations

import quopri
import re
import secrets
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from email import policy
from email.header import Header
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import format_datetime

CRLF = b"\r\n"

# RFC 5322 §2.1.1: a line SHOULD NOT exceed 78 characters; folded fields stay under it.
_FOLD_AT = 78
_MAX_LINE = 990  # characters; the fields that can grow long (remote text) are ASCII
_NEWLINES = re.compile(rb"\r\n|\r|\n")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_HEADER_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")


def crlf(data: bytes) -> bytes:
    """Every line ending (CRLF, bare CR, bare LF) made CRLF."""
    return _NEWLINES.sub(CRLF, data)


def clean(text: str) -> str:
    """A field value from elsewhere (a remote reply, an original header) on one safe line:
    runs of CR/LF become one space, other control characters are dropped."""
    return _CONTROL.sub("", re.sub(r"[\r\n]+\s*", " ", text)).strip()


def check_line(name: str, value: str) -> str:
    """A value we were given to put in a field; CR or LF there is our own bug (injection)."""
    if "\r" in value or "\n" in value:
        raise ValueError(f"{name} contains CR or LF: {value!r}")
    return value


def fold(name: str, value: str) -> bytes:
    """``Name: value`` folded at white space (RFC 5322 §2.2.3), CRLF-terminated, as UTF-8."""
    line = f"{name}: {value}"
    out: list[str] = []
    start = len(name) + 2
    while len(line) > _FOLD_AT:
        cut = _fold_point(line, start)
        if cut is None:
            break
        out.append(line[:cut])
        line = line[cut:]  # the continuation keeps the space it was folded at
        start = 1
    out.append(line)
    # RFC 5322 §2.1.1: 998 characters at most; only junk from a remote has no place to fold
    return "\r\n".join(part[:_MAX_LINE] for part in out).encode("utf-8") + CRLF


def _fold_point(line: str, start: int) -> int | None:
    """Where to fold: a single space between two non-blank characters, as late as fits."""
    points = [
        i
        for i in range(max(start, 1), len(line) - 1)
        if line[i] == " " and line[i - 1] not in " \t" and line[i + 1] not in " \t"
    ]
    fitting = [i for i in points if i <= _FOLD_AT]
    if fitting:
        return fitting[-1]
    return points[0] if points else None


def utf8_addr_xtext(address: str) -> str:
    """An address as RFC 6533 ``utf-8-addr-xtext``: ASCII, non-ASCII written ``\\x{HHHH}``."""
    return "".join(
        c if 33 <= ord(c) <= 126 and c not in "+=\\" else f"\\x{{{ord(c):X}}}" for c in address
    )


def address_field(address: str) -> str:
    """``rfc822;addr`` for a recipient field, or RFC 6533 §3's ``utf-8;`` form when the
    address is internationalised (the report parts stay US-ASCII)."""
    address = check_line("address", address).strip().strip("<>")
    if address.isascii():
        return f"rfc822;{address}"
    return f"utf-8;{utf8_addr_xtext(address)}"


def encoded_header(name: str, value: str) -> bytes:
    """A header field with unstructured text; non-ASCII text as RFC 2047 encoded-words."""
    value = clean(value)
    if value.isascii():
        return fold(name, value)
    encoded = Header(value, "utf-8", header_name=name).encode(linesep="\r\n")
    return f"{name}: {encoded}".encode("ascii") + CRLF


def header_section(original: bytes) -> bytes:
    """The header section of a message (up to, not including, the empty line), CRLF."""
    match = _HEADER_END.search(original)
    head = original if match is None else original[: match.start()]
    return crlf(head).rstrip(b"\r\n") + CRLF


def truncate_fields(head: bytes, limit: int) -> bytes:
    """At most ``limit`` octets of a header section, cut after a whole field."""
    if len(head) <= limit:
        return head
    cut = head.rfind(CRLF, 0, limit)
    while cut > 0 and head[cut + 2 : cut + 3] in (b" ", b"\t"):
        cut = head.rfind(CRLF, 0, cut)
    return head[: cut + 2] if cut > 0 else b""


def parse_headers(original: bytes) -> EmailMessage:
    """The original's header fields, decoded (RFC 2047) by the stdlib parser."""
    parsed = BytesHeaderParser(policy=policy.default).parsebytes(header_section(original))
    assert isinstance(parsed, EmailMessage)
    return parsed


def header_text(headers: EmailMessage, name: str) -> str | None:
    """A header field's decoded value on one line, or None; a malformed field reads as absent."""
    try:
        value = headers.get(name)
    except Exception:  # the stdlib's header classes raise assorted errors on junk
        return None
    if value is None:
        return None
    return clean(str(value)) or None


def message_id(headers: EmailMessage) -> str | None:
    """The original's Message-ID, ``<...>`` included, if it has a plausible one."""
    raw = header_text(headers, "Message-ID")
    if raw is None:
        return None
    match = re.search(r"<[^<>\s]+>", raw)
    return match.group(0) if match else None


def new_message_id(domain: str) -> str:
    return f"<{secrets.token_hex(12)}@{check_line('message_id_domain', domain)}>"


def rfc5322_date(when: datetime) -> str:
    if when.tzinfo is None:
        raise ValueError("dates in reports must be timezone-aware")
    return format_datetime(when)


def now() -> datetime:
    return datetime.now(UTC)


def text_part(text: str) -> bytes:
    """A ``text/plain; charset=utf-8`` body part, quoted-printable so it survives 7-bit relays."""
    body = quopri.encodestring(text.replace("\r\n", "\n").encode("utf-8"))
    return (
        b'Content-Type: text/plain; charset="utf-8"\r\n'
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + crlf(body).rstrip(CRLF) + CRLF
    )


def eight_bit(data: bytes) -> bool:
    return any(b > 0x7F for b in data)


def message_part(content_type: str, content: bytes, extra: Iterable[bytes] = ()) -> bytes:
    """A ``message/*`` or ``text/rfc822-headers`` body part carrying ``content`` verbatim.

    RFC 2046 §5.2.1: message/rfc822 may only be 7bit, 8bit or binary, so 8-bit content is
    declared ``8bit`` (the relay needs 8BITMIME for it; our relays have it)."""
    content = crlf(content)
    cte = b"8bit" if eight_bit(content) else b"7bit"
    return (
        f"Content-Type: {content_type}".encode("ascii")
        + CRLF
        + b"".join(extra)
        + b"Content-Transfer-Encoding: "
        + cte
        + CRLF
        + CRLF
        + content
    )


def boundary_for(parts: Sequence[bytes]) -> str:
    """A boundary that occurs in none of the parts (RFC 2046 §5.1.1)."""
    while True:
        boundary = f"=_hygie_{secrets.token_hex(12)}"
        marker = b"--" + boundary.encode("ascii")
        if not any(marker in part for part in parts):
            return boundary


def multipart(header_fields: Sequence[bytes], subtype_params: str, parts: Sequence[bytes]) -> bytes:
    """A complete message: the given header fields, then a multipart body of ``parts``.

    ``subtype_params`` is e.g. ``report; report-type=delivery-status``."""
    boundary = boundary_for(parts)
    delimiter = b"--" + boundary.encode("ascii")
    body = b""
    for part in parts:
        # RFC 2046 §5.1.1: the CRLF before a delimiter belongs to the delimiter, so each part
        # gets one of its own: a returned original keeps its last line ending.
        body += delimiter + CRLF + part + CRLF
    body += delimiter + b"--" + CRLF
    any_8bit = any(eight_bit(part) for part in parts)
    head = b"".join(header_fields) + b"MIME-Version: 1.0\r\n"
    head += fold("Content-Type", f'multipart/{subtype_params}; boundary="{boundary}"')
    if any_8bit:
        head += b"Content-Transfer-Encoding: 8bit\r\n"
    preamble = b"This is a MIME-encapsulated message.\r\n\r\n"
    return head + CRLF + preamble + body
