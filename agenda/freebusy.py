"""Free/busy (RFC 5546 §3.3): the busy periods of an agenda, and the VFREEBUSY REPLY.

The reply tells when the practitioner is busy, never what for (§3.3.2: FREEBUSY periods with
FBTYPE=BUSY only; no SUMMARY, no attendees of the events).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from icalendar import Calendar, FreeBusy
from icalendar.prop import vCalAddress, vPeriod

from agenda.event import StoredEvent, address_of
from agenda.itip import ItipError
from agenda.recurrence import aware, occurrences

MAX_RANGE = dt.timedelta(days=366)


def busy_periods(
    events: Iterable[StoredEvent], start: dt.datetime, end: dt.datetime
) -> list[tuple[dt.datetime, dt.datetime]]:
    """Merged busy periods in UTC, clipped to [start, end) (RFC 5545 §3.8.2.6)."""
    periods: list[tuple[dt.datetime, dt.datetime]] = []
    for occurrence in occurrences(events, start, end):
        if not occurrence.busy:
            continue
        begin = max(occurrence.start, start).astimezone(dt.UTC)
        finish = min(occurrence.end, end).astimezone(dt.UTC)
        if finish <= begin:
            continue
        if periods and begin <= periods[-1][1]:
            periods[-1] = (periods[-1][0], max(periods[-1][1], finish))
        else:
            periods.append((begin, finish))
    return periods


def requested_range(request: FreeBusy) -> tuple[dt.datetime, dt.datetime]:
    """DTSTART and DTEND of a VFREEBUSY REQUEST (§3.3.2: both required)."""
    if "DTSTART" not in request or "DTEND" not in request:
        raise ItipError("a VFREEBUSY REQUEST without DTSTART and DTEND (RFC 5546 §3.3.2)")
    start: Any = request.decoded("DTSTART")
    end: Any = request.decoded("DTEND")
    begin, finish = aware(start), aware(end)
    if finish <= begin or finish - begin > MAX_RANGE:
        raise ItipError("a VFREEBUSY range that is empty or longer than a year")
    return begin, finish


def requested_of(request: FreeBusy) -> list[str]:
    """The calendars asked about: the ATTENDEEs of the request."""
    value: Any = request.get("ATTENDEE")
    items = value if isinstance(value, list) else [value] if value is not None else []
    return [address_of(a) for a in items]


def freebusy_reply(
    request: FreeBusy,
    owner: str,
    periods: list[tuple[dt.datetime, dt.datetime]],
    now: dt.datetime,
) -> bytes:
    """METHOD:REPLY with one VFREEBUSY for ``owner`` (RFC 5546 §3.3.2)."""
    start, end = requested_range(request)
    calendar = Calendar()
    calendar.add("PRODID", "-//Hygie//Agenda//FR")
    calendar.add("VERSION", "2.0")
    calendar.add("METHOD", "REPLY")
    reply = FreeBusy()
    if "UID" in request:
        reply.add("UID", str(request["UID"]))
    reply.add("DTSTAMP", now.astimezone(dt.UTC))
    organizer: Any = request.get("ORGANIZER")
    if organizer is not None:
        reply.add("ORGANIZER", vCalAddress(f"mailto:{address_of(organizer)}"))
    reply.add("ATTENDEE", vCalAddress(f"mailto:{owner}"))
    reply.add("DTSTART", start.astimezone(dt.UTC))
    reply.add("DTEND", end.astimezone(dt.UTC))
    for begin, finish in periods:
        period = vPeriod((begin, finish))
        period.params["FBTYPE"] = "BUSY"
        reply.add("FREEBUSY", period)
    calendar.add_component(reply)
    return bytes(calendar.to_ical())
