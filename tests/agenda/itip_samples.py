"""Invitations in the shapes calendar programs send (samples/), and the answers they send."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from icalendar import Calendar, Event

from agenda.event import StoredEvent
from agenda.itip import ItipMessage, parse

SAMPLES = Path(__file__).parent / "samples"
DOCTOR = "paul.martin@hygie.test"
PATIENT = "279035121518989@patient.hygie.test"
STRANGER = "180127512345642@patient.hygie.test"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def message(name: str) -> ItipMessage:
    return parse(sample(name))


def revised(
    data: bytes, *, method: str | None = None, sequence: int | None = None,
    dtstamp: dt.datetime | None = None, start: dt.datetime | None = None,
) -> bytes:  # fmt: skip
    """The same invitation with another METHOD, SEQUENCE, DTSTAMP or start (one hour long)."""
    calendar = Calendar.from_ical(data)
    if method is not None:
        calendar["METHOD"] = method
    for event in calendar.walk("VEVENT"):
        if sequence is not None:
            del event["SEQUENCE"]
            event.add("SEQUENCE", sequence)
        if dtstamp is not None:
            del event["DTSTAMP"]
            event.add("DTSTAMP", dtstamp)
        if start is not None:
            del event["DTSTART"]
            del event["DTEND"]
            event.add("DTSTART", start)
            event.add("DTEND", start + dt.timedelta(hours=1))
    return bytes(calendar.to_ical())


def reply(
    invitation: bytes, attendee: str, partstat: str, *, sequence: int = 0,
    dtstamp: dt.datetime | None = None, recurrence_id: dt.datetime | None = None,
) -> bytes:  # fmt: skip
    """What Thunderbird sends back: METHOD:REPLY, one ATTENDEE with its PARTSTAT (RFC 5546
    §3.2.3)."""
    original = StoredEvent(Calendar.from_ical(invitation).walk("VEVENT")[0])
    calendar = Calendar()
    calendar.add("PRODID", "-//Mozilla.org/NONSGML Mozilla Calendar V1.1//EN")
    calendar.add("VERSION", "2.0")
    calendar.add("METHOD", "REPLY")
    event = Event()
    event.add("UID", original.uid)
    event.add("DTSTAMP", dtstamp or dt.datetime(2026, 11, 21, 8, 0, tzinfo=dt.UTC))
    event.add("SEQUENCE", sequence)
    event["ORGANIZER"] = original.component["ORGANIZER"]
    event.add("ATTENDEE", f"mailto:{attendee}", parameters={"PARTSTAT": partstat})
    event["DTSTART"] = original.component["DTSTART"]
    if recurrence_id is not None:
        event.add("RECURRENCE-ID", recurrence_id)
    event.add("SUMMARY", "Réponse")
    calendar.add_component(event)
    return bytes(calendar.to_ical())
