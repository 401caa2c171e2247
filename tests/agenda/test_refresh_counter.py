"""REFRESH and COUNTER at the organiser's copy (RFC 5546 §3.2.6–3.2.8): a REFRESH from an
attendee is answered with the latest version, from anyone else refused; a COUNTER is kept on
the organiser's copy for the organiser to decide, or declined at once when the event is
unknown or cancelled."""

from __future__ import annotations

import datetime as dt

from icalendar import Calendar, Event

from agenda.event import MASTER, StoredEvent
from agenda.itip import (
    ANSWER_DECLINECOUNTER,
    ANSWER_REQUEST,
    PROPOSED_END,
    PROPOSED_START,
    REPLY_STAMP,
    Outcome,
    apply,
    declined_counter,
    for_attendee,
    parse,
)
from tests.agenda.itip_samples import DOCTOR, PATIENT, STRANGER, reply, revised, sample

UTC = dt.UTC
NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def held(outcome: Outcome) -> dict[str, StoredEvent]:
    return {e.recurrence_key: e for e in outcome.writes}


def attendee_message(
    invitation: bytes, method: str, attendee: str, *, start: dt.datetime | None = None,
    sequence: int = 0, dtstamp: dt.datetime = NOW,
) -> bytes:  # fmt: skip
    """A REFRESH (§3.2.6: UID, ORGANIZER, the ATTENDEE asking, DTSTAMP) or a COUNTER
    (§3.2.7: the event with the proposed DTSTART/DTEND)."""
    original = StoredEvent(Calendar.from_ical(invitation).walk("VEVENT")[0])
    calendar = Calendar()
    calendar.add("PRODID", "-//Mozilla.org/NONSGML Mozilla Calendar V1.1//EN")
    calendar.add("VERSION", "2.0")
    calendar.add("METHOD", method)
    event = Event()
    event.add("UID", original.uid)
    event.add("DTSTAMP", dtstamp)
    event["ORGANIZER"] = original.component["ORGANIZER"]
    event.add("ATTENDEE", f"mailto:{attendee}")
    if start is not None:
        event.add("SEQUENCE", sequence)
        event.add("DTSTART", start)
        event.add("DTEND", start + dt.timedelta(minutes=30))
        event.add("SUMMARY", "Proposition")
    calendar.add_component(event)
    return bytes(calendar.to_ical())


def organiser_copy() -> tuple[bytes, dict[str, StoredEvent]]:
    data = sample("thunderbird_request.ics")
    copy = held(apply(parse(data), DOCTOR, DOCTOR, {}))
    accepted = held(apply(parse(reply(data, PATIENT, "ACCEPTED")), DOCTOR, PATIENT, copy))
    return data, accepted


def test_a_refresh_from_an_attendee_asks_for_the_latest_version() -> None:
    data, copy = organiser_copy()
    outcome = apply(parse(attendee_message(data, "REFRESH", PATIENT)), DOCTOR, PATIENT, copy)
    assert (outcome.status, outcome.answer) == ("noted", ANSWER_REQUEST)
    assert not outcome.writes  # nothing changes on the organiser's side
    # What goes out: the organiser's copy without Hygie's bookkeeping, stamped now.
    latest = for_attendee(copy[MASTER], NOW)
    assert latest.dtstamp == NOW and latest.partstat(PATIENT) == "ACCEPTED"
    assert REPLY_STAMP.encode() not in latest.to_ical()
    assert REPLY_STAMP.encode() in copy[MASTER].to_ical()  # the stored copy keeps it


