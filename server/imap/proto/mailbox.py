"""Mailbox names: modified UTF-7 (RFC 3501 §5.1.3), UTF-8 (RFC 9051 §5.1) and INBOX."""

from __future__ import annotations

import base64
import binascii

from .errors import RemoteProtocolError

INBOX = "INBOX"
#: Starts the name of a mailbox the client spelt in modified UTF-7 that does not decode. Such
#: a name is valid syntax (an astring), so it is not a BAD command; it can name no mailbox
#: (no mailbox name holds a control character), so SELECT answers ``NO [NONEXISTENT]``, a LIST
#: pattern matches nothing and CREATE refuses it.
UNDECODABLE = "\x00"


def normalize_inbox(name: str) -> str:
    """RFC 9051 §5.1: ``INBOX`` is case-insensitive; any spelling of it becomes ``INBOX``."""
    if len(name) == 5 and name.upper() == INBOX:
        return INBOX
    return name


# RFC 3501 §5.1.3: printable US-ASCII except "&" represent themselves; "&" is "&-"; anything
# else is "&" + modified BASE64 of UTF-16BE ("," for "/", no padding) + "-".
def encode_modified_utf7(name: str) -> str:
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be", "surrogatepass")
            out.append("&" + base64.b64encode(raw).decode("ascii").rstrip("=").replace("/", ","))
            out.append("-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


def decode_modified_utf7(name: str) -> str:
    """Decode a modified UTF-7 name; raises :class:`RemoteProtocolError` when malformed."""
    if "&" not in name:
        if not name.isascii():
            raise RemoteProtocolError("8-bit mailbox name without UTF8=ACCEPT")
        return name
    out: list[str] = []
    i = 0
    n = len(name)
    while i < n:
        ch = name[i]
        if ch != "&":
            if not 0x20 <= ord(ch) <= 0x7E:
                raise RemoteProtocolError("8-bit mailbox name without UTF8=ACCEPT")
            out.append(ch)
            i += 1
            continue
        end = name.find("-", i + 1)
        if end < 0:
            raise RemoteProtocolError("Unterminated modified UTF-7 in mailbox name")
        chunk = name[i + 1 : end]
        i = end + 1
        if not chunk:
            out.append("&")
            continue
        b64 = chunk.replace(",", "/")
        try:
            raw = base64.b64decode(b64 + "=" * (-len(b64) % 4), validate=True)
            text = raw.decode("utf-16-be")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise RemoteProtocolError("Invalid modified UTF-7 in mailbox name") from None
        if len(raw) % 2 or any(0x20 <= ord(c) <= 0x7E for c in text):
            raise RemoteProtocolError("Invalid modified UTF-7 in mailbox name")
        out.append(text)
    return "".join(out)


def decode_mailbox(wire: bytes, *, utf8: bool) -> str:
    """A mailbox name as sent by the client → the server's Unicode name, INBOX normalised.

    Without UTF-8 (IMAP4rev1 without ``UTF8=ACCEPT``) names are modified UTF-7; with it
    (IMAP4rev2, RFC 9051 §5.1) they are UTF-8 as sent.
    """
    try:
        text = wire.decode("utf-8")
    except UnicodeDecodeError:
        raise RemoteProtocolError("Mailbox name is not valid UTF-8") from None
    if not utf8:
        try:
            text = decode_modified_utf7(text)
        except RemoteProtocolError:
            if not text.isascii():
                raise
            return UNDECODABLE + text
    return normalize_inbox(text)


def encode_mailbox(name: str, *, utf8: bool) -> str:
    """The server's Unicode name → the wire form for this session."""
    return name if utf8 else encode_modified_utf7(name)
