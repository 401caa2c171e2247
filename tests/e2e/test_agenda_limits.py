"""Hostile invitations through a real `hygie serve` (issue 26; agenda/limits.py): a rule that
recurs every second since 1970, one that never occurs, thousands of VEVENTs, time zones that
are not. Each gets its error mail (the reason said) or is applied within bounds, and an
ordinary invitation sent right after them is in the patient's agenda within bounded time,
the server's memory unmoved."""

from __future__ import annotations

import email
import email.policy
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agenda.limits import MAX_BYTES, PROBE_YEARS
from bench.harness import ServerProcess
from tests.agenda.itip_samples import DOCTOR, PATIENT, revised, sample
from tests.e2e.test_agenda_imip import PASSWORD, feed, imip, inbox_count, messages, send
from tests.support.servers import start_server, stop_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    srv = start_server(request, "sqlite", {DOCTOR: PASSWORD, PATIENT: PASSWORD})
    yield srv
    stop_server(srv)


def invitation(uid: str, rule: str = "", start: str = "DTSTART:20261208T093000Z",
               extra: str = "", timezone: str = "") -> bytes:  # fmt: skip
    lines = [
        "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Hostile//EN", "METHOD:REQUEST", timezone,
        "BEGIN:VEVENT", "DTSTAMP:20261120T101600Z", f"UID:{uid}", f"ORGANIZER:mailto:{DOCTOR}",
        f"ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:{PATIENT}", start, "DURATION:PT30M", rule,
        extra, "END:VEVENT", "END:VCALENDAR",
    ]  # fmt: skip
    return ("\r\n".join(line for line in lines if line) + "\r\n").encode()


def many_events(uid: str, count: int) -> bytes:
    events = "".join(
        f"BEGIN:VEVENT\r\nDTSTAMP:20261120T101600Z\r\nUID:{uid}\r\n"
        f"RECURRENCE-ID:2027{i // 28 % 12 + 1:02d}{i % 28 + 1:02d}T093000Z\r\n"
        f"ORGANIZER:mailto:{DOCTOR}\r\nATTENDEE:mailto:{PATIENT}\r\n"
        f"DTSTART:2027{i // 28 % 12 + 1:02d}{i % 28 + 1:02d}T093000Z\r\nDURATION:PT30M\r\n"
        "END:VEVENT\r\n"
        for i in range(count)
    )
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nMETHOD:REQUEST\r\n"
        + events + "END:VCALENDAR\r\n"
    ).encode()  # fmt: skip


