"""iMIP (RFC 6047): finding the iCalendar object in a message, and writing Hygie's own."""

from __future__ import annotations

import datetime as dt
import email.policy
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, getaddresses, make_msgid

CALENDAR_TYPE = "text/calendar"


@dataclass(frozen=True)
class CalendarPart:
    data: bytes
    method: str | None  # the Content-Type ``method`` parameter (RFC 6047 §2.4)
    originator: str  # the From address, lower case (RFC 6047 §3)
    subject: str


def find_calendar(raw: bytes) -> CalendarPart | None:
    """The first ``text/calendar`` part of a message (RFC 6047 §2.4), if there is one.
    Google and Outlook also attach the same object as ``invite.ics``
    (``application/ics``): the inline part is the one that counts."""
    message = BytesParser(policy=email.policy.default).parsebytes(raw)
    for part in message.walk():
        if part.is_multipart() or part.get_content_type() != CALENDAR_TYPE:
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        method = part.get_param("method")
        addresses = getaddresses([str(message.get("From", ""))])
        originator = addresses[0][1].lower() if addresses else ""
        return CalendarPart(
            payload, str(method).upper() if isinstance(method, str) else None, originator,
            str(message.get("Subject", "")),
        )  # fmt: skip
    return None


def _base(
    from_address: str, to: str, subject: str, domain: str, sender: str | None = None
) -> EmailMessage:
    message = EmailMessage(policy=email.policy.SMTP)
    local, _, host = from_address.partition("@")
    if sender is None:
        message["From"] = Address("Agenda", local, host)
    else:  # on behalf of the organiser (RFC 5322 §3.6.2: the agent goes in Sender)
        message["From"] = Address("", local, host)
        sender_local, _, sender_host = sender.partition("@")
        message["Sender"] = Address("Agenda", sender_local, sender_host)
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(dt.datetime.now(dt.UTC))
    message["Message-ID"] = make_msgid(domain=domain)
    message["Auto-Submitted"] = "auto-replied"  # RFC 3834 §5: no loops with auto-responders
    return message


def imip_message(
    *, from_address: str, to: str, subject: str, text: str, calendar: bytes, method: str,
    domain: str, sender: str | None = None,
) -> bytes:  # fmt: skip
    """An iMIP message: a text part and the iCalendar object (RFC 6047 §2.4)."""
    message = _base(from_address, to, subject, domain, sender)
    message.set_content(text, cte="quoted-printable")  # 7-bit: any peer takes it
    message.add_attachment(
        calendar, maintype="text", subtype="calendar", disposition="inline",
        params={"method": method, "charset": "UTF-8"},
    )  # fmt: skip
    # add_attachment makes a multipart/mixed; the calendar part must not be named as a file.
    return message.as_bytes()


def error_message(*, from_address: str, to: str, subject: str, problem: str, domain: str) -> bytes:
    """The clear error a sender gets when its iCalendar cannot be read (issue 9 item 6)."""
    message = _base(from_address, to, f"Agenda : invitation non traitée ({subject})"[:200], domain)
    message.set_content(
        "Votre message a bien été remis, mais son agenda n'a pas été mis à jour :\n"
        f"l'objet iCalendar qu'il contient est invalide.\n\nMotif : {problem}\n\n"
        "Your message was delivered, but the calendar was not updated: its iCalendar\n"
        "object is not valid (RFC 5545 / RFC 5546).\n",
        cte="quoted-printable",
    )
    return message.as_bytes()


def reminder_message(
    *, from_address: str, to: str, start: dt.datetime, calendar: bytes, message_id: str,
) -> bytes:  # fmt: skip
    """A reminder (issue 9 item 4): when, and the event attached as an iCalendar file
    (METHOD:PUBLISH, RFC 5546 §3.2.1: information, not an invitation). The subject says only
    the time: mail subjects travel in notifications."""
    domain = from_address.rsplit("@", 1)[1]
    message = _base(from_address, to, f"Rappel : rendez-vous le {start:%d/%m/%Y à %H:%M}", domain)
    message.replace_header("Message-ID", message_id)
    del message["Auto-Submitted"]
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834 §5
    message.set_content(
        f"Rappel : vous avez un rendez-vous le {start:%d/%m/%Y à %H:%M} (heure de Paris).\n"
        "Le détail est dans le fichier joint, à ouvrir avec votre agenda.\n",
        cte="quoted-printable",
    )
    message.add_attachment(
        calendar, maintype="text", subtype="calendar", filename="rendez-vous.ics",
        params={"method": "PUBLISH", "charset": "UTF-8"},
    )  # fmt: skip
    return message.as_bytes()
