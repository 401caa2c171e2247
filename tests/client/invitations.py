"""Invitations as a calendar program sends them (iMIP REQUEST, RFC 6047 §2.4), for the
agenda tests."""

from __future__ import annotations

import datetime as dt
import uuid
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from icalendar import Calendar, Event
from icalendar.prop import vCalAddress

from agenda.recurrence import PARIS


def invitation(organizer: str, attendee: str, summary: str, start: dt.datetime, *,
               uid: str | None = None, sent: dt.datetime | None = None,
               location: str = "Cabinet, salle 2") -> bytes:  # fmt: skip
    """The bytes of an iMIP REQUEST from ``organizer`` to ``attendee``, 30 minutes long."""
    event = Event()
    event.add("UID", uid or str(uuid.uuid4()))
    event.add("DTSTAMP", (sent or dt.datetime.now(dt.UTC)).replace(microsecond=0))
    event.add("SEQUENCE", 0)
    event.add("SUMMARY", summary)
    event.add("LOCATION", location)
    event.add("DTSTART", start.astimezone(PARIS))
    event.add("DTEND", start.astimezone(PARIS) + dt.timedelta(minutes=30))
    event.add("ORGANIZER", vCalAddress(f"mailto:{organizer}"))
    for who, partstat in ((organizer, "ACCEPTED"), (attendee, "NEEDS-ACTION")):
        address = vCalAddress(f"mailto:{who}")
        address.params["PARTSTAT"] = partstat
        address.params["RSVP"] = "TRUE"
        event.add("ATTENDEE", address)
    calendar = Calendar()
    calendar.add("PRODID", "-//Test//Invitations//FR")
    calendar.add("VERSION", "2.0")
    calendar.add("METHOD", "REQUEST")
    calendar.add_component(event)
    calendar.add_missing_timezones()
    message = EmailMessage()
    message["From"] = organizer
    message["To"] = attendee
    message["Subject"] = f"Invitation : {summary}"
    message["Date"] = format_datetime(sent or dt.datetime.now(dt.UTC))
    message["Message-ID"] = f"<{uuid.uuid4()}@hygie.test>"
    message.set_content("Vous êtes invité(e).")
    message.add_alternative(calendar.to_ical(), maintype="text", subtype="calendar",
                            params={"method": "REQUEST", "charset": "UTF-8"})  # fmt: skip
    return message.as_bytes(policy=SMTP)
