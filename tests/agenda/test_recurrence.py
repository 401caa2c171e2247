"""Occurrences across the Europe/Paris daylight-saving change (29 March 2026), with EXDATE and
a RECURRENCE-ID override; free/busy periods without details."""

from __future__ import annotations

import datetime as dt

from icalendar import Calendar, FreeBusy

from agenda.event import StoredEvent, calendar_of
from agenda.freebusy import busy_periods, freebusy_reply
from agenda.itip import apply
from agenda.recurrence import PARIS, occurrences
from tests.agenda.itip_samples import DOCTOR, PATIENT, message

UTC = dt.UTC
MARCH = dt.datetime(2026, 3, 1, tzinfo=UTC)
MAY = dt.datetime(2026, 5, 1, tzinfo=UTC)


def google_series() -> list[StoredEvent]:
    return apply(message("google_recurring_request.ics"), PATIENT, DOCTOR, {}).writes


def test_weekly_at_nine_in_paris_across_dst() -> None:
    found = occurrences(google_series(), MARCH, MAY)
    starts = [o.start.astimezone(UTC) for o in found]
    assert starts == [
        dt.datetime(2026, 3, 17, 8, 0, tzinfo=UTC),  # 09:00 CET
        dt.datetime(2026, 3, 24, 8, 0, tzinfo=UTC),
        # 31 March is an EXDATE; 7 April moved by its override to 11:00 CEST
        dt.datetime(2026, 4, 7, 9, 0, tzinfo=UTC),
    ]
    assert all(o.start.astimezone(PARIS).hour in (9, 11) for o in found)
    assert found[-1].event.component["SUMMARY"] == "Rééducation cardiaque (horaire décalé)"


def test_series_after_dst_keeps_the_local_hour() -> None:
    event = StoredEvent.from_ical(
        b"BEGIN:VEVENT\r\nUID:vaccin\r\nDTSTAMP:20260101T000000Z\r\n"
        b"DTSTART;TZID=Europe/Paris:20261020T090000\r\nDURATION:PT15M\r\n"
        b"RRULE:FREQ=DAILY;UNTIL=20261028T230000Z\r\nEND:VEVENT\r\n"
    )
    found = occurrences([event], dt.datetime(2026, 10, 1, tzinfo=UTC),
                        dt.datetime(2026, 11, 1, tzinfo=UTC))  # fmt: skip
    assert len(found) == 9
    assert {o.start.astimezone(PARIS).hour for o in found} == {9}
    # 25 October 2026: CEST ends; 09:00 is 07:00 UTC before, 08:00 UTC after.
    assert found[0].start.astimezone(UTC).hour == 7 and found[-1].start.astimezone(UTC).hour == 8


def test_busy_periods_leave_out_cancelled_and_transparent() -> None:
    events = google_series()
    cancelled = StoredEvent.from_ical(events[0].to_ical())
    cancelled.component["STATUS"] = "CANCELLED"
    assert busy_periods([cancelled], MARCH, MAY) == []
    free = StoredEvent.from_ical(events[0].to_ical())
    free.component["TRANSP"] = "TRANSPARENT"
    assert busy_periods([free], MARCH, MAY) == []
    assert len(busy_periods(events, MARCH, MAY)) == 3


def test_freebusy_reply_has_no_details() -> None:
    request = FreeBusy()
    request.add("UID", "fb-1")
    request.add("DTSTAMP", MARCH)
    request.add("ORGANIZER", f"mailto:{PATIENT}")
    request.add("ATTENDEE", f"mailto:{DOCTOR}")
    request.add("DTSTART", MARCH)
    request.add("DTEND", MAY)
    periods = busy_periods(google_series(), MARCH, MAY)
    data = freebusy_reply(request, DOCTOR, periods, MARCH)
    calendar = Calendar.from_ical(data)
    assert calendar["METHOD"] == "REPLY"
    (reply,) = calendar.walk("VFREEBUSY")
    assert len(reply["FREEBUSY"]) == 3
    assert b"SUMMARY" not in data and b"Hygie" not in data.replace(b"-//Hygie//", b"")


def test_feed_carries_the_time_zones() -> None:
    data = calendar_of(google_series()).to_ical()
    calendar = Calendar.from_ical(data)
    assert [tz["TZID"] for tz in calendar.walk("VTIMEZONE")] == ["Europe/Paris"]
    assert len(calendar.walk("VEVENT")) == 2
