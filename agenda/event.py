"""One calendar component as the agenda keeps it, and the properties the iTIP rules read."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from icalendar import Calendar, Event
from icalendar.prop import vCalAddress

MASTER = ""  # the RECURRENCE-ID key of a master component (or a non-recurring event)


def address_of(value: object) -> str:
    """The e-mail address of a cal-address (RFC 5545 §3.3.3: ``mailto:`` URI), lower case."""
    text = str(value).strip()
    if text.lower().startswith("mailto:"):
        text = text[7:]
    return text.strip().lower()


def utc_key(value: dt.date | dt.datetime) -> str:
    """A RECURRENCE-ID as a stable key: UTC date-time (floating taken as is) or a date."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return value.strftime("%Y%m%dT%H%M%SZ")
    return value.strftime("%Y%m%d")


@dataclass
class StoredEvent:
    """A VEVENT of one agenda, keyed by (UID, RECURRENCE-ID) (RFC 5545 §3.8.4.4)."""

    component: Event

    @classmethod
    def from_ical(cls, data: bytes) -> StoredEvent:
        component = Event.from_ical(data)
        assert isinstance(component, Event)
        return cls(component)

    def to_ical(self) -> bytes:
        return bytes(self.component.to_ical())

    @property
    def uid(self) -> str:
        return str(self.component.get("UID", ""))

    @property
    def recurrence_key(self) -> str:
        rid = self.component.get("RECURRENCE-ID")
        return utc_key(rid.dt) if rid is not None else MASTER

    @property
    def sequence(self) -> int:
        # RFC 5545 §3.8.7.4: absent means 0.
        return int(self.component.get("SEQUENCE", 0))

    @property
    def dtstamp(self) -> dt.datetime | None:
        stamp = self.component.get("DTSTAMP")
        if stamp is None:
            return None
        value = stamp.dt
        if isinstance(value, dt.datetime):
            return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        return None

    @property
    def status(self) -> str:
        return str(self.component.get("STATUS", "CONFIRMED")).upper()

    @property
    def organizer(self) -> str | None:
        organizer = self.component.get("ORGANIZER")
        return address_of(organizer) if organizer is not None else None

    def attendees(self) -> list[vCalAddress]:
        value = self.component.get("ATTENDEE")
        if value is None:
            return []
        return list(value) if isinstance(value, list) else [value]

    def attendee(self, address: str) -> vCalAddress | None:
        for attendee in self.attendees():
            if address_of(attendee) == address.lower():
                return attendee
        return None

    def partstat(self, address: str) -> str | None:
        attendee = self.attendee(address)
        if attendee is None:
            return None
        return str(attendee.params.get("PARTSTAT", "NEEDS-ACTION")).upper()

    def set_partstat(self, address: str, partstat: str) -> None:
        attendee = self.attendee(address)
        if attendee is not None:
            attendee.params["PARTSTAT"] = partstat

    def copy(self) -> StoredEvent:
        return StoredEvent.from_ical(self.to_ical())


def calendar_of(events: list[StoredEvent], method: str | None = None) -> Calendar:
    """A VCALENDAR holding ``events``, with the VTIMEZONEs their TZIDs need (RFC 5545 §3.6.5)."""
    calendar = Calendar()
    calendar.add("PRODID", "-//Hygie//Agenda//FR")
    calendar.add("VERSION", "2.0")
    if method is not None:
        calendar.add("METHOD", method)
    for event in events:
        calendar.add_component(event.component)
    calendar.add_missing_timezones()
    return calendar
