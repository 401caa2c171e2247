"""The user's agenda as the client sees it, and the answers it sends (no Textual import).

The agenda is rebuilt from the mailbox: every iMIP message (RFC 6047) in INBOX and Sent, oldest
first, goes through the same iTIP rules as the server's (:func:`agenda.itip.apply`, RFC 5546
§3.2), so the client works with any IMAP server and any sign-in method (the server's HTTPS feed
needs a bearer token, which password and certificate accounts do not have).

Answers to an invitation are iMIP messages written here: REPLY with the user's PARTSTAT
(§3.2.3) or COUNTER with a new time (§3.2.7), to the ORGANIZER, sent by SMTP like any mail.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, make_msgid, parsedate_to_datetime

from icalendar import Event
from icalendar.prop import vCalAddress

from agenda.event import MASTER, StoredEvent, address_of, calendar_of
from agenda.imip import find_calendar
from agenda.itip import ItipError, apply, parse
from agenda.recurrence import PARIS, occurrences
from client_tui.backend import MailReader
from client_tui.session import find_special

ANSWERS = {"ACCEPTED": "Accepté", "DECLINED": "Refusé", "TENTATIVE": "Provisoire"}
PRODUCT = "HYGIE-CLIENT-0.1.0"  # X-MSS-NIL (ECO.2.4.3)
SCAN_BATCH = 500  # summaries per UID FETCH while looking for iMIP messages


@dataclass(frozen=True)
class Appointment:
    """One occurrence to show: when, what, with whom, and the user's own answer."""

    event: StoredEvent  # the component it comes from (master or override)
    start: dt.datetime
    end: dt.datetime
    summary: str
    location: str
    organizer: str
    partstat: str | None  # the user's PARTSTAT; None when the user organises it
    status: str  # CONFIRMED, TENTATIVE, CANCELLED
    attendees: tuple[tuple[str, str], ...]  # (address, PARTSTAT)

    @property
    def uid(self) -> str:
        return self.event.uid

    @property
    def is_invitation(self) -> bool:
        """Someone else organises it and the user is an attendee: it can be answered."""
        return self.partstat is not None and self.status != "CANCELLED"


def appointment_of(event: StoredEvent, me: str, start: dt.datetime,
                   end: dt.datetime) -> Appointment:  # fmt: skip
    component = event.component
    organizer = event.organizer or ""
    attendees = tuple(
        (address_of(a), str(a.params.get("PARTSTAT", "NEEDS-ACTION")).upper())
        for a in event.attendees()
    )  # fmt: skip
    mine = None if organizer == me.lower() else event.partstat(me)
    return Appointment(
        event, start.astimezone(PARIS), end.astimezone(PARIS),
        str(component.get("SUMMARY", "")) or "(sans titre)", str(component.get("LOCATION", "")),
        organizer, mine, event.status, attendees,
    )  # fmt: skip


@dataclass
class Agenda:
    """The components of one mailbox's agenda, by UID then RECURRENCE-ID key."""

    owner: str
    held: dict[str, dict[str, StoredEvent]] = field(default_factory=dict)

    def take(self, raw: bytes) -> bool:
        """Apply one message if it carries an iTIP object; malformed ones are skipped (the
        server already told their sender)."""
        part = find_calendar(raw)
        if part is None:
            return False
        try:
            message = parse(part.data)
        except ItipError:
            return False
        if not message.events:
            return False  # free/busy: nothing for the agenda
        components = self.held.get(message.uid, {})
        outcome = apply(message, self.owner, part.originator, components)
        if outcome.status != "applied":
            return False
        updated = dict(components)
        for key in outcome.deletes:
            updated.pop(key, None)
        for event in outcome.writes:
            updated[event.recurrence_key] = event
        self.held[message.uid] = updated
        return True

    def events(self) -> list[StoredEvent]:
        return [e for components in self.held.values() for e in components.values()]

    def between(self, start: dt.datetime, end: dt.datetime) -> list[Appointment]:
        """Every occurrence in [start, end), ordered; cancelled ones included (struck out)."""
        found = [appointment_of(o.event, self.owner, o.start, o.end)
                 for o in occurrences(self.events(), start, end)]  # fmt: skip
        found += [self._cancelled(e) for e in self.events()
                  if e.status == "CANCELLED" and e.recurrence_key == MASTER]  # fmt: skip
        return sorted((a for a in found if start <= a.start < end), key=lambda a: a.start)

    def _cancelled(self, event: StoredEvent) -> Appointment:
        start = event.component.decoded("DTSTART")
        begin = start if isinstance(start, dt.datetime) else dt.datetime.combine(start, dt.time())
        if begin.tzinfo is None:
            begin = begin.replace(tzinfo=PARIS)
        return appointment_of(event, self.owner, begin, begin)


def message_date(raw: bytes) -> dt.datetime:
    """The Date header, for replaying messages in the order they were written."""
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    for line in head.decode("utf-8", "replace").splitlines():
        if line.lower().startswith("date:"):
            try:
                when = parsedate_to_datetime(line[5:].strip())
            except (TypeError, ValueError, IndexError):
                break
            return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)
    return dt.datetime.min.replace(tzinfo=dt.UTC)


def build_agenda(owner: str, messages: Iterable[bytes]) -> Agenda:
    agenda = Agenda(owner.lower())
    for raw in sorted(messages, key=message_date):
        agenda.take(raw)
    return agenda


