"""Messages built byte by byte, and the real clients (``smtplib``, ``imaplib``) that carry them.

Messages are built by hand rather than with :mod:`email` so that the exact bytes sent are known
and can be compared with what IMAP returns: CRLF line ends, a final CRLF, no line over 998
octets, base64 in 76-character lines (RFC 2045 §6.8).
"""

from __future__ import annotations

import base64
import imaplib
import re
import smtplib
import ssl
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

TIMEOUT = 60.0


class Server(Protocol):
    """What the helpers need of ``bench.harness.ServerProcess``."""

    smtp_port: int
    smtp_tls_port: int
    imap_port: int
    imap_tls_port: int

    def ssl_context(self) -> ssl.SSLContext: ...


@dataclass
class Attachment:
    filename: str
    content: bytes
    content_type: str = "application/octet-stream"
    encoding: str = "base64"  # or "7bit"/"8bit" for text that is already in lines


def crlf(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return re.sub(rb"\r?\n", b"\r\n", data)


def b64_lines(data: bytes) -> bytes:
    encoded = base64.b64encode(data)
    return b"".join(encoded[i : i + 76] + b"\r\n" for i in range(0, len(encoded), 76))


def make_message(
    sender: str,
    recipients: Sequence[str],
    subject: str,
    body: str | bytes,
    *,
    attachments: Iterable[Attachment] = (),
    message_id: str | None = None,
    extra_headers: Sequence[str] = (),
) -> bytes:
    """An RFC 5322 message; 8-bit UTF-8 is kept as is (declare it with 8BITMIME/SMTPUTF8)."""
    body_bytes = crlf(body)
    if not body_bytes.endswith(b"\r\n"):
        body_bytes += b"\r\n"
    eight_bit = any(b > 0x7F for b in body_bytes)
    headers = [
        f"From: <{sender}>",
        f"To: {', '.join(f'<{r}>' for r in recipients)}",
        f"Subject: {subject}",
        "Date: Mon, 17 Nov 2025 09:30:00 +0100",
        f"Message-ID: <{message_id or hex(time.monotonic_ns())[2:]}@client.test>",
        "MIME-Version: 1.0",
        *extra_headers,
    ]
    attachments = list(attachments)
    text_part_headers = [
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Transfer-Encoding: {'8bit' if eight_bit else '7bit'}",
    ]
    if not attachments:
        return crlf("\n".join(headers + text_part_headers) + "\n\n") + body_bytes
    boundary = f"=_hygie_{abs(hash((subject, len(body_bytes)))):x}"
    out = crlf("\n".join([*headers, f'Content-Type: multipart/mixed; boundary="{boundary}"']))
    out += b"\r\n\r\nThis is a multi-part message in MIME format.\r\n"
    out += crlf(f"--{boundary}\n" + "\n".join(text_part_headers) + "\n\n") + body_bytes
    for att in attachments:
        content = b64_lines(att.content) if att.encoding == "base64" else crlf(att.content)
        if not content.endswith(b"\r\n"):
            content += b"\r\n"
        out += crlf(
            f"--{boundary}\n"
            f'Content-Type: {att.content_type}; name="{att.filename}"\n'
            f'Content-Disposition: attachment; filename="{att.filename}"\n'
            f"Content-Transfer-Encoding: {att.encoding}\n\n"
        )
        out += content
    out += crlf(f"--{boundary}--\n")
    return out


_TRACE = re.compile(rb"^(received|return-path):", re.IGNORECASE)


def strip_trace(raw: bytes) -> bytes:
    """The message as the client sent it: drop the trace fields (``Received:``,
    ``Return-Path:``, with their continuation lines) that the server prepended (RFC 5321 §4.4)."""
    while _TRACE.match(raw):
        end = raw.find(b"\r\n")
        while end >= 0 and raw[end + 2 : end + 3] in (b" ", b"\t"):
            end = raw.find(b"\r\n", end + 2)
        if end < 0:
            return b""
        raw = raw[end + 2 :]
    return raw


def header_block(raw: bytes) -> bytes:
    """Header section including the empty line that ends it (``BODY[HEADER]``, RFC 9051 §6.4.5)."""
    end = raw.find(b"\r\n\r\n")
    return raw if end < 0 else raw[: end + 4]


# -- SMTP --------------------------------------------------------------------------------------


def smtp_session(
    server: Server, user: str | None, password: str | None, *, implicit_tls: bool = False
) -> smtplib.SMTP:
    """A submission session over TLS (STARTTLS on 2587 or implicit on 2465), logged in."""
    context = server.ssl_context()
    client: smtplib.SMTP
    if implicit_tls:
        client = smtplib.SMTP_SSL(
            "127.0.0.1", server.smtp_tls_port, context=context, timeout=TIMEOUT
        )
        client.ehlo("client.test")
    else:
        client = smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=TIMEOUT)
        client.ehlo("client.test")
        client.starttls(context=context)
        client.ehlo("client.test")
    if user is not None and password is not None:
        client.login(user, password)
    return client


