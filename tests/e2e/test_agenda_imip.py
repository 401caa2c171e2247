"""The agenda fed by iMIP through a real ``hygie serve`` (issue 9): a practitioner invites a
patient (REQUEST), the patient accepts (REPLY), the practitioner moves the appointment and
then cancels it; stale updates and a stranger's REPLY change nothing; a VFREEBUSY REQUEST is
answered by ``agenda@``; a malformed invitation gets a clear error back. Each agenda is read
through its HTTPS feed, ``/agenda/calendar.ics``, parsed with ``icalendar``."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import imaplib
import smtplib
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
from icalendar import Calendar, Event, FreeBusy

from bench.harness import ServerProcess
from tests.agenda.itip_samples import DOCTOR, PATIENT, reply, revised, sample
from tests.agenda.test_refresh_counter import attendee_message
from tests.support.servers import bearer_token, settle, start_server, stop_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
PASSWORD = "agenda-test-password-1"
COLLEAGUE = "claire.bernard@hygie.test"
UID = "6b0f1d2e-5c1a-4f8e-9d41-3a7e0c2b9f10"  # the Thunderbird sample's
REMINDER_ROUND = 0.2  # seconds between the reminder scheduler's rounds (5 by default)


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    users = {DOCTOR: PASSWORD, PATIENT: PASSWORD, COLLEAGUE: PASSWORD}
    env = {"HYGIE_AGENDA_REMINDER_INTERVAL_SECONDS": str(REMINDER_ROUND)}
    srv = start_server(request, "sqlite", users, env=env)
    yield srv
    stop_server(srv)


def imip(sender: str, to: str, subject: str, calendar: bytes, method: str) -> bytes:
    """An iMIP message as Thunderbird sends it: text, then the text/calendar part with its
    method (RFC 6047 §2.4)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["X-MSS-NIL"] = "HYGIE-TEST"
    message.set_content("Invitation / réponse en pièce jointe.")
    message.add_alternative(calendar, maintype="text", subtype="calendar",
                            params={"method": method, "charset": "UTF-8"})  # fmt: skip
    return message.as_bytes(policy=email.policy.SMTP)


def send(server: ServerProcess, sender: str, to: str, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=60) as smtp:
        smtp.starttls(context=server.ssl_context())
        smtp.login(sender, PASSWORD)
        smtp.sendmail(sender, [to], raw)
    settle(server)  # the agenda is after-commit work


