"""iMIP between two operators (issue 9): an invitation relayed to another operator updates the
attendee's agenda there; the REPLY relayed back updates the organiser's copy; a VFREEBUSY
REQUEST across is answered through the queue (expected to fail until the peer's relay accepts
notices with the null reverse-path)."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import smtplib
from collections.abc import Iterator

import pytest
from icalendar import Calendar, FreeBusy

from bench.federation import operator, trust_each_other
from bench.harness import ServerProcess
from tests.agenda.itip_samples import reply, sample
from tests.e2e.test_agenda_imip import feed, imip, partstat
from tests.e2e.test_relay import PASSWORD, wait_for
from tests.support.servers import stop_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
ALICE = "alice@hygie.test"  # operator A, the practitioner
BOB = "bob@autre.test"  # operator B
UID = "6b0f1d2e-5c1a-4f8e-9d41-3a7e0c2b9f10"


@pytest.fixture(scope="module")
def operators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, ...]]:
    tmp = tmp_path_factory.mktemp("agenda-federation")
    a = operator("hygie.test", {ALICE: PASSWORD}, tmp)
    b = operator("autre.test", {BOB: PASSWORD}, tmp)
    trust_each_other(a, b, env={"HYGIE_RELAY_POLL_SECONDS": "0.2"})
    a.start()
    b.start()
    yield a, b
    for srv in (a, b):
        stop_server(srv)


def send(srv: ServerProcess, sender: str, to: str, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=60) as smtp:
        smtp.starttls(context=srv.ssl_context())
        smtp.login(sender, PASSWORD)
        smtp.sendmail(sender, [to], raw)


def test_invitation_and_reply_across_operators(operators: tuple[ServerProcess, ...]) -> None:
    a, b = operators
    invitation = sample("thunderbird_request.ics").replace(
        b"279035121518989@patient.hygie.test", BOB.encode()
    ).replace(b"paul.martin@hygie.test", ALICE.encode()).replace(
        b"mailto:pa\r\n ul.martin@hygie.test", f"mailto:{ALICE}".encode()
    ).replace(b"mailto:pau\r\n l.martin@hygie.test", f"mailto:{ALICE}".encode())  # fmt: skip
    send(a, ALICE, BOB, imip(ALICE, BOB, "Réunion de concertation", invitation, "REQUEST"))
    wait_for(b, BOB, "Réunion de concertation", timeout=60)
    assert partstat(feed(b, BOB)[UID], BOB) == "NEEDS-ACTION"
    send(b, BOB, ALICE, imip(BOB, ALICE, "Accepté", reply(invitation, BOB, "ACCEPTED"), "REPLY"))
    wait_for(a, ALICE, "Accepté", timeout=60)
    assert partstat(feed(a, ALICE)[UID], BOB) == "ACCEPTED"


def test_freebusy_across_operators(operators: tuple[ServerProcess, ...]) -> None:
    _, b = operators
    calendar = Calendar()
    calendar.add("PRODID", "-//Hygie tests//FR")
    calendar.add("VERSION", "2.0")
    calendar.add("METHOD", "REQUEST")
    request = FreeBusy()
    request.add("UID", "fb-across-1")
    request.add("DTSTAMP", dt.datetime(2026, 11, 22, tzinfo=dt.UTC))
    request.add("ORGANIZER", f"mailto:{BOB}")
    request.add("ATTENDEE", f"mailto:{ALICE}")
    request.add("DTSTART", dt.datetime(2026, 12, 1, tzinfo=dt.UTC))
    request.add("DTEND", dt.datetime(2026, 12, 31, tzinfo=dt.UTC))
    calendar.add_component(request)
    send(b, BOB, ALICE, imip(BOB, ALICE, "Créneaux ?", calendar.to_ical(), "REQUEST"))
    raw = wait_for(b, BOB, "Disponibilités", timeout=60)
    answer = email.message_from_bytes(raw, policy=email.policy.default)
    assert "agenda@hygie.test" in str(answer["From"])
    part = next(p for p in answer.walk() if p.get_content_type() == "text/calendar")
    (busy,) = Calendar.from_ical(part.get_payload(decode=True)).walk("VFREEBUSY")
    periods = busy["FREEBUSY"]
    periods = periods if isinstance(periods, list) else [periods]
    # Alice's own copy of the invitation of the first test: 8 December, 09:30–10:00 Paris.
    assert [p.dt for p in periods] == [
        (dt.datetime(2026, 12, 8, 8, 30, tzinfo=dt.UTC), dt.datetime(2026, 12, 8, 9, 0,
                                                                      tzinfo=dt.UTC))
    ]  # fmt: skip
