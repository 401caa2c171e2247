"""Reminders (issue 9 item 4) with a controllable clock: at each VALARM, 24 h before an
accepted appointment by default, following the RRULE; rescheduled when the event changes;
claimed so that two senders on one database never send one twice (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agenda.alarms import reminders
from agenda.event import MASTER
from agenda.itip import apply, parse
from server.delivery.local import describe
from storage.accounts import create_account
from storage.agenda import AgendaStore, Decision, uid_digest
from storage.blobs import open_blob_store
from storage.crypto import MasterKey
from storage.db import Database, migrate
from storage.mailstore import MailStore
from tests.agenda.itip_samples import DOCTOR, PATIENT, message, reply, sample

UTC = dt.UTC
MARCH = dt.datetime(2026, 3, 1, tzinfo=UTC)


def test_each_alarm_follows_the_rrule_across_dst() -> None:
    series = apply(message("google_recurring_request.ics"), PATIENT, DOCTOR, {}).writes
    found = reminders(series, PATIENT, MARCH)
    # TRIGGER:-P1D before 09:00 Paris; 31 March is an EXDATE; the 7 April override has no
    # VALARM and the patient has not accepted it: no default reminder either.
    assert [r.due.astimezone(UTC) for r in found] == [
        dt.datetime(2026, 3, 16, 8, 0, tzinfo=UTC),
        dt.datetime(2026, 3, 23, 8, 0, tzinfo=UTC),
    ]


def test_default_reminder_24h_before_an_accepted_appointment() -> None:
    data = (
        sample("thunderbird_request.ics")
        .replace(b"BEGIN:VALARM", b"BEGIN:X-NONE")
        .replace(b"END:VALARM", b"END:X-NONE")
    )
    copy = apply(parse(data), PATIENT, DOCTOR, {}).writes
    assert reminders(copy, PATIENT, MARCH) == []  # not accepted yet
    copy[0].set_partstat(PATIENT, "ACCEPTED")
    (only,) = reminders(copy, PATIENT, MARCH)
    assert only.due == dt.datetime(2026, 12, 7, 8, 30, tzinfo=UTC)
    copy[0].set_partstat(PATIENT, "DECLINED")
    assert reminders(copy, PATIENT, MARCH) == []
    # Past its time but before the appointment: due at once.
    copy[0].set_partstat(PATIENT, "ACCEPTED")
    late = dt.datetime(2026, 12, 8, 7, 0, tzinfo=UTC)
    assert reminders(copy, PATIENT, late)[0].due == late


def test_a_cancelled_event_has_no_reminder() -> None:
    copy = apply(message("thunderbird_request.ics"), PATIENT, DOCTOR, {}).writes
    copy[0].component["STATUS"] = "CANCELLED"
    assert reminders(copy, PATIENT, MARCH) == []


@pytest.fixture()
async def stores(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[AgendaStore, ...]]:
    await migrate(database_url)
    master = MasterKey.create(tmp_path / "master.key")
    databases = [
        Database(database_url, open_blob_store("database", tmp_path / f"b{n}")) for n in range(2)
    ]
    for database in databases:
        await database.start()
    try:
        yield tuple(AgendaStore(d, master) for d in databases)
    finally:
        for database in databases:
            await database.close()


async def test_two_senders_never_send_one_twice(stores: tuple[AgendaStore, ...]) -> None:
    first, second = stores
    account = await create_account(first.db, first.master, PATIENT, None)
    series = apply(message("google_recurring_request.ics"), PATIENT, DOCTOR, {}).writes
    planned = [(r.due, r.occurrence, r.alarm) for r in reminders(series, PATIENT, MARCH)]
    writes = {e.recurrence_key: e.to_ical() for e in series}
    uid = series[0].uid
    await first.change(account.id, uid, lambda held: Decision(None, writes, [], planned))
    assert len(await first.pending(account.id)) == 2
    assert await first.claim_due(MARCH, dt.timedelta(minutes=5)) == []  # nothing due yet
    now = dt.datetime(2026, 3, 30, tzinfo=UTC)
    claims = await asyncio.gather(*(s.claim_due(now, dt.timedelta(minutes=5)) for s in stores))
    ids = [d.id for batch in claims for d in batch]
    assert len(ids) == 2 and len(set(ids)) == 2
    # Until the lease ends, nobody else takes them; a crashed sender's lease expires.
    assert await second.claim_due(now, dt.timedelta(minutes=5)) == []
    later = now + dt.timedelta(minutes=6)
    retaken = await second.claim_due(later, dt.timedelta(minutes=5))
    assert sorted(d.id for d in retaken) == sorted(ids)
    for due in retaken:
        await second.mark_sent(due.id, later)
    assert await first.claim_due(later + dt.timedelta(hours=1), dt.timedelta(minutes=5)) == []
    # Rescheduling keeps what was sent as sent.
    await first.change(account.id, uid, lambda held: Decision(None, {}, [], planned))
    assert await first.pending(account.id) == []
    assert (await first.components_of(account.id, uid_digest(uid)))[0].startswith(b"BEGIN")


async def test_a_reply_reschedules_the_organisers_reminders(
    stores: tuple[AgendaStore, ...],
) -> None:
    store = stores[0]
    account = await create_account(store.db, store.master, DOCTOR, None)
    data = sample("thunderbird_request.ics")
    own = apply(parse(data), DOCTOR, DOCTOR, {}).writes
    planned = [(r.due, r.occurrence, r.alarm) for r in reminders(own, DOCTOR, MARCH)]
    writes = {e.recurrence_key: e.to_ical() for e in own}
    await store.change(account.id, own[0].uid, lambda held: Decision(None, writes, [], planned))
    accepted = apply(parse(reply(data, PATIENT, "ACCEPTED")), DOCTOR, PATIENT,
                     {MASTER: own[0]})  # fmt: skip
    assert accepted.status == "applied"
    (pending,) = await store.pending(account.id)
    assert pending.due_at == dt.datetime(2026, 12, 8, 7, 30, tzinfo=UTC)  # VALARM -PT1H


async def test_delivery_and_mark_commit_together(stores: tuple[AgendaStore, ...]) -> None:
    """Two senders holding the same reminder (the first's lease ran out while it was slow)
    both try to deliver it: the mark and the delivery are one transaction, so exactly one
    copy reaches the mailbox, whatever the order."""
    first, second = stores
    account = await create_account(first.db, first.master, PATIENT, None)
    series = apply(message("google_recurring_request.ics"), PATIENT, DOCTOR, {}).writes
    planned = [(r.due, r.occurrence, r.alarm) for r in reminders(series, PATIENT, MARCH)]
    writes = {e.recurrence_key: e.to_ical() for e in series}
    await first.change(account.id, series[0].uid, lambda held: Decision(None, writes, [],
                                                                        planned))  # fmt: skip
    now = dt.datetime(2026, 3, 30, tzinfo=UTC)
    (due, _) = await first.claim_due(now, dt.timedelta(minutes=5))
    later = now + dt.timedelta(minutes=6)
    (again, _) = await second.claim_due(later, dt.timedelta(minutes=5))
    assert again.id == due.id
    boxes = [MailStore(s.db) for s in stores]
    recipient = await boxes[0].resolve(PATIENT)
    assert recipient is not None
    raw = b"Subject: Rappel\r\nMessage-ID: <reminder-1@test>\r\n\r\nDemain.\r\n"
    results = await asyncio.gather(*(
        box.deliver_once(raw, describe(raw), [recipient], store.claim_sending(due.id, t))
        for box, store, t in zip(boxes, stores, (now, later), strict=True)
    ))  # fmt: skip
    assert sorted(len(r) for r in results) == [0, 1]
    inbox = await boxes[0].folder(account.id, "INBOX")
    assert inbox is not None and (await boxes[0].counts(inbox.id))["MESSAGES"] == 1
    # Once sent, it is never claimed again.
    assert due.id not in [
        d.id for d in await first.claim_due(later + dt.timedelta(hours=1), dt.timedelta(minutes=5))
    ]
