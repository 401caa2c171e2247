"""The client's agenda rebuilt from iMIP messages with the iTIP rules, and the answers it
writes (REPLY, COUNTER), read back with the same parser the server uses."""

from __future__ import annotations

import datetime as dt

import pytest

from agenda.itip import parse
from agenda.recurrence import PARIS
from client_tui.appointments import build_agenda, counter_message, invitation_in, reply_message
from tests.client.invitations import invitation

DOCTOR = "jean.dupont@hygie.test"
ME = "claire.martin@hygie.test"
START = dt.datetime(2026, 12, 8, 9, 30, tzinfo=PARIS)
MONTH = (dt.datetime(2026, 12, 1, tzinfo=PARIS), dt.datetime(2027, 1, 1, tzinfo=PARIS))


def test_answers_go_back_to_the_organiser() -> None:
    request = invitation(DOCTOR, ME, "Réunion de concertation", START, uid="rcp-1")
    [mine] = build_agenda(ME, [request]).between(*MONTH)
    assert (mine.summary, mine.partstat, mine.start) == ("Réunion de concertation",
                                                         "NEEDS-ACTION", START)  # fmt: skip
    assert mine.is_invitation and invitation_in(request, ME) is not None

    reply = reply_message(mine, ME, "ACCEPTED")
    assert reply["To"] == DOCTOR and "Auto-Submitted" not in reply
    sent = reply.as_bytes()
    [part] = [p for p in reply.walk() if p.get_content_type() == "text/calendar"]
    assert part.get_param("method") == "REPLY"
    answer = parse(part.get_payload(decode=True))
    [attendee] = answer.events[0].attendees()
    assert str(attendee) == f"mailto:{ME}" and attendee.params["PARTSTAT"] == "ACCEPTED"

    # The organiser's agenda (their REQUEST in Sent, the reply in INBOX): ACCEPTED.
    [theirs] = build_agenda(DOCTOR, [request, sent]).between(*MONTH)
    assert dict(theirs.attendees)[ME] == "ACCEPTED" and theirs.partstat is None
    # And the attendee's own copy follows their answer (their reply in Sent).
    [mine] = build_agenda(ME, [request, sent]).between(*MONTH)
    assert mine.partstat == "ACCEPTED"


def test_propose_a_new_time() -> None:
    request = invitation(DOCTOR, ME, "Consultation", START, uid="c-1")
    [mine] = build_agenda(ME, [request]).between(*MONTH)
    later = dt.datetime(2026, 12, 9, 14, 0)
    counter = counter_message(mine, ME, later, "Je suis au bloc le 8.")
    [part] = [p for p in counter.walk() if p.get_content_type() == "text/calendar"]
    proposal = parse(part.get_payload(decode=True))
    assert proposal.method == "COUNTER"
    event = proposal.events[0].component
    assert event.decoded("DTSTART") == later.replace(tzinfo=PARIS)
    assert event.decoded("DTEND") - event.decoded("DTSTART") == dt.timedelta(minutes=30)
    with pytest.raises(ValueError, match="invitation"):
        [own] = build_agenda(DOCTOR, [request]).between(*MONTH)
        reply_message(own, DOCTOR, "ACCEPTED")


def test_junk_and_plain_mail_are_skipped() -> None:
    broken = (b"From: jean.dupont@hygie.test\r\nSubject: x\r\n"
              b"Content-Type: text/calendar; method=REQUEST\r\n\r\n"
              b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nDTSTART:x\r\n"
              b"END:VEVENT\r\nEND:VCALENDAR\r\n")  # fmt: skip
    assert build_agenda(ME, [b"Subject: hello\r\n\r\nhi\r\n", broken]).between(*MONTH) == []
