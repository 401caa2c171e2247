"""The iTIP rules (RFC 5546 §3.2) on invitations shaped as Thunderbird, Outlook and Google
send them: create, update, stale and repeated messages, replies, cancellations."""

from __future__ import annotations

import datetime as dt

import pytest

from agenda.event import MASTER, StoredEvent
from agenda.itip import ItipError, Outcome, apply, parse
from tests.agenda.itip_samples import DOCTOR, PATIENT, STRANGER, message, reply, revised, sample

UTC = dt.UTC
NOV = dt.datetime(2026, 11, 20, 10, 16, tzinfo=UTC)  # the Thunderbird sample's DTSTAMP


def held(outcome: Outcome) -> dict[str, StoredEvent]:
    return {e.recurrence_key: e for e in outcome.writes}


@pytest.mark.parametrize(
    "name", ["thunderbird_request.ics", "outlook_request.ics", "google_recurring_request.ics"]
)
def test_a_request_creates_the_attendee_copy_needing_action(name: str) -> None:
    outcome = apply(message(name), PATIENT, DOCTOR, {})
    assert outcome.status == "applied"
    assert outcome.writes and all(e.partstat(PATIENT) == "NEEDS-ACTION" for e in outcome.writes)
    # The alarm comes along (RFC 5545 §3.6.6); stored bytes parse back.
    master = held(outcome)[MASTER]
    assert StoredEvent.from_ical(master.to_ical()).uid == master.uid
    assert master.component.walk("VALARM")


def test_the_organisers_own_copy() -> None:
    outcome = apply(message("thunderbird_request.ics"), DOCTOR, DOCTOR, {})
    assert outcome.status == "applied"
    assert held(outcome)[MASTER].partstat(DOCTOR) == "ACCEPTED"


def test_repeated_and_older_requests_are_ignored() -> None:
    data = sample("thunderbird_request.ics")
    first = held(apply(parse(data), PATIENT, DOCTOR, {}))
    assert apply(parse(data), PATIENT, DOCTOR, first).status == "stale"  # duplicate
    older = revised(data, dtstamp=NOV - dt.timedelta(hours=1))
    assert apply(parse(older), PATIENT, DOCTOR, first).status == "stale"
    later = revised(data, dtstamp=NOV + dt.timedelta(hours=1))
    assert apply(parse(later), PATIENT, DOCTOR, first).status == "applied"
    second = held(apply(parse(revised(data, sequence=2)), PATIENT, DOCTOR, first))
    # A lower SEQUENCE loses even with a later DTSTAMP (§2.1.5).
    late_old = revised(data, sequence=1, dtstamp=NOV + dt.timedelta(days=1))
    assert apply(parse(late_old), PATIENT, DOCTOR, second).status == "stale"


def test_an_answer_stands_unless_rescheduled() -> None:
    data = sample("thunderbird_request.ics")
    copy = held(apply(parse(data), PATIENT, DOCTOR, {}))
    copy[MASTER].set_partstat(PATIENT, "ACCEPTED")
    same_time = held(apply(parse(revised(data, sequence=1)), PATIENT, DOCTOR, copy))
    assert same_time[MASTER].partstat(PATIENT) == "ACCEPTED"
    moved = revised(data, sequence=2, start=dt.datetime(2026, 12, 9, 9, 30, tzinfo=UTC))
    assert (
        held(apply(parse(moved), PATIENT, DOCTOR, same_time))[MASTER].partstat(PATIENT)
        == "NEEDS-ACTION"
    )


def test_a_request_from_someone_else_than_the_organiser_is_refused() -> None:
    outcome = apply(message("thunderbird_request.ics"), PATIENT, STRANGER, {})
    assert outcome.status == "refused" and not outcome.writes


def test_a_reply_updates_the_organisers_copy() -> None:
    data = sample("thunderbird_request.ics")
    organiser = held(apply(parse(data), DOCTOR, DOCTOR, {}))
    outcome = apply(parse(reply(data, PATIENT, "ACCEPTED")), DOCTOR, PATIENT, organiser)
    assert outcome.status == "applied"
    assert held(outcome)[MASTER].partstat(PATIENT) == "ACCEPTED"


def test_a_reply_from_a_non_attendee_is_refused() -> None:
    data = sample("thunderbird_request.ics")
    organiser = held(apply(parse(data), DOCTOR, DOCTOR, {}))
    outcome = apply(parse(reply(data, STRANGER, "ACCEPTED")), DOCTOR, STRANGER, organiser)
    assert outcome.status == "refused" and not outcome.writes
    # Nor may one answer for an attendee (From is not the ATTENDEE, no SENT-BY).
    outcome = apply(parse(reply(data, PATIENT, "DECLINED")), DOCTOR, STRANGER, organiser)
    assert outcome.status == "refused"


