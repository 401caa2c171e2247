"""Occurrences of an agenda's events in a range (RFC 5545 §3.8.5, §3.8.4.4).

A recurring event is a master (RRULE, RDATE, EXDATE) and overrides keyed by RECURRENCE-ID.
Instances are computed in the event's own time zone: a weekly 09:00 Europe/Paris consultation
is at 08:00 UTC in winter and 07:00 UTC in summer (§3.3.10: "the time of day ... in the
DTSTART's time zone"). Floating times are read in the operator's zone.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.rrule import rruleset, rrulestr

from agenda.event import MASTER, StoredEvent, utc_key
from agenda.limits import MAX_STEPS

PARIS = ZoneInfo("Europe/Paris")
MAX_INSTANCES = 5000  # per event and range: an RRULE without end stays bounded


@dataclass(frozen=True)
class Occurrence:
    start: dt.datetime  # aware
    end: dt.datetime
    event: StoredEvent  # the master or the override that describes this instance

    @property
    def busy(self) -> bool:
        """RFC 5545 §3.8.2.7 (TRANSP, OPAQUE by default) and cancelled instances."""
        transp = str(self.event.component.get("TRANSP", "OPAQUE")).upper()
        return transp != "TRANSPARENT" and self.event.status != "CANCELLED"


def aware(value: dt.date, zone: dt.tzinfo = PARIS) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=zone)
    return dt.datetime(value.year, value.month, value.day, tzinfo=zone)


def span(event: StoredEvent) -> tuple[dt.datetime, dt.timedelta]:
    """DTSTART and the length of one instance (DTEND, DURATION, or §3.6.1's defaults)."""
    component = event.component
    start: Any = component.decoded("DTSTART")
    if "DTEND" in component:
        end: Any = component.decoded("DTEND")
        return aware(start), aware(end) - aware(start)
    if "DURATION" in component:
        return aware(start), component.decoded("DURATION")
    is_day = not isinstance(start, dt.datetime)
    return aware(start), dt.timedelta(days=1) if is_day else dt.timedelta(0)


def _dates(event: StoredEvent, name: str) -> list[dt.datetime]:
    value: Any = event.component.get(name)
    if value is None:
        return []
    found: list[dt.datetime] = []
    for item in value if isinstance(value, list) else [value]:
        for entry in item.dts:
            when = entry.dt
            if isinstance(when, tuple):  # RDATE;VALUE=PERIOD
                when = when[0]
            found.append(aware(when))
    return found


def _origin(rrule: Any, first: dt.datetime, since: dt.datetime) -> dt.datetime:
    """Where to start a rule's expansion: a daily or weekly rule without COUNT repeats
    every INTERVAL days or weeks, so it may start from ``first`` moved on by whole periods to
    just before ``since`` (on the wall clock: a 09:00 stays at 09:00 across DST) instead of
    stepping through every instance since 1970 (issue 26)."""
    freq = str((rrule.get("FREQ") or [""])[0]).upper()
    if freq not in ("DAILY", "WEEKLY") or "COUNT" in rrule or "BYSETPOS" in rrule:
        return first
    interval = max(1, int((rrule.get("INTERVAL") or [1])[0]))
    period = dt.timedelta(days=interval * (7 if freq == "WEEKLY" else 1))
    periods = (since - first) // period - 1
    return first + periods * period if periods > 0 else first


def _series(master: StoredEvent, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    first, length = span(master)
    rules = rruleset()
    rrule: Any = master.component.get("RRULE")
    if rrule is not None:
        if isinstance(rrule, list):  # refused when received (agenda.limits); the first one
            rrule = rrule[0]
        origin = _origin(rrule, first, start - length)
        rules.rrule(rrulestr(rrule.to_ical().decode(), dtstart=origin))
    rules.rdate(first)
    for extra in _dates(master, "RDATE"):
        rules.rdate(extra)
    for excluded in _dates(master, "EXDATE"):
        rules.exdate(excluded)
    instances: list[dt.datetime] = []
    since = start - length
    # At most MAX_STEPS instances from the start (agenda.limits), MAX_INSTANCES in the range.
    for steps, when in enumerate(rules, 1):
        if when >= end or steps > MAX_STEPS or len(instances) >= MAX_INSTANCES:
            break
        if when >= since:
            instances.append(when)
    return instances


def occurrences(
    events: Iterable[StoredEvent], start: dt.datetime, end: dt.datetime
) -> list[Occurrence]:
    """Every instance overlapping [start, end), overrides applied, ordered by start."""
    by_uid: dict[str, dict[str, StoredEvent]] = defaultdict(dict)
    for event in events:
        by_uid[event.uid][event.recurrence_key] = event
    found: list[Occurrence] = []
    for components in by_uid.values():
        master = components.get(MASTER)
        seen: set[str] = set()
        if master is not None and master.status != "CANCELLED":
            _, length = span(master)
            for when in _series(master, start, end):
                key = utc_key(when)
                override = components.get(key)
                if override is None:
                    if when < end and when + length > start:
                        found.append(Occurrence(when, when + length, master))
                    continue
                seen.add(key)
                found.extend(_single(override, start, end))
        live = master is None or master.status != "CANCELLED"
        for key, override in components.items():
            # Overrides of instances outside the range may have moved into it (§3.8.4.4).
            if key != MASTER and key not in seen and live:
                found.extend(_single(override, start, end))
    found.sort(key=lambda o: o.start)
    return found


def _single(event: StoredEvent, start: dt.datetime, end: dt.datetime) -> list[Occurrence]:
    first, length = span(event)
    if first < end and first + length > start:
        return [Occurrence(first, first + length, event)]
    return []
