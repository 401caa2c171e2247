"""Messages: building new ones, replies and forwards (RFC 5322), reading received ones (text,
HTML shown as text, attachments), and the read receipt (MDN, RFC 8098). No Textual import."""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from email import message_from_bytes
from email.message import EmailMessage, Message
from email.policy import SMTP as SMTP_POLICY
from email.policy import default as default_policy
from email.utils import formataddr, formatdate, getaddresses, make_msgid, parseaddr
from html.parser import HTMLParser
from pathlib import Path
from typing import Protocol

from mailformats import mdn

# The hook for "send a document to a patient". Building the IHE_XDM.zip belongs to
# dossier/xdm.py (and the PDF-in-CDA wrapper to dossier/cda.py); the client never builds its
# own. :mod:`client_tui.mssante` registers a builder that takes the attachments (PDF and/or
# CDA), the patient's INS, the LOINC document type and, for a lone PDF, the patient's identity
# traits and the author, and returns the zip's bytes; without it ``send --patient`` fails.


@dataclass(frozen=True)
class PatientTraits:
    """The INS identity traits a CDA carries (MSSanté reference §H: birth name, first given
    name, birth date, sex), typed by the sender for a lone PDF."""

    birth_name: str
    given_names: str
    birth_date: date
    sex: str  # M or F (HL7 AdministrativeGender, as the INS reference gives it)


@dataclass(frozen=True)
class DocumentAuthor:
    """Who signs a PDF wrapped in CDA: the practitioner (IdNat when known) and structure."""

    given: str
    family: str
    idnat: str | None = None
    organisation: str | None = None


class XdmBuilder(Protocol):
    def __call__(self, attachments: Sequence[Path], patient_ins: str, doc_type: str, /, *,
                 traits: PatientTraits | None = None, author: DocumentAuthor | None = None,
                 replacing: bytes | None = None) -> bytes: ...  # fmt: skip


_xdm_builder: XdmBuilder | None = None


class XdmUnavailable(Exception):
    """No XDM builder is registered in this build, or the files cannot make a document."""


def register_xdm_builder(builder: XdmBuilder | None) -> None:
    global _xdm_builder
    _xdm_builder = builder


def build_xdm_attachment(attachments: Sequence[Path], patient_ins: str, doc_type: str, *,
                         traits: PatientTraits | None = None,
                         author: DocumentAuthor | None = None,
                         replacing: bytes | None = None) -> bytes:  # fmt: skip
    """The ``IHE_XDM.zip`` for ``attachments`` about patient ``patient_ins`` (the hook);
    ``replacing``: the archive of the version this one cancels and replaces."""
    if _xdm_builder is None:
        raise XdmUnavailable(
            "sending to a patient needs the XDM builder of dossier/xdm.py, not in this build"
        )
    return _xdm_builder(attachments, patient_ins, doc_type, traits=traits, author=author,
                        replacing=replacing)  # fmt: skip