EVIL_ZONE = (
    "BEGIN:VTIMEZONE\r\nTZID:Evil\r\nBEGIN:STANDARD\r\nDTSTART:19000101T000000\r\n"
    "RRULE:FREQ=SECONDLY\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nEND:STANDARD\r\n"
    "END:VTIMEZONE"
)
#: (UID, the calendar, the reason its error mail gives).
REFUSED = [
    ("secondly", invitation("secondly", "RRULE:FREQ=SECONDLY;COUNT=1000000000",
                            "DTSTART:19700101T000000Z"), "recurs at most daily"),
    ("never", invitation("never", "RRULE:FREQ=MONTHLY;BYMONTH=2;BYMONTHDAY=30"),
     f"no instance in {PROBE_YEARS} years"),
    ("daily-monthday", invitation("daily-monthday", "RRULE:FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30"),
     "BYMONTHDAY is not accepted in a DAILY rule"),
    ("hourly", invitation("hourly", "RRULE:FREQ=YEARLY;BYHOUR=" + ",".join(map(str, range(24)))
                          + ";BYMINUTE=0,30"), "more than 24 instances a day"),
    ("thousands", many_events("thousands", 3000), f"larger than {MAX_BYTES // 1024} KiB"),
    ("components", many_events("components", 600)[: MAX_BYTES - 1000]
     .rsplit(b"BEGIN:VEVENT", 1)[0] + b"END:VCALENDAR\r\n", "more than 500 components"),
    ("zone-offset", invitation("zone-offset", start="DTSTART;TZID=Bad:20261208T093000",
                               timezone="BEGIN:VTIMEZONE\r\nTZID:Bad\r\nBEGIN:STANDARD\r\n"
                               "DTSTART:19000101T000000\r\nTZOFFSETFROM:+9999\r\n"
                               "TZOFFSETTO:+9999\r\nEND:STANDARD\r\nEND:VTIMEZONE"),
     "Offset must be less than 24 hours"),
]  # fmt: skip
#: Accepted, and their expansion bounded: a COUNT of a billion from 1900, 24 instances a day
#: since 1900 without COUNT, a zone unknown, a zone whose own rule recurs every second.
BOUNDED = [
    invitation("billion", "RRULE:FREQ=DAILY;COUNT=1000000000;BYHOUR="
               + ",".join(map(str, range(24))), "DTSTART:19000101T093000Z"),
    invitation("since-1900", "RRULE:FREQ=DAILY;BYHOUR=" + ",".join(map(str, range(24))),
               "DTSTART:19000101T093000Z"),
    invitation("mars", start="DTSTART;TZID=Mars/Olympus:20261208T093000"),
    invitation("evil-zone", "RRULE:FREQ=WEEKLY", "DTSTART;TZID=Evil:20261208T093000",
               timezone=EVIL_ZONE),
]  # fmt: skip


def rss(server: ServerProcess) -> int:
    for line in Path(f"/proc/{server.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def error_reasons(raw_messages: list[bytes]) -> str:
    texts = []
    for raw in raw_messages:
        message = email.message_from_bytes(raw, policy=email.policy.default)
        body = message.get_body(("plain",))
        texts.append(body.get_content() if body is not None else "")
    return "\n".join(texts)


def test_hostile_invitations_are_refused_or_bounded(server: ServerProcess) -> None:
    send(server, DOCTOR, PATIENT, imip(DOCTOR, PATIENT, "warm", sample("outlook_request.ics"),
                                       "REQUEST"))  # fmt: skip
    before = rss(server)
    errors_before = inbox_count(server, DOCTOR)
    started = time.monotonic()
    for uid, calendar, _ in REFUSED:
        send(server, DOCTOR, PATIENT, imip(DOCTOR, PATIENT, uid, calendar, "REQUEST"))
    for calendar in BOUNDED:
        send(server, DOCTOR, PATIENT, imip(DOCTOR, PATIENT, "bounded", calendar, "REQUEST"))
    # An ordinary invitation, right behind them, is in the agenda within seconds.
    ordinary = revised(sample("thunderbird_request.ics"), sequence=0)
    send(server, DOCTOR, PATIENT, imip(DOCTOR, PATIENT, "Rendez-vous", ordinary, "REQUEST"))
    deadline = time.monotonic() + 120
    while "6b0f1d2e-5c1a-4f8e-9d41-3a7e0c2b9f10" not in feed(server, PATIENT):
        assert time.monotonic() < deadline, "the ordinary invitation was not applied"
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    got = messages(server, DOCTOR, after=errors_before, timeout=30)
    deadline = time.monotonic() + 30
    while len(got) < len(REFUSED) and time.monotonic() < deadline:
        time.sleep(0.3)
        got = messages(server, DOCTOR, after=errors_before)
    reasons = error_reasons(got)
    for uid, _, reason in REFUSED:
        assert reason in reasons, (uid, reasons)
    agenda = feed(server, PATIENT)
    assert not {uid for uid, _, _ in REFUSED} & set(agenda)
    assert {"billion", "since-1900", "mars", "evil-zone"} <= set(agenda)
    # About 15 s on an idle machine; before the limits, the SECONDLY rule never ended.
    assert elapsed < 120, f"{elapsed:.1f} s for the whole batch"
    assert rss(server) - before < 64 * 2**20
