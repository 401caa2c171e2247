"""The messages the dialogues append, byte for byte, and what IMAP must say about them.

Sizes and line counts in the expected structures are computed from the parts, so that a
change to a message cannot leave its expectations stale."""

from __future__ import annotations

import base64
import re


def crlf(text: str) -> bytes:
    return re.sub(rb"\r?\n", b"\r\n", text.encode())


def text_message(
    subject: str,
    body: str = "Hello,\nsee you tomorrow.\n",
    *,
    sender: str = "Alice Martin <alice@hygie.test>",
    to: str = "Bob Durand <bob@hygie.test>",
    date: str = "Mon, 17 Nov 2025 09:30:00 +0100",
    message_id: str | None = None,
    extra: str = "",
) -> bytes:
    """A small text/plain message; the body may be UTF-8 (sent as 8bit)."""
    eight_bit = any(ord(ch) > 0x7F for ch in body)
    ident = message_id or re.sub(r"[^A-Za-z0-9]+", "-", subject).strip("-").lower() or "msg"
    return crlf(
        f"From: {sender}\n"
        f"To: {to}\n"
        f"Subject: {subject}\n"
        f"Date: {date}\n"
        f"Message-ID: <{ident}@client.test>\n"
        f"{extra}"
        "MIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=utf-8\n"
        f"Content-Transfer-Encoding: {'8bit' if eight_bit else '7bit'}\n"
        "\n"
        f"{body}"
    )


def header_of(message: bytes) -> bytes:
    """BODY[HEADER]: the header fields and the blank line that ends them (RFC 9051 §6.4.5)."""
    return message[: message.index(b"\r\n\r\n") + 4]


def text_of(message: bytes) -> bytes:
    """BODY[TEXT]: everything after that blank line."""
    return message[message.index(b"\r\n\r\n") + 4 :]


# -- a real-world multipart message: text and HTML alternatives and a PDF attachment ----------
# (the shape Thunderbird and Outlook send: multipart/mixed ⊃ multipart/alternative, RFC 2046)

REPORT_TEXT = crlf(
    "Bonjour,\n"
    "\n"
    "Veuillez trouver ci-joint le compte rendu de l'échographie cardiaque\n"
    "de M. Dupont. Fraction d'éjection conservée.\n"
    "\n"
    "Bien confraternellement,\n"
    "Dr Claire Martin\n"
)
REPORT_HTML = crlf(
    "<html><body>\n"
    "<p>Bonjour,</p>\n"
    "<p>Veuillez trouver ci-joint le compte rendu.</p>\n"
    "</body></html>\n"
)
# A PDF-like attachment with NUL and high bytes, so BINARY must answer with literal8 (RFC 3516).
REPORT_PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n\x00\x01\x02" * 8
REPORT_PDF_B64 = b"".join(
    base64.b64encode(REPORT_PDF)[i : i + 76] + b"\r\n"
    for i in range(0, len(base64.b64encode(REPORT_PDF)), 76)
)
REPORT_PDF_MIME = crlf(
    'Content-Type: application/pdf; name="compte-rendu.pdf"\n'
    'Content-Disposition: attachment; filename="compte-rendu.pdf"\n'
    "Content-Transfer-Encoding: base64\n"
    "\n"
)

REPORT = (
    crlf(
        'From: "Dr. Claire Martin" <claire.martin@hygie.test>\n'
        'To: "Jean Dupont" <jean.dupont@hygie.test>\n'
        "Cc: secretariat.cardiologie@hygie.test\n"
        "Subject: Compte rendu echographie\n"
        "Date: Tue, 18 Nov 2025 14:05:12 +0100\n"
        "Message-ID: <cr-2025-11-18@hygie.test>\n"
        "In-Reply-To: <rdv-2025-11-10@hygie.test>\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="------------mixed01"\n'
        "\n"
        "This is a multi-part message in MIME format.\n"
        "--------------mixed01\n"
        'Content-Type: multipart/alternative; boundary="------------alt02"\n'
        "\n"
        "--------------alt02\n"
        "Content-Type: text/plain; charset=UTF-8; format=flowed\n"
        "Content-Transfer-Encoding: 8bit\n"
        "\n"
    )
    + REPORT_TEXT
    + crlf(
        "\n"
        "--------------alt02\n"
        "Content-Type: text/html; charset=UTF-8\n"
        "Content-Transfer-Encoding: 7bit\n"
        "\n"
    )
    + REPORT_HTML
    + crlf("\n--------------alt02--\n\n--------------mixed01\n")
    + REPORT_PDF_MIME
    + REPORT_PDF_B64
    + crlf("\n--------------mixed01--\n")
)

