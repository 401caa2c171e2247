"""When to remind (RFC 5545 §3.6.6 VALARM, §3.8.6.3 TRIGGER; issue 9 item 4).

Each occurrence of an event gets a reminder at each of its VALARMs (relative to the start, or
to the end with RELATED=END; an absolute TRIGGER fires once), or, without VALARM, 24 hours
before an appointment the mailbox accepted (or organises). Nothing for a cancelled instance
or one the mailbox declined. A reminder whose time has passed before the appointment starts
is due at once. Recurring reminders follow the RRULE within a horizon; they are scheduled
again whenever the event changes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from agenda.event import StoredEvent, utc_key
from agenda.recurrence import aware, occurrences

DEFAULT_LEAD = dt.timedelta(hours=24)
HORIZON = dt.timedelta(days=400)
MAX_PER_EVENT = 60
DEFAULT_ALARM = -1  # the index of the default reminder (no VALARM)


@dataclass(frozen=True, order=True)
class Reminder:
    due: dt.datetime
    occurrence: str  # the instance's start as a RECURRENCE-ID key
    alarm: int  # index of the VALARM in the component, or DEFAULT_ALARM


def reminders(events: Iterable[StoredEvent], owner: str, now: dt.datetime) -> list[Reminder]:
    found: list[Reminder] = []
    absolute_done: set[int] = set()
    for occurrence in occurrences(list(events), now, now + HORIZON):
        event = occurrence.event
        if event.status == "CANCELLED" or occurrence.start <= now:
            continue
        partstat = event.partstat(owner)
        if partstat == "DECLINED":
            continue
        alarms = event.component.walk("VALARM")
        key = utc_key(occurrence.start)
        if not alarms:
            if partstat == "ACCEPTED" or event.organizer == owner.lower():
                found.append(Reminder(max(occurrence.start - DEFAULT_LEAD, now), key, -1))
            continue
        for index, alarm in enumerate(alarms):
            if "TRIGGER" not in alarm:
                continue
            trigger: Any = alarm.decoded("TRIGGER")
            if isinstance(trigger, dt.timedelta):
                related = str(alarm["TRIGGER"].params.get("RELATED", "START")).upper()
                anchor = occurrence.end if related == "END" else occurrence.start
                due = anchor + trigger
            elif isinstance(trigger, dt.date):
                if index in absolute_done:
                    continue
                absolute_done.add(index)
                due, key = aware(trigger), "absolute"
            else:
                continue
            found.append(Reminder(max(due, now), key, index))
    found.sort()
    return found[:MAX_PER_EVENT]