def feed(server: ServerProcess, who: str) -> dict[str, Event]:
    """The agenda of ``who`` over HTTPS, by (UID, RECURRENCE-ID)."""
    token = bearer_token(server, who)
    request = urllib.request.Request(
        f"https://localhost:{server.https_port}/agenda/calendar.ics",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(  # noqa: S310 (https, our own server)
        request, context=server.ssl_context(), timeout=60
    ) as answer:
        assert answer.headers["Content-Type"].startswith("text/calendar")
        calendar = Calendar.from_ical(answer.read())
    return {str(e["UID"]): e for e in calendar.walk("VEVENT")}


def partstat(event: Event, address: str) -> str:
    attendees = event["ATTENDEE"]
    for attendee in attendees if isinstance(attendees, list) else [attendees]:
        if str(attendee).lower() == f"mailto:{address}":
            return str(attendee.params["PARTSTAT"])
    raise AssertionError("not an attendee")


def messages(server: ServerProcess, user: str, after: int = 0, timeout: float = 30) -> list[bytes]:
    deadline = time.monotonic() + timeout
    while True:
        client = imaplib.IMAP4_SSL("localhost", server.imap_tls_port,
                                   ssl_context=server.ssl_context())  # fmt: skip
        client.login(user, PASSWORD)
        _, data = client.select("INBOX", readonly=True)
        count = int(data[0] or 0)
        if count > after:
            _, fetched = client.fetch(f"{after + 1}:*", "(BODY.PEEK[])")
            client.logout()
            return [i[1] for i in fetched if isinstance(i, tuple)]
        client.logout()
        assert time.monotonic() < deadline, "no message came"
        time.sleep(0.3)


def inbox_count(server: ServerProcess, user: str) -> int:
    client = imaplib.IMAP4_SSL("localhost", server.imap_tls_port, ssl_context=server.ssl_context())
    client.login(user, PASSWORD)
    _, data = client.select("INBOX", readonly=True)
    client.logout()
    return int(data[0] or 0)


def test_request_reply_update_cancel(server: ServerProcess) -> None:
    invitation = sample("thunderbird_request.ics")
    before = inbox_count(server, PATIENT)
    send(server, DOCTOR, PATIENT, imip(DOCTOR, PATIENT, "Rendez-vous", invitation, "REQUEST"))
    assert inbox_count(server, PATIENT) == before + 1  # the message itself arrives
    patient_copy = feed(server, PATIENT)[UID]
    assert partstat(patient_copy, PATIENT) == "NEEDS-ACTION"
    assert patient_copy.decoded("DTSTART") == dt.datetime(2026, 12, 8, 8, 30, tzinfo=dt.UTC)
    assert partstat(feed(server, DOCTOR)[UID], PATIENT) == "NEEDS-ACTION"

    # The patient accepts: the practitioner's copy says so.
    accepted = reply(invitation, PATIENT, "ACCEPTED")
    send(server, PATIENT, DOCTOR, imip(PATIENT, DOCTOR, "Accepté", accepted, "REPLY"))
    assert partstat(feed(server, DOCTOR)[UID], PATIENT) == "ACCEPTED"
    assert partstat(feed(server, PATIENT)[UID], PATIENT) == "ACCEPTED"  # her own copy too

    # Someone who is not the attendee cannot answer for her: refused, nothing changes.
    forged = reply(invitation, PATIENT, "DECLINED",
                   dtstamp=dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.UTC))  # fmt: skip
    send(server, COLLEAGUE, DOCTOR, imip(COLLEAGUE, DOCTOR, "Je décline", forged, "REPLY"))
    assert partstat(feed(server, DOCTOR)[UID], PATIENT) == "ACCEPTED"

    # The practitioner moves the appointment (SEQUENCE 1): asked again.
    moved_to = dt.datetime(2026, 12, 9, 14, 0, tzinfo=dt.UTC)
    moved = revised(invitation, sequence=1, start=moved_to,
                    dtstamp=dt.datetime(2026, 11, 21, 9, 0, tzinfo=dt.UTC))  # fmt: skip
    send(server, DOCTOR, PATIENT, imip(DOCTOR, PATIENT, "Rendez-vous déplacé", moved, "REQUEST"))
    patient_copy = feed(server, PATIENT)[UID]
    assert patient_copy.decoded("DTSTART") == moved_to
    assert partstat(patient_copy, PATIENT) == "NEEDS-ACTION"

    # The first invitation, arriving late again, is stale: ignored.
    send(server, DOCTOR, PATIENT, imip(DOCTOR, PATIENT, "Rendez-vous", invitation, "REQUEST"))
    assert feed(server, PATIENT)[UID].decoded("DTSTART") == moved_to

    # Cancelled (SEQUENCE 2): both agendas say so.
    cancel = revised(invitation, method="CANCEL", sequence=2, start=moved_to,
                     dtstamp=dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC))  # fmt: skip
    send(server, DOCTOR, PATIENT, imip(DOCTOR, PATIENT, "Rendez-vous annulé", cancel, "CANCEL"))
    assert str(feed(server, PATIENT)[UID]["STATUS"]) == "CANCELLED"
    assert str(feed(server, DOCTOR)[UID]["STATUS"]) == "CANCELLED"


