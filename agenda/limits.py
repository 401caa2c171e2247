"""Limits of an iCalendar object received by mail (issue 26): what it may hold, and what its
recurrence rules may cost.

An invitation is read, and its reminders computed, in the transaction that writes it to an
agenda (:meth:`storage.agenda.AgendaStore.change`); a rule that recurs every second since
1970, or never (``FREQ=MONTHLY;BYMONTH=2;BYMONTHDAY=30``: dateutil then steps through every
month to year 9999), would hold that transaction for seconds or for ever. So the object is
bounded before it is parsed (:func:`size_problem`), each recurring event's rule is checked
once it is (:func:`rule_problem`), and the expansion of any rule stops after
:data:`MAX_STEPS` instances (:mod:`agenda.recurrence`). Each problem is said in the error
mail the sender gets (RFC 5546 §3.6). Pure: no storage, no server.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

from dateutil.rrule import rrulestr
from icalendar.prop import vRecur

#: The ``text/calendar`` part: an invitation is a few KiB (a series with its exceptions, a
#: few tens).
MAX_BYTES: Final = 256 * 1024
#: Components (``BEGIN:`` lines: VEVENT, VALARM, VTIMEZONE and its rules …) in the object.
MAX_COMPONENTS: Final = 500
#: VEVENTs in one message: one UID, its series and the exceptions to it (RFC 5546 §3.2).
MAX_EVENTS: Final = 100
#: Values of RDATE and EXDATE together, in one event.
MAX_DATES: Final = 1000
#: Frequencies an appointment recurs at; and what may refine a daily or weekly one (with
#: these alone, every rule has instances: BYMONTHDAY=30 with BYMONTH=2 has none).
FREQUENCIES: Final = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
DAY_PARTS: Final = frozenset({"FREQ", "INTERVAL", "COUNT", "UNTIL", "WKST", "BYDAY", "BYMONTH",
                              "BYHOUR", "BYMINUTE", "BYSECOND"})  # fmt: skip
#: Instances on one day (BYHOUR × BYMINUTE × BYSECOND).
MAX_TIMES_A_DAY: Final = 24
#: A recurring event starts between these years.
FIRST_YEAR: Final = 1900
LAST_YEAR: Final = 2200
#: A monthly or yearly rule must have an instance within this many years of its start (the
#: Gregorian calendar repeats every 400 years: one without is one that never occurs).
PROBE_YEARS: Final = 400
#: The expansion of a rule stops after this many instances from its start (instances are
#: computed from the start: a rule's COUNT and BYSETPOS depend on every earlier instance).
MAX_STEPS: Final = 20_000


def size_problem(data: bytes) -> str | None:
    """Before parsing: the object's size and its number of components."""
    if len(data) > MAX_BYTES:
        return f"the iCalendar object is larger than {MAX_BYTES // 1024} KiB"
    if data.count(b"BEGIN:") > MAX_COMPONENTS:
        return f"the iCalendar object holds more than {MAX_COMPONENTS} components"
    return None


def _dates(component: Any, name: str) -> int:
    value = component.get(name)
    items = value if isinstance(value, list) else [value] if value is not None else []
    return sum(len(getattr(item, "dts", ())) for item in items)


def rule_problem(component: Any, first: dt.datetime) -> str | None:
    """A recurring VEVENT's RRULE, RDATE and EXDATE, ``first`` its DTSTART (aware)."""
    if _dates(component, "RDATE") + _dates(component, "EXDATE") > MAX_DATES:
        return f"more than {MAX_DATES} RDATE and EXDATE values in one event"
    rule = component.get("RRULE")
    if rule is None:
        return None
    if isinstance(rule, list):
        return "more than one RRULE in an event (RFC 5545 §3.8.5.3)"
    if not FIRST_YEAR <= first.year <= LAST_YEAR:
        return f"a recurring event starts between {FIRST_YEAR} and {LAST_YEAR}"
    freq = str((rule.get("FREQ") or [""])[0]).upper()
    if freq not in FREQUENCIES:
        return f"an appointment recurs at most daily (FREQ={freq or '?'} is not accepted)"
    times = 1
    for part in ("BYHOUR", "BYMINUTE", "BYSECOND"):
        times *= max(1, len(rule.get(part, [])))
    if times > MAX_TIMES_A_DAY:
        return f"more than {MAX_TIMES_A_DAY} instances a day"
    if freq in ("DAILY", "WEEKLY"):
        extra = sorted(set(rule) - DAY_PARTS)
        if extra:
            return f"{extra[0]} is not accepted in a {freq} rule"
        return None
    return None if _occurs(rule, first) else f"the RRULE has no instance in {PROBE_YEARS} years"


def _occurs(rule: Any, first: dt.datetime) -> bool:
    """Whether a monthly or yearly rule has an instance, COUNT and UNTIL aside: tried from the
    same date 400·k years on (the same weekdays, the same leap years), where dateutil's
    search ends at year 9999 after at most ~800 years of months."""
    shift = (9999 - PROBE_YEARS - first.year) // 400 * 400
    recur: Any = vRecur({k: v for k, v in rule.items() if k not in ("COUNT", "UNTIL")})
    text: bytes = recur.to_ical()
    try:
        probe = rrulestr(text.decode(), dtstart=first.replace(year=first.year + shift))
    except (ValueError, TypeError):
        return False
    return next(iter(probe), None) is not None