def test_out_of_order_replies_are_ignored() -> None:
    data = sample("thunderbird_request.ics")
    organiser = held(apply(parse(data), DOCTOR, DOCTOR, {}))
    late = reply(data, PATIENT, "DECLINED", dtstamp=dt.datetime(2026, 11, 22, tzinfo=UTC))
    early = reply(data, PATIENT, "ACCEPTED", dtstamp=dt.datetime(2026, 11, 21, tzinfo=UTC))
    after_late = held(apply(parse(late), DOCTOR, PATIENT, organiser))
    assert apply(parse(early), DOCTOR, PATIENT, after_late).status == "stale"
    assert after_late[MASTER].partstat(PATIENT) == "DECLINED"
    # A reply to an older SEQUENCE than the organiser's copy is ignored too.
    updated = held(apply(parse(revised(data, sequence=3)), DOCTOR, DOCTOR, organiser))
    assert apply(parse(reply(data, PATIENT, "ACCEPTED")), DOCTOR, PATIENT, updated).status == (
        "stale"
    )


def test_cancel() -> None:
    data = sample("outlook_request.ics")
    copy = held(apply(parse(data), PATIENT, DOCTOR, {}))
    stale = apply(parse(revised(data, method="CANCEL", sequence=0,
                                dtstamp=dt.datetime(2026, 1, 1, tzinfo=UTC))), PATIENT, DOCTOR,
                  {MASTER: StoredEvent.from_ical(revised_event(data, 2))})  # fmt: skip
    assert stale.status == "stale"
    forged = apply(parse(revised(data, method="CANCEL", sequence=1)), PATIENT, STRANGER, copy)
    assert forged.status == "refused"
    cancelled = apply(parse(revised(data, method="CANCEL", sequence=1)), PATIENT, DOCTOR, copy)
    assert cancelled.status == "applied"
    assert held(cancelled)[MASTER].status == "CANCELLED"
    again = apply(parse(revised(data, method="CANCEL", sequence=1)), PATIENT, DOCTOR,
                  held(cancelled))  # fmt: skip
    assert again.status == "stale"


def revised_event(data: bytes, sequence: int) -> bytes:
    return parse(revised(data, sequence=sequence)).events[0].to_ical()


def test_cancel_one_instance_of_a_series() -> None:
    data = sample("google_recurring_request.ics")
    copy = held(apply(parse(data), PATIENT, DOCTOR, {}))
    calendar = parse(revised(data, method="CANCEL", sequence=1))
    master = calendar.events[0]
    master.component.add("RECURRENCE-ID", dt.datetime(2026, 3, 24, 8, 0, tzinfo=UTC))
    calendar.events = [master]
    outcome = apply(calendar, PATIENT, DOCTOR, copy)
    assert outcome.status == "applied"
    assert held(outcome)["20260324T080000Z"].status == "CANCELLED"
    assert MASTER not in held(outcome)


@pytest.mark.parametrize(
    ("problem", "data"),
    [
        ("garbage", b"this is not a calendar"),
        ("no METHOD", sample("thunderbird_request.ics").replace(b"METHOD:REQUEST\r\n", b"")),
        ("no UID", sample("outlook_request.ics").replace(b"UID:", b"X-UID:")),
        (
            "DTEND before DTSTART",
            sample("thunderbird_request.ics").replace(b"20261208T100000", b"20261208T080000"),
        ),
        ("bad date", sample("thunderbird_request.ics").replace(b"20261208T093000", b"2026-12-08")),
        ("unterminated", sample("thunderbird_request.ics").split(b"END:VEVENT")[0]),
    ],
)
def test_malformed_icalendar_is_an_itip_error(problem: str, data: bytes) -> None:
    with pytest.raises(ItipError):
        parse(data)


def test_a_reply_names_exactly_one_attendee() -> None:
    with pytest.raises(ItipError):
        parse(revised(sample("thunderbird_request.ics"), method="REPLY"))


def test_the_attendees_own_reply_sets_their_copy() -> None:
    data = sample("thunderbird_request.ics")
    copy = held(apply(parse(data), PATIENT, DOCTOR, {}))
    outcome = apply(parse(reply(data, PATIENT, "ACCEPTED")), PATIENT, PATIENT, copy)
    assert outcome.status == "applied"
    assert held(outcome)[MASTER].partstat(PATIENT) == "ACCEPTED"
    moved = held(apply(parse(revised(data, sequence=1)), PATIENT, DOCTOR, copy))
    late = apply(parse(reply(data, PATIENT, "DECLINED")), PATIENT, PATIENT, moved)
    assert late.status == "stale"  # an answer to the version before