REPORT_ENVELOPE = (
    '("Tue, 18 Nov 2025 14:05:12 +0100" "Compte rendu echographie"'
    ' (("Dr. Claire Martin" NIL "claire.martin" "hygie.test"))'
    ' (("Dr. Claire Martin" NIL "claire.martin" "hygie.test"))'
    ' (("Dr. Claire Martin" NIL "claire.martin" "hygie.test"))'
    ' (("Jean Dupont" NIL "jean.dupont" "hygie.test"))'
    ' ((NIL NIL "secretariat.cardiologie" "hygie.test"))'
    ' NIL "<rdv-2025-11-10@hygie.test>" "<cr-2025-11-18@hygie.test>")'
)

CRLF = b"\r\n"
_TEXT_PART = (
    f'"TEXT" "PLAIN" ("CHARSET" "UTF-8" "FORMAT" "flowed") NIL NIL "8BIT"'
    f" {len(REPORT_TEXT)} {REPORT_TEXT.count(CRLF)}"
)
_HTML_PART = (
    f'"TEXT" "HTML" ("CHARSET" "UTF-8") NIL NIL "7BIT" {len(REPORT_HTML)} {REPORT_HTML.count(CRLF)}'
)
_PDF_PART = (
    f'"APPLICATION" "PDF" ("NAME" "compte-rendu.pdf") NIL NIL "BASE64" {len(REPORT_PDF_B64)}'
)

# RFC 9051 §7.5.2 BODYSTRUCTURE: with extension data (MD5, disposition, language, location).
REPORT_BODYSTRUCTURE = (
    f"((({_TEXT_PART} NIL NIL NIL NIL)({_HTML_PART} NIL NIL NIL NIL)"
    ' "ALTERNATIVE" ("BOUNDARY" "------------alt02") NIL NIL NIL)'
    f'({_PDF_PART} NIL ("ATTACHMENT" ("FILENAME" "compte-rendu.pdf")) NIL NIL)'
    ' "MIXED" ("BOUNDARY" "------------mixed01") NIL NIL NIL)'
)
# BODY: the same without extension data.
REPORT_BODY = f'((({_TEXT_PART})({_HTML_PART}) "ALTERNATIVE")({_PDF_PART}) "MIXED")'

# -- quoted-printable text, for BINARY (RFC 3516): the server decodes it ------------------------

QP_BODY_DECODED = "Café crème à 8 h, résultats normaux.\r\n".encode()
QP_MESSAGE = crlf(
    "From: Alice Martin <alice@hygie.test>\n"
    "To: Bob Durand <bob@hygie.test>\n"
    "Subject: Quoted printable\n"
    "Date: Mon, 17 Nov 2025 10:00:00 +0100\n"
    "Message-ID: <qp@client.test>\n"
    "MIME-Version: 1.0\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "Content-Transfer-Encoding: quoted-printable\n"
    "\n"
    "Caf=C3=A9 cr=C3=A8me =C3=A0 8 h, r=C3=A9sultats normaux.\n"
)


# -- the SEARCH corpus: five messages with known flags, dates, sizes and words -----------------

ANALYSIS_SUBJECT = "=?UTF-8?Q?R=C3=A9sultats_d=27analyse?="  # "Résultats d'analyse" (RFC 2047)
CORPUS: list[tuple[bytes, str, str]] = [  # (message, flags, internal date)
    (
        text_message(
            "Rendez-vous lundi",
            "Bonjour, rendez-vous lundi à 9 h.\n",
            date="Wed, 01 Oct 2025 12:00:00 +0000",
        ),
        "\\Seen",
        "10-Nov-2025 12:00:00 +0000",
    ),
    (REPORT, "\\Flagged", "18-Nov-2025 12:00:00 +0000"),
    (
        text_message(
            ANALYSIS_SUBJECT,
            "Hémoglobine normale, ferritine basse.\n",
            sender="Bob Durand <bob@hygie.test>",
            date="Fri, 03 Oct 2025 12:00:00 +0000",
            message_id="analyse",
        ),
        "",
        "20-Nov-2025 12:00:00 +0000",
    ),
    (
        text_message(
            "Urgent: ordonnance",
            "Merci de renouveler l'ordonnance.\n",
            date="Sat, 04 Oct 2025 12:00:00 +0000",
        ),
        "\\Answered \\Seen $Important",
        "21-Nov-2025 12:00:00 +0000",
    ),
    (
        text_message(
            "Newsletter",
            "Pour vous désabonner, répondez STOP.\n",
            sender="Dave <dave@news.test>",
            date="Sun, 05 Oct 2025 12:00:00 +0000",
        ),
        "\\Deleted",
        "25-Nov-2025 12:00:00 +0000",
    ),
]