def test_freebusy_is_answered_without_details(server: ServerProcess) -> None:
    outlook = sample("outlook_request.ics")
    send(server, DOCTOR, PATIENT, imip(DOCTOR, PATIENT, "Mammographie", outlook, "REQUEST"))
    calendar = Calendar()
    calendar.add("PRODID", "-//Hygie tests//FR")
    calendar.add("VERSION", "2.0")
    calendar.add("METHOD", "REQUEST")
    request = FreeBusy()
    request.add("UID", "fb-request-1")
    request.add("DTSTAMP", dt.datetime(2026, 11, 22, tzinfo=dt.UTC))
    request.add("ORGANIZER", f"mailto:{COLLEAGUE}")
    request.add("ATTENDEE", f"mailto:{DOCTOR}")
    request.add("DTSTART", dt.datetime(2026, 4, 1, tzinfo=dt.UTC))
    request.add("DTEND", dt.datetime(2026, 5, 1, tzinfo=dt.UTC))
    calendar.add_component(request)
    before = inbox_count(server, COLLEAGUE)
    send(server, COLLEAGUE, DOCTOR, imip(COLLEAGUE, DOCTOR, "Disponibilités ?",
                                         calendar.to_ical(), "REQUEST"))  # fmt: skip
    (answer,) = messages(server, COLLEAGUE, before)
    message = email.message_from_bytes(answer, policy=email.policy.default)
    assert "agenda@hygie.test" in str(message["From"])
    part = next(p for p in message.walk() if p.get_content_type() == "text/calendar")
    assert part.get_param("method") == "REPLY"
    data = part.get_payload(decode=True)
    (busy,) = Calendar.from_ical(data).walk("VFREEBUSY")
    periods = busy["FREEBUSY"]
    periods = periods if isinstance(periods, list) else [periods]
    # The organiser's copy of the Outlook appointment: 14:00–14:30 Paris (CEST) on 15 April.
    assert [p.dt for p in periods] == [
        (dt.datetime(2026, 4, 15, 12, 0, tzinfo=dt.UTC), dt.datetime(2026, 4, 15, 12, 30,
                                                                      tzinfo=dt.UTC))
    ]  # fmt: skip
    assert b"Mammographie" not in data and b"SUMMARY" not in data


def test_malformed_invitation_gets_an_error_and_is_still_delivered(server: ServerProcess) -> None:
    broken = sample("thunderbird_request.ics").replace(b"UID:", b"X-UID:")
    broken = broken.replace(b"20261208T100000", b"20261208T080000")
    doctor_before = inbox_count(server, DOCTOR)
    patient_before = inbox_count(server, PATIENT)
    agenda_before = feed(server, PATIENT)
    send(server, DOCTOR, PATIENT, imip(DOCTOR, PATIENT, "Invitation cassée", broken, "REQUEST"))
    assert inbox_count(server, PATIENT) == patient_before + 1
    (notice,) = messages(server, DOCTOR, doctor_before)
    message = email.message_from_bytes(notice, policy=email.policy.default)
    assert "agenda@hygie.test" in str(message["From"])
    assert "Invitation cassée" in str(message["Subject"])
    assert "iCalendar" in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert feed(server, PATIENT).keys() == agenda_before.keys()


def test_the_feed_needs_a_token(server: ServerProcess) -> None:
    request = urllib.request.Request(f"https://localhost:{server.https_port}/agenda/calendar.ics")
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, context=server.ssl_context(), timeout=30)  # noqa: S310
    assert raised.value.code == 401


def test_a_reminder_comes_once(server: ServerProcess) -> None:
    """An appointment in 30 minutes whose VALARM says one hour before: the reminder is due at
    once; the server's reminder loop delivers it from agenda@, with the event attached, once."""
    soon = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(minutes=30)
    invitation = revised(sample("thunderbird_request.ics"), start=soon).replace(
        b"6b0f1d2e-5c1a-4f8e-9d41-3a7e0c2b9f10", b"reminder-e2e-1"
    )
    before = inbox_count(server, PATIENT)
    send(server, DOCTOR, PATIENT, imip(DOCTOR, PATIENT, "Bientôt", invitation, "REQUEST"))
    arrived = messages(server, PATIENT, before + 1, timeout=60)  # after the invitation itself
    reminder = email.message_from_bytes(arrived[0], policy=email.policy.default)
    assert "agenda@hygie.test" in str(reminder["From"])
    assert str(reminder["Subject"]).startswith("Rappel : rendez-vous le ")
    attached = next(p for p in reminder.walk() if p.get_content_type() == "text/calendar")
    (event,) = Calendar.from_ical(attached.get_payload(decode=True)).walk("VEVENT")
    assert str(event["UID"]) == "reminder-e2e-1"
    time.sleep(5 * REMINDER_ROUND)  # five more rounds of the reminder loop
    assert inbox_count(server, PATIENT) == before + 2