def parse_birth_date(text: str) -> date:
    """``JJ/MM/AAAA`` (as French forms write it) or ISO ``AAAA-MM-JJ``; ValueError else."""
    text = text.strip()
    for pattern in ("%d/%m/%Y", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    raise ValueError(f"birth date {text!r}: write it JJ/MM/AAAA")


def author_from_address(address: str) -> DocumentAuthor:
    """``prenom.nom@domain`` (design §5) → given name and family name, for the CDA author
    when no certificate names the practitioner."""
    local = address.partition("@")[0]
    given, _, family = local.partition(".")
    return DocumentAuthor(given=given.replace("-", " ").title().replace(" ", "-"),
                          family=(family or local).replace(".", " ").upper())  # fmt: skip


# The reader's side of the same seam: given an IHE_XDM.zip, the lines to show (patient,
# document type, author, date, title), from dossier.xdm.parse_xdm once it is in the branch.
XdmDescriber = Callable[[bytes], list[tuple[str, str]]]
_xdm_describer: XdmDescriber | None = None


def register_xdm_describer(describer: XdmDescriber | None) -> None:
    global _xdm_describer
    _xdm_describer = describer


def describe_xdm(data: bytes) -> list[tuple[str, str]]:
    """(label, value) lines for an XDM attachment; empty when no describer is registered or
    the archive is refused (the attachment is then listed like any other)."""
    if _xdm_describer is None:
        return []
    try:
        return _xdm_describer(data)
    except Exception:  # a malformed archive must not break the reader: show it as a file
        return []


def is_xdm(filename: str) -> bool:
    """MSSanté names the archive IHE_XDM.zip (Réf#2 ECO.2.1.1)."""
    return filename.upper() == "IHE_XDM.ZIP"


@dataclass
class Draft:
    """What the compose screen edits."""

    sender: str
    to: str = ""
    cc: str = ""
    subject: str = ""
    body: str = ""
    attachments: list[Path] = field(default_factory=list)
    in_reply_to: str = ""
    references: str = ""
    delivery_receipt: bool = False  # DSN NOTIFY=SUCCESS (RFC 3461)
    read_receipt: bool = False  # Disposition-Notification-To (RFC 8098 §2.1)
    forwarded: list[tuple[str, bytes, str]] = field(default_factory=list)  # name, data, type
    draft_uid: int | None = None  # the version in Drafts this one replaces once saved or sent
    html: str = ""  # an HTML version of ``body``: sent as multipart/alternative (RFC 2046 §5.1.4)
    end_exchange: bool = False  # X-MSS-MES: FIN, the patient may no longer reply (ECO.2.2.8)
    replaces: str = ""  # "annule et remplace": the Message-ID of the version this one replaces
    replaces_date: str = ""  # that version's Date, for the mention in the body


#: The mention a new version carries (MSSanté AMBU.MSS/va1.02), first line of its body.
REPLACES_MENTION = "Annule et remplace"


class AttachmentError(Exception):
    """An attachment file cannot be read."""


def addresses(text: str) -> list[str]:
    """``"A <a@x>, b@y"`` → ``["a@x", "b@y"]``."""
    return [a for _, a in getaddresses([text]) if a]


def build_message(draft: Draft, extra: Sequence[tuple[str, bytes, str]] = ()) -> EmailMessage:
    message = EmailMessage(policy=SMTP_POLICY)
    message["From"] = draft.sender
    message["To"] = draft.to
    if draft.cc.strip():
        message["Cc"] = draft.cc
    message["Subject"] = draft.subject
    message["Date"] = formatdate(localtime=True)
    domain = draft.sender.rpartition("@")[2] or "hygie.invalid"
    message["Message-ID"] = message_id(domain)
    parent = draft.replaces or draft.in_reply_to
    if parent:
        # RFC 5322 §3.6.4: In-Reply-To is the parent's Message-ID, References the parent's
        # References followed by it. A new version answers the version it replaces.
        message["In-Reply-To"] = parent
        message["References"] = references(draft.references, parent)
    if draft.read_receipt:
        message["Disposition-Notification-To"] = draft.sender
    message["X-MSS-NIL"] = "HYGIE-CLIENT-0.1.0"  # on every message (MSSanté ECO.2.4.3)
    if draft.end_exchange:
        message["X-MSS-MES"] = "FIN"  # MSSanté ECO.2.2.8: the patient's reply is closed
    body = draft.body or ""
    if draft.replaces:
        when = f" du {draft.replaces_date}" if draft.replaces_date else ""
        body = f"{REPLACES_MENTION} le message{when} ({draft.replaces}).\n\n{body}"
    # Text parts in UTF-8 (MSSanté ECO.2.2.3), in 7 bits so that no 8BITMIME is needed.
    message.set_content(body, charset="utf-8", cte=_text_encoding(body))
    if draft.html.strip():
        # RFC 2046 §5.1.4: the plain text first, the richer HTML last (MSSanté va1.11).
        message.add_alternative(draft.html, subtype="html", charset="utf-8",
                                cte=_text_encoding(draft.html))  # fmt: skip
    for path in draft.attachments:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise AttachmentError(f"cannot read attachment {path}: {exc.strerror}") from exc
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        maintype, _, subtype = kind.partition("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=path.name)
    for name, data, kind in [*draft.forwarded, *extra]:
        maintype, _, subtype = kind.partition("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
        if is_xdm(name) and _xdm_dresser is not None:
            _xdm_dresser(message, data)
    return message


def message_id(domain: str) -> str:
    """A new ``msg-id`` (RFC 5322 §3.6.4: ``"<" id-left "@" id-right ">"``), its right side
    the sender's domain in ASCII (IDNA) form."""
    return make_msgid(domain=_ascii_domain(domain))


def _ascii_domain(domain: str) -> str:
    """``domain`` as A-labels (IDNA), or ``hygie.invalid`` when it has none."""
    try:
        return domain.encode("idna").decode("ascii") if domain else "hygie.invalid"
    except UnicodeError:
        return "hygie.invalid"


_MSG_ID = re.compile(r"<[^<>\s@]+@[^<>\s@]+>")


def references(parent_references: str, parent_id: str) -> str:
    """RFC 5322 §3.6.4: the parent's References (or In-Reply-To) then the parent's
    Message-ID; only well-formed ``msg-id`` tokens, each once, the oldest first."""
    found: list[str] = []
    for token in _MSG_ID.findall(f"{parent_references} {parent_id}"):
        if token not in found:
            found.append(token)
    return " ".join(found)


def _text_encoding(text: str) -> str:
    """``7bit`` for short ASCII lines, else ``quoted-printable`` (RFC 2045 §6.7)."""
    if text.isascii() and all(len(line) <= 998 for line in text.splitlines()):
        return "7bit"
    return "quoted-printable"


#: Adds X-MSS-CODECDA / X-MSS-INS (and the conventional subject) for an attached archive.
_xdm_dresser: Callable[[EmailMessage, bytes], None] | None = None


def register_xdm_dresser(dresser: Callable[[EmailMessage, bytes], None] | None) -> None:
    global _xdm_dresser
    _xdm_dresser = dresser


# -- reading -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes

    @property
    def size_text(self) -> str:
        size = len(self.data)
        if size < 1024:
            return f"{size} B"
        if size < 1024 * 1024:
            return f"{size / 1024:.0f} KiB"
        return f"{size / 1024 / 1024:.1f} MiB"


@dataclass
class ReadMessage:
    """A received message as the reader shows it."""

    raw: bytes
    sender: str
    to: str
    cc: str
    date: str
    subject: str
    message_id: str
    references: str
    text: str
    attachments: list[Attachment]
    mdn_to: str  # Disposition-Notification-To, empty when no receipt is asked

    @property
    def sender_address(self) -> str:
        return parseaddr(self.sender)[1]


class _HtmlText(HTMLParser):
    """HTML to plain text: paragraphs and line breaks kept, scripts and styles dropped."""

    BLOCKS = frozenset({"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "table", "hr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "head"):
            self._skip += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")
        if tag == "li":
            self.parts.append("• ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head"):
            self._skip = max(0, self._skip - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(re.sub(r"[ \t\r\n]+", " ", data))


def html_to_text(html: str) -> str:
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    text = "".join(parser.parts)
    lines = [line.strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _part_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, "replace")
    except LookupError:
        return payload.decode("utf-8", "replace")


def read_message(raw: bytes) -> ReadMessage:
    message = message_from_bytes(raw, policy=default_policy)
    plain: list[str] = []
    html: list[str] = []
    attachments: list[Attachment] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        filename = part.get_filename()
        disposition = (part.get_content_disposition() or "").lower()
        kind = part.get_content_type()
        if filename or disposition == "attachment" or kind.startswith("application/"):
            payload = part.get_payload(decode=True)
            data = payload if isinstance(payload, bytes) else b""
            name = filename or f"part-{len(attachments) + 1}{mimetypes.guess_extension(kind) or ''}"
            attachments.append(Attachment(name, kind, data))
        elif kind == "text/plain":
            plain.append(_part_text(part))
        elif kind == "text/html":
            html.append(_part_text(part))
        elif kind.startswith("message/") or kind.startswith("text/"):
            plain.append(_part_text(part))
    text = "\n\n".join(p.strip("\n") for p in plain) if plain else ""
    if not text and html:
        text = "\n\n".join(html_to_text(h) for h in html)

    def header(name: str) -> str:
        try:
            value = message.get(name)
        except Exception:  # a malformed header reads as absent rather than breaking the reader
            return ""
        return " ".join(str(value).split()) if value is not None else ""

    return ReadMessage(
        raw=raw,
        sender=header("From"),
        to=header("To"),
        cc=header("Cc"),
        date=header("Date"),
        subject=header("Subject"),
        message_id=header("Message-ID"),
        references=header("References"),
        text=text,
        attachments=attachments,
        mdn_to=header("Disposition-Notification-To"),
    )


def safe_filename(name: str) -> str:
    """An attachment's name made safe to write in a chosen directory (no path, no dot-file)."""
    base = Path(name.replace("\\", "/")).name.strip().lstrip(".")
    return re.sub(r"[\x00-\x1f]", "_", base) or "attachment"


def save_attachment(attachment: Attachment, directory: Path) -> Path:
    """Write ``attachment`` under ``directory`` without overwriting: ``name (2).pdf`` …"""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / safe_filename(attachment.filename)
    stem, suffix = target.stem, target.suffix
    n = 2
    while target.exists():
        target = directory / f"{stem} ({n}){suffix}"
        n += 1
    target.write_bytes(attachment.data)
    return target


# -- replies and forwards ----------------------------------------------------------------------


def _prefixed(prefix: str, subject: str) -> str:
    return subject if subject.lower().startswith(prefix.lower()) else f"{prefix} {subject}"


def _quoted(original: ReadMessage) -> str:
    quoted = "\n".join(f"> {line}" if line else ">" for line in original.text.splitlines())
    return f"\n\n{original.date}, {original.sender}:\n{quoted}\n"


def reply_draft(original: ReadMessage, me: str, *, to_all: bool = False) -> Draft:
    to = original.sender
    cc = ""
    if to_all:
        others = [
            formataddr((name, addr))
            for name, addr in getaddresses([original.to, original.cc])
            if addr and addr.lower() not in (me.lower(), original.sender_address.lower())
        ]
        cc = ", ".join(others)
    return Draft(
        sender=me,
        to=to,
        cc=cc,
        subject=_prefixed("Re:", original.subject),
        body=_quoted(original),
        in_reply_to=original.message_id,
        references=original.references,
    )


def draft_from_message(saved: ReadMessage, me: str, uid: int) -> Draft:
    """A message kept in Drafts, back in the editor: its fields, text and attachments."""
    message = message_from_bytes(saved.raw, policy=default_policy)
    in_reply_to = " ".join(str(message.get("In-Reply-To", "")).split())
    references = saved.references
    if in_reply_to and references.endswith(in_reply_to):  # build_message appends it again
        references = references[: -len(in_reply_to)].strip()
    return Draft(
        sender=me, to=saved.to, cc=saved.cc, subject=saved.subject, body=saved.text,
        in_reply_to=in_reply_to, references=references, read_receipt=bool(saved.mdn_to),
        forwarded=[(a.filename, a.data, a.content_type) for a in saved.attachments],
        draft_uid=uid,
    )  # fmt: skip


def forward_draft(original: ReadMessage, me: str) -> Draft:
    header = (
        "\n\n-------- Message transféré --------\n"
        f"De : {original.sender}\nDate : {original.date}\nObjet : {original.subject}\n"
        f"À : {original.to}\n\n"
    )
    return Draft(
        sender=me,
        subject=_prefixed("Fwd:", original.subject),
        body=header + original.text,
        forwarded=[(a.filename, a.data, a.content_type) for a in original.attachments],
    )


def build_mdn(original: ReadMessage, me: str) -> Message:
    """A ``displayed`` MDN (RFC 8098 §3), sent only after the user agreed (§2.1: a receipt
    must never be sent without the recipient's consent). The one MDN builder,
    :func:`mailformats.mdn.build_mdn`, as the server's: ``manual-action/MDN-sent-manually``,
    the original's header section returned, not its content."""
    raw = mdn.build_mdn(
        original=original.raw, reporting_ua="hygie-client", from_address=me,
        to_address=original.mdn_to, final_recipient=me, headers_only=True,
        message_id_domain=_ascii_domain(me.rpartition("@")[2]),
        disposition_type="displayed", manual=True,
    )  # fmt: skip
    receipt = message_from_bytes(raw, policy=SMTP_POLICY)
    # A receipt the user reads: its subject says what it is.
    receipt.replace_header("Subject", f"Accusé de lecture : {original.subject}")
    return receipt