def test_a_refresh_from_a_non_attendee_is_refused() -> None:
    data, copy = organiser_copy()
    outcome = apply(parse(attendee_message(data, "REFRESH", STRANGER)), DOCTOR, STRANGER, copy)
    assert (outcome.status, outcome.answer) == ("refused", "")
    # A REFRESH naming an attendee but sent by someone else is the sender's: refused too.
    outcome = apply(parse(attendee_message(data, "REFRESH", PATIENT)), DOCTOR, STRANGER, copy)
    assert (outcome.status, outcome.answer) == ("refused", "")
    # Nor does an attendee's own copy answer a REFRESH: only the organiser's does.
    attendee_copy = held(apply(parse(data), PATIENT, DOCTOR, {}))
    outcome = apply(parse(attendee_message(data, "REFRESH", PATIENT)), PATIENT, PATIENT,
                    attendee_copy)  # fmt: skip
    assert outcome.answer == ""


def test_a_counter_is_kept_for_the_organiser() -> None:
    data, copy = organiser_copy()
    proposed = dt.datetime(2026, 12, 9, 14, 0, tzinfo=UTC)
    counter = parse(attendee_message(data, "COUNTER", PATIENT, start=proposed))
    outcome = apply(counter, DOCTOR, PATIENT, copy)
    assert (outcome.status, outcome.answer) == ("applied", "")
    kept = held(outcome)[MASTER]
    attendee = kept.attendee(PATIENT)
    assert attendee is not None
    assert attendee.params[PROPOSED_START] == "20261209T140000Z"
    assert attendee.params[PROPOSED_END] == "20261209T143000Z"
    # The event itself is unchanged: the organiser decides (a new REQUEST, or DECLINECOUNTER).
    assert kept.component.decoded("DTSTART") == copy[MASTER].component.decoded("DTSTART")
    assert kept.partstat(PATIENT) == "ACCEPTED"
    # The same COUNTER again, or an older one, changes nothing; a later one replaces it.
    assert apply(counter, DOCTOR, PATIENT, held(outcome)).status == "stale"
    later = parse(attendee_message(data, "COUNTER", PATIENT, start=proposed + dt.timedelta(
        days=1), dtstamp=NOW + dt.timedelta(hours=1)))  # fmt: skip
    again = held(apply(later, DOCTOR, PATIENT, held(outcome)))[MASTER].attendee(PATIENT)
    assert again is not None and again.params[PROPOSED_START] == "20261210T140000Z"


def test_a_counter_from_a_non_attendee_is_refused() -> None:
    data, copy = organiser_copy()
    counter = parse(attendee_message(data, "COUNTER", STRANGER, start=NOW))
    outcome = apply(counter, DOCTOR, STRANGER, copy)
    assert (outcome.status, outcome.answer) == ("refused", "")
    # Sent by someone else than the ATTENDEE it names: no answer at all.
    forged = parse(attendee_message(data, "COUNTER", PATIENT, start=NOW))
    assert apply(forged, DOCTOR, STRANGER, {}).answer == ""


def test_a_counter_for_an_unknown_or_cancelled_event_is_declined() -> None:
    data, copy = organiser_copy()
    counter = parse(attendee_message(data, "COUNTER", PATIENT, start=NOW))
    unknown = apply(counter, DOCTOR, PATIENT, {})
    assert (unknown.status, unknown.answer) == ("unknown", ANSWER_DECLINECOUNTER)
    cancel = parse(revised(data, method="CANCEL", sequence=1))
    cancelled = held(apply(cancel, DOCTOR, DOCTOR, copy))
    outcome = apply(counter, DOCTOR, PATIENT, cancelled)
    assert outcome.answer == ANSWER_DECLINECOUNTER and not outcome.writes
    # The DECLINECOUNTER names the event, its organiser and the attendee who proposed.
    declined = declined_counter(counter.events[0], PATIENT, NOW)
    reread = parse(b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//\r\nMETHOD:DECLINECOUNTER"
                   b"\r\n" + declined.to_ical() + b"END:VCALENDAR\r\n")  # fmt: skip
    event = reread.events[0]
    assert event.uid == counter.uid and event.organizer == DOCTOR
    assert event.attendee(PATIENT) is not None and event.dtstamp == NOW