def test_refresh_is_answered_with_the_latest_version(server: ServerProcess) -> None:
    """RFC 5546 §3.2.6: the patient asks for the latest version (REFRESH); the organiser's
    side answers at once with a REQUEST from the practitioner (Sender: agenda@) that carries
    the current version; a REFRESH from someone not invited gets nothing."""
    uid = b"refresh-e2e-1"
    invitation = sample("thunderbird_request.ics").replace(UID.encode(), uid)
    moved = revised(invitation, sequence=1, start=dt.datetime(2026, 12, 10, 9, 0, tzinfo=dt.UTC),
                    dtstamp=dt.datetime(2026, 11, 21, 9, 0, tzinfo=dt.UTC))  # fmt: skip
    send(server, DOCTOR, PATIENT, imip(DOCTOR, PATIENT, "Rendez-vous", invitation, "REQUEST"))
    send(server, DOCTOR, PATIENT, imip(DOCTOR, PATIENT, "Déplacé", moved, "REQUEST"))
    colleague_before = inbox_count(server, COLLEAGUE)
    stranger = attendee_message(invitation, "REFRESH", COLLEAGUE)
    send(server, COLLEAGUE, DOCTOR, imip(COLLEAGUE, DOCTOR, "Mise à jour ?", stranger, "REFRESH"))
    before = inbox_count(server, PATIENT)
    asked = attendee_message(invitation, "REFRESH", PATIENT)
    send(server, PATIENT, DOCTOR, imip(PATIENT, DOCTOR, "Mise à jour ?", asked, "REFRESH"))
    (answer,) = messages(server, PATIENT, before)
    message = email.message_from_bytes(answer, policy=email.policy.default)
    assert DOCTOR in str(message["From"]) and "agenda@hygie.test" in str(message["Sender"])
    part = next(p for p in message.walk() if p.get_content_type() == "text/calendar")
    assert part.get_param("method") == "REQUEST"
    (event,) = Calendar.from_ical(part.get_payload(decode=True)).walk("VEVENT")
    assert str(event["UID"]) == uid.decode() and int(event["SEQUENCE"]) == 1
    assert event.decoded("DTSTART") == dt.datetime(2026, 12, 10, 9, 0, tzinfo=dt.UTC)
    assert b"X-HYGIE" not in part.get_payload(decode=True)
    assert inbox_count(server, COLLEAGUE) == colleague_before


def test_counter_is_kept_or_declined(server: ServerProcess) -> None:
    """RFC 5546 §3.2.7–3.2.8: the patient proposes another time (COUNTER): the practitioner's
    agenda keeps the proposal on her ATTENDEE line and the event is unchanged; a COUNTER for
    an event the practitioner's agenda does not hold is declined at once (DECLINECOUNTER)."""
    uid = b"counter-e2e-1"
    invitation = sample("thunderbird_request.ics").replace(UID.encode(), uid)
    send(server, DOCTOR, PATIENT, imip(DOCTOR, PATIENT, "Rendez-vous", invitation, "REQUEST"))
    proposed = dt.datetime(2026, 12, 11, 15, 0, tzinfo=dt.UTC)
    counter = attendee_message(invitation, "COUNTER", PATIENT, start=proposed)
    before = inbox_count(server, PATIENT)
    send(server, PATIENT, DOCTOR, imip(PATIENT, DOCTOR, "Autre horaire ?", counter, "COUNTER"))
    kept = feed(server, DOCTOR)[uid.decode()]
    attendees = kept["ATTENDEE"]
    line = next(a for a in (attendees if isinstance(attendees, list) else [attendees])
                if str(a).lower() == f"mailto:{PATIENT}")  # fmt: skip
    assert line.params["X-HYGIE-PROPOSED-START"] == "20261211T150000Z"
    assert kept.decoded("DTSTART") == dt.datetime(2026, 12, 8, 8, 30, tzinfo=dt.UTC)
    assert inbox_count(server, PATIENT) == before  # nothing sent back: the organiser decides

    unknown = attendee_message(invitation.replace(uid, b"counter-e2e-unknown"), "COUNTER",
                               PATIENT, start=proposed)  # fmt: skip
    send(server, PATIENT, DOCTOR, imip(PATIENT, DOCTOR, "Autre horaire ?", unknown, "COUNTER"))
    (answer,) = messages(server, PATIENT, before)
    message = email.message_from_bytes(answer, policy=email.policy.default)
    assert DOCTOR in str(message["From"])
    part = next(p for p in message.walk() if p.get_content_type() == "text/calendar")
    assert part.get_param("method") == "DECLINECOUNTER"
    (event,) = Calendar.from_ical(part.get_payload(decode=True)).walk("VEVENT")
    assert str(event["UID"]) == "counter-e2e-unknown"