def send(
    server: Server,
    user: str,
    password: str,
    recipients: Sequence[str],
    message: bytes,
    *,
    implicit_tls: bool = False,
    mail_options: Sequence[str] = (),
) -> None:
    with smtp_session(server, user, password, implicit_tls=implicit_tls) as client:
        refused = client.sendmail(user, list(recipients), message, mail_options=list(mail_options))
        assert refused == {}, refused


# -- IMAP --------------------------------------------------------------------------------------


def imap_session(
    server: Server, user: str, password: str, *, starttls: bool = False
) -> imaplib.IMAP4:
    """Logged in over implicit TLS (2993), or over STARTTLS on the plain port (2143)."""
    context = server.ssl_context()
    client: imaplib.IMAP4
    if starttls:
        client = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=TIMEOUT)
        client.starttls(ssl_context=context)
    else:
        client = imaplib.IMAP4_SSL(
            "127.0.0.1", server.imap_tls_port, ssl_context=context, timeout=TIMEOUT
        )
    client.login(user, password)
    return client


@dataclass
class Fetched:
    seq: int
    meta: bytes  # the response text outside the literals: "1 (UID 5 RFC822.SIZE 12 ..."
    literals: dict[str, bytes]  # "BODY[]" -> bytes, "BODY[HEADER]" -> bytes, ...

    @property
    def literal(self) -> bytes | None:
        return next(iter(self.literals.values()), None)


_LITERAL_NAME = re.compile(rb"([^\s(]+) \{\d+\}$")


def parse_fetch(data: list[object]) -> list[Fetched]:
    """imaplib's FETCH data (tuples for literals, bytes otherwise) as one record per message."""
    out: list[Fetched] = []
    for item in data:
        if item is None:
            continue
        head = item[0] if isinstance(item, tuple) else item
        assert isinstance(head, bytes), item
        start = re.match(rb"(\d+) \(", head)
        if start:  # continuation pieces start with a space or ")"
            out.append(Fetched(int(start.group(1)), b"", {}))
        out[-1].meta += head
        if isinstance(item, tuple):
            name = _LITERAL_NAME.search(head)
            assert name, head
            out[-1].literals[name.group(1).decode()] = item[1]
    return out


def meta_uid(f: Fetched) -> int:
    m = re.search(rb"\bUID (\d+)", f.meta)
    assert m, f.meta
    return int(m.group(1))


def fetch_all(client: imaplib.IMAP4) -> list[tuple[int, bytes]]:
    """(UID, message bytes as served) for every message of the selected mailbox."""
    typ, data = client.uid("FETCH", "1:*", "(UID BODY.PEEK[])")
    assert typ == "OK", data
    return [(meta_uid(f), f.literal) for f in parse_fetch(data) if f.literal is not None]


def inbox_messages(server: Server, user: str, password: str) -> list[bytes]:
    client = imap_session(server, user, password)
    try:
        typ, data = client.select("INBOX")
        assert typ == "OK", data
        if int(data[0] or 0) == 0:
            return []
        return [raw for _, raw in fetch_all(client)]
    finally:
        client.logout()


def inbox_count(server: Server, user: str, password: str) -> int:
    client = imap_session(server, user, password)
    try:
        typ, data = client.select("INBOX", readonly=True)
        assert typ == "OK", data
        return int(data[0] or 0)
    finally:
        client.logout()


def find_by_subject(messages: Iterable[bytes], subject: str) -> list[bytes]:
    needle = f"\r\nSubject: {subject}\r\n".encode()
    return [m for m in messages if needle in header_block(b"\r\n" + m)]
