"""Reminders exactly once across processes, a crash and a restart (issue 9 item 4), end to
end: two ``hygie serve`` processes on one PostgreSQL database, the reminder scheduler's clock
moved through ``[server] test_clock_file`` (no waiting), a daily appointment whose alarms all
fall due at once, the process that claimed them killed with SIGKILL part-way through, then
restarted; every reminder reaches its mailbox once, and only once."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import imaplib
import re
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.harness import ServerProcess
from server.cli.main import main as hygie_main
from tests.agenda.itip_samples import DOCTOR, PATIENT, sample
from tests.e2e.test_agenda_imip import imip, send
from tests.support.pgcluster import PgCluster

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.timeout(300)]
PASSWORD = "agenda-test-password-1"  # the one test_agenda_imip.send logs in with
T0 = dt.datetime(2027, 3, 1, 7, 0, tzinfo=dt.UTC)
DAYS = 12  # a daily appointment: 12 instances, one alarm each, for the patient and the doctor
LEASE = 300
CLAIMED = b'"agenda_reminders_claimed"'


def invitation() -> bytes:
    """The Thunderbird invitation, daily from 2 March 2027 for ``DAYS`` days, alarm 1 h before."""
    data = sample("thunderbird_request.ics")
    data = data.replace(b"DTSTART;TZID=Europe/Paris:20261208T093000",
                        b"DTSTART;TZID=Europe/Paris:20270302T093000\r\n"
                        b"RRULE:FREQ=DAILY;COUNT=" + str(DAYS).encode())  # fmt: skip
    data = data.replace(b"DTEND;TZID=Europe/Paris:20261208T100000",
                        b"DTEND;TZID=Europe/Paris:20270302T100000")  # fmt: skip
    return data.replace(b"6b0f1d2e-5c1a-4f8e-9d41-3a7e0c2b9f10", b"daily-nodes-e2e")


class Mailboxes:
    """Logged-in IMAP sessions on one node, to count and read the reminders."""

    def __init__(self, server: ServerProcess) -> None:
        self.clients = {}
        for user in (DOCTOR, PATIENT):
            client = imaplib.IMAP4_SSL("localhost", server.imap_tls_port,
                                       ssl_context=server.ssl_context())  # fmt: skip
            client.login(user, PASSWORD)
            self.clients[user] = client

    def count(self) -> int:
        total = 0
        for client in self.clients.values():
            _, data = client.status("INBOX", "(MESSAGES)")
            total += int(re.findall(rb"MESSAGES (\d+)", data[0])[0])
        return total

    def reminder_ids(self) -> list[str]:
        ids = []
        for client in self.clients.values():
            client.select("INBOX", readonly=True)
            _, fetched = client.fetch("1:*", "(BODY.PEEK[HEADER])")
            for item in fetched:
                if isinstance(item, tuple):
                    head = email.message_from_bytes(item[1], policy=email.policy.default)
                    if str(head["Subject"]).startswith("Rappel"):
                        ids.append(str(head["Message-ID"]))
            client.unselect()
        return ids

    def close(self, *, quietly: bool = False) -> None:
        for client in self.clients.values():
            try:
                client.logout()
            except (OSError, imaplib.IMAP4.abort):
                if not quietly:
                    raise


def settle(boxes: Mailboxes, quiet: float = 0.6, timeout: float = 30) -> int:
    """The message count once it has not moved for ``quiet`` seconds (a dozen scheduler
    rounds)."""
    deadline = time.monotonic() + timeout
    last, since = boxes.count(), time.monotonic()
    while time.monotonic() - since < quiet:
        assert time.monotonic() < deadline, "the count never settled"
        time.sleep(0.05)
        now = boxes.count()
        if now != last:
            last, since = now, time.monotonic()
    return last


@pytest.fixture
def nodes(
    pg_cluster: PgCluster, tmp_path: Path
) -> Iterator[tuple[ServerProcess, ServerProcess, Path]]:
    url = pg_cluster.create_database(f"e2e_nodes_{uuid.uuid4().hex[:12]}")
    clock = tmp_path / "clock"
    clock.write_text(T0.isoformat())
    env = {
        "HYGIE_SERVER_TEST_MODE": "true", "HYGIE_SERVER_TEST_CLOCK_FILE": str(clock),
        "HYGIE_AGENDA_REMINDER_INTERVAL_SECONDS": "0.05",
        "HYGIE_AGENDA_REMINDER_LEASE_SECONDS": str(LEASE),
        "HYGIE_STORAGE_BLOB_STORE": "database",
    }  # fmt: skip
    first = ServerProcess(database_url=url, env=env)
    second = ServerProcess(database_url=url, env=env)
    try:
        first.init()
        for user in (DOCTOR, PATIENT):  # in this process: a subprocess costs seconds
            result = CliRunner().invoke(
                hygie_main, ["--data", str(first.data_dir), "user", "add", user,
                             "--password-stdin"], input=PASSWORD, env=first.env(),
            )  # fmt: skip
            assert result.exit_code == 0, result.output
        # One operator, two nodes: the same configuration, keys and CA, the same database.
        shutil.copytree(first.data_dir, second.data_dir)
        second._initialised = True
        with ThreadPoolExecutor(2) as pool:  # two process starts at once
            for started in [pool.submit(first.start), pool.submit(second.start)]:
                started.result()
        yield first, second, clock
    finally:
        first.close()
        second.close()


def test_each_reminder_once_across_nodes_a_kill_and_a_restart(
    nodes: tuple[ServerProcess, ServerProcess, Path],
) -> None:
    first, second, clock = nodes
    send(first, DOCTOR, PATIENT, imip(DOCTOR, PATIENT, "Soins quotidiens", invitation(),
                                      "REQUEST"))  # fmt: skip
    boxes = Mailboxes(second)
    try:
        base = settle(boxes, quiet=0.3)  # the invitation; nothing is due yet at T0
        assert boxes.reminder_ids() == []
        expected = 2 * DAYS

        # A month later every alarm is due: one node claims them all (SKIP LOCKED: the other
        # finds none) and sends them; it is killed after a few, holding the rest.
        clock.write_text((T0 + dt.timedelta(days=30)).isoformat())
        deadline = time.monotonic() + 30
        holder = None
        while holder is None or boxes.count() - base < 3:
            assert time.monotonic() < deadline, "no reminder came"
            if holder is None:
                holder = next((n for n in (first, second) if CLAIMED in n.log_bytes()), None)
            time.sleep(0.005)
        holder.kill()
        assert holder.returncode == -9
        other = second if holder is first else first
        if holder is second:  # read through the node that is still up
            boxes.close(quietly=True)
            boxes = Mailboxes(other)
        sent_before_lease = settle(boxes) - base
        assert 3 <= sent_before_lease < expected, "the killed node held no reminder"
        assert CLAIMED not in other.log_bytes()  # the survivor could not take them

        # The node comes back; once the dead node's lease has run out (clock moved past it),
        # the rest go out, from either node, each once.
        holder.start()
        clock.write_text((T0 + dt.timedelta(days=30, seconds=LEASE + 60)).isoformat())
        deadline = time.monotonic() + 30
        while boxes.count() - base < expected:
            assert time.monotonic() < deadline, f"{boxes.count() - base}/{expected} reminders"
            time.sleep(0.05)
        assert settle(boxes) - base == expected  # and no more, many rounds later
        ids = boxes.reminder_ids()
        assert len(ids) == expected and len(set(ids)) == expected, Counter(ids).most_common(3)
    finally:
        boxes.close()