async def agenda_messages(reader: MailReader) -> list[bytes]:
    """The iMIP messages of INBOX and Sent (the invitations received and the answers given;
    the invitations sent and the answers received), found by BODYSTRUCTURE, read with PEEK."""
    folders = await reader.folders()
    names = [f.name for f in folders]
    found: list[bytes] = []
    for folder in ("INBOX", find_special(folders, "\\Sent", "Sent")):
        if folder not in names:
            continue
        await reader.select(folder)
        uids = await reader.uids()
        for at in range(0, len(uids), SCAN_BATCH):
            for summary in await reader.summaries(uids[at : at + SCAN_BATCH]):
                if summary.has_calendar:
                    found.append(await reader.fetch_message(summary.uid, mark_seen=False))
    return found


# -- answers -----------------------------------------------------------------------------------


def _answer_event(invitation: StoredEvent, me: str, partstat: str, now: dt.datetime) -> Event:
    """The VEVENT of a REPLY or COUNTER (RFC 5546 §3.2.3, §3.2.7): UID, SEQUENCE, DTSTAMP,
    ORGANIZER, the user as the one ATTENDEE with their PARTSTAT, and the RECURRENCE-ID of an
    instance."""
    source = invitation.component
    event = Event()
    event.add("UID", source["UID"])
    for name in ("RECURRENCE-ID", "SUMMARY", "DTSTART", "DTEND", "DURATION"):
        if name in source:
            event.add(name, source.decoded(name))
    event.add("SEQUENCE", invitation.sequence)
    event.add("DTSTAMP", now.astimezone(dt.UTC).replace(microsecond=0))
    event.add("ORGANIZER", source["ORGANIZER"])
    attendee = vCalAddress(f"mailto:{me}")
    attendee.params["PARTSTAT"] = partstat
    event.add("ATTENDEE", attendee)
    return event


def _imip(me: str, organizer: str, subject: str, text: str, event: Event, method: str,
          now: dt.datetime) -> EmailMessage:  # fmt: skip
    """An iMIP message from the user (RFC 6047 §2.4): text, then the inline text/calendar
    part with its method. Written by a person, so no Auto-Submitted (RFC 3834)."""
    calendar = calendar_of([StoredEvent(event)], method)
    message = EmailMessage(policy=SMTP_POLICY)
    message["From"] = me
    message["To"] = organizer
    message["Subject"] = subject
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=me.rpartition("@")[2] or "hygie.invalid")
    message["X-MSS-NIL"] = PRODUCT
    message.set_content(text)
    message.add_attachment(
        calendar.to_ical(), maintype="text", subtype="calendar", disposition="inline",
        params={"method": method, "charset": "UTF-8"},
    )  # fmt: skip
    return message


def reply_message(appointment: Appointment, me: str, partstat: str, *,
                  now: dt.datetime | None = None) -> EmailMessage:  # fmt: skip
    """Accept (ACCEPTED), decline (DECLINED) or maybe (TENTATIVE), as a REPLY."""
    if partstat not in ANSWERS:
        raise ValueError(f"an answer is one of {', '.join(ANSWERS)}")
    if not appointment.is_invitation:
        raise ValueError("only an invitation from someone else can be answered")
    now = now or dt.datetime.now(dt.UTC)
    event = _answer_event(appointment.event, me, partstat, now)
    when = f"{appointment.start:%d/%m/%Y %H:%M}"
    subject = f"{ANSWERS[partstat]} : {appointment.summary}"
    text = f"{me} a répondu « {ANSWERS[partstat]} » au rendez-vous du {when}.\n"
    return _imip(me, appointment.organizer, subject, text, event, "REPLY", now)


def counter_message(appointment: Appointment, me: str, start: dt.datetime, comment: str = "",
                    *, now: dt.datetime | None = None) -> EmailMessage:  # fmt: skip
    """Propose a new time (COUNTER, §3.2.7): the same length, starting at ``start``."""
    if not appointment.is_invitation:
        raise ValueError("only an invitation from someone else can be answered")
    if start.tzinfo is None:
        start = start.replace(tzinfo=PARIS)
    now = now or dt.datetime.now(dt.UTC)
    event = _answer_event(appointment.event, me, "TENTATIVE", now)
    length = appointment.end - appointment.start
    for name in ("DTSTART", "DTEND", "DURATION"):
        if name in event:
            del event[name]
    event.add("DTSTART", start)
    event.add("DTEND", start + length)
    if comment:
        event.add("COMMENT", comment)
    subject = f"Nouvel horaire proposé : {appointment.summary}"
    text = (f"{me} propose un autre horaire pour « {appointment.summary} » : le "
            f"{start:%d/%m/%Y à %H:%M} au lieu du {appointment.start:%d/%m/%Y à %H:%M}.\n"
            + (f"\n{comment}\n" if comment else ""))  # fmt: skip
    return _imip(me, appointment.organizer, subject, text, event, "COUNTER", now)


def invitation_in(raw: bytes, me: str) -> Appointment | None:
    """The invitation a received message carries (METHOD:REQUEST), as the reader shows it."""
    part = find_calendar(raw)
    if part is None or (part.method or "") not in ("REQUEST", ""):
        return None
    try:
        message = parse(part.data)
    except ItipError:
        return None
    if message.method != "REQUEST" or not message.events:
        return None
    event = next((e for e in message.events if e.recurrence_key == MASTER), message.events[0])
    if event.attendee(me) is None:
        return None
    start = event.component.decoded("DTSTART")
    end = event.component.decoded("DTEND") if "DTEND" in event.component else start
    begin = _aware(start)
    return appointment_of(event, me, begin, _aware(end) if end is not None else begin)


def _aware(value: dt.date) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=PARIS)
    return dt.datetime(value.year, value.month, value.day, tzinfo=PARIS)
