"""iTIP (RFC 5546): parsing a scheduling message and applying it to one agenda.

:func:`parse` turns the bytes of a ``text/calendar`` part into an :class:`ItipMessage`, or
raises :class:`ItipError` (the sender's fault: the workflow answers with a clear error and
applies nothing). :func:`apply` is pure: from the message, the mailbox it was delivered to,
who sent it and the components that mailbox's agenda holds for that UID, it returns an
:class:`Outcome`: the components to write and the ones to delete, all or nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

from icalendar import Calendar, Event, FreeBusy
from icalendar.cal import Component

from agenda import limits
from agenda.event import MASTER, StoredEvent, address_of

# RFC 5546 §1.4: the methods of a VEVENT; §3.3: VFREEBUSY uses PUBLISH, REQUEST and REPLY.
ORGANIZER_METHODS = frozenset({"PUBLISH", "REQUEST", "ADD", "CANCEL", "DECLINECOUNTER"})
ATTENDEE_METHODS = frozenset({"REPLY", "REFRESH", "COUNTER"})
METHODS = ORGANIZER_METHODS | ATTENDEE_METHODS
PARTSTATS = frozenset({"NEEDS-ACTION", "ACCEPTED", "DECLINED", "TENTATIVE", "DELEGATED"})
# What, when changed by the organiser, asks every attendee again (RFC 5546 §2.1.4).
RESCHEDULING = ("DTSTART", "DTEND", "DURATION", "DUE", "RRULE", "RDATE", "EXDATE")
REPLY_STAMP = "X-HYGIE-REPLY-DTSTAMP"  # per attendee, to drop out-of-order replies
# A COUNTER kept on the organiser's copy, per attendee (RFC 5546 §3.2.7): the proposed
# start and end (UTC) and the COUNTER's DTSTAMP (the latest proposal wins).
PROPOSED_START = "X-HYGIE-PROPOSED-START"
PROPOSED_END = "X-HYGIE-PROPOSED-END"
COUNTER_STAMP = "X-HYGIE-COUNTER-DTSTAMP"
#: What the organiser's side sends back by itself (:attr:`Outcome.answer`).
ANSWER_REQUEST = "REQUEST"  # RFC 5546 §3.2.6: the latest version, to who asked (REFRESH)
ANSWER_DECLINECOUNTER = "DECLINECOUNTER"  # §3.2.8: a COUNTER for an unknown/cancelled event

Status = Literal["applied", "stale", "refused", "unknown", "noted"]


class ItipError(Exception):
    """A malformed iCalendar object or iTIP message (the peer's fault, RFC 5546 §3.6)."""


@dataclass
class ItipMessage:
    method: str
    events: list[StoredEvent] = field(default_factory=list)
    freebusy: list[FreeBusy] = field(default_factory=list)

    @property
    def uid(self) -> str:
        return self.events[0].uid if self.events else ""


@dataclass
class Outcome:
    status: Status
    reason: str = ""
    writes: list[StoredEvent] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)  # RECURRENCE-ID keys
    answer: str = ""  # ANSWER_REQUEST, ANSWER_DECLINECOUNTER or "" (nothing to send)


def _errors(component: Component) -> list[object]:
    found = list(getattr(component, "errors", []) or [])
    for sub in component.subcomponents:
        found += _errors(sub)
    return found


def parse(data: bytes) -> ItipMessage:
    """An iTIP message from a ``text/calendar`` body (RFC 5545 §3.4, RFC 5546 §3), within
    the limits of :mod:`agenda.limits`."""
    problem = limits.size_problem(data)
    if problem:
        raise ItipError(problem)
    try:
        calendars = Calendar.from_ical(data, multiple=True)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise ItipError(f"not an iCalendar object ({exc})") from exc
    if len(calendars) != 1:
        raise ItipError("an iMIP part holds exactly one VCALENDAR (RFC 6047 §2.4)")
    calendar = calendars[0]
    if calendar.name != "VCALENDAR":
        raise ItipError("not a VCALENDAR")
    if _errors(calendar):
        raise ItipError("the iCalendar object has properties that cannot be read")
    method = str(calendar.get("METHOD", "")).upper()
    if not method:
        raise ItipError("no METHOD: not an iTIP message (RFC 5546 §1.4)")
    message = ItipMessage(method)
    try:
        for component in calendar.subcomponents:
            if isinstance(component, Event):
                message.events.append(_checked_event(method, StoredEvent(component)))
            elif isinstance(component, FreeBusy):
                message.freebusy.append(component)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ItipError(f"a component cannot be read ({exc})") from exc
    if method not in METHODS and not message.freebusy:
        raise ItipError(f"method {method} is not an iTIP method for events (RFC 5546 §1.4)")
    if not message.events and not message.freebusy:
        raise ItipError("no VEVENT nor VFREEBUSY in the message")
    if len(message.events) > limits.MAX_EVENTS:
        raise ItipError(f"more than {limits.MAX_EVENTS} VEVENTs in one message")
    if len({e.uid for e in message.events}) > 1:
        # RFC 5546 §3.2: all components of one iTIP message share one UID.
        raise ItipError("components with different UIDs in one message")
    if len({e.recurrence_key for e in message.events}) != len(message.events):
        raise ItipError("two components for the same RECURRENCE-ID")
    return message


def _checked_event(method: str, event: StoredEvent) -> StoredEvent:
    """The restriction tables of RFC 5546 §3.2 for the properties the rules rely on."""
    component = event.component
    if not event.uid:
        raise ItipError("a VEVENT without UID (RFC 5545 §3.6.1)")
    if component.get("DTSTAMP") is None or event.dtstamp is None:
        raise ItipError("a VEVENT without a DTSTAMP date-time (RFC 5545 §3.6.1)")
    if event.organizer is None and method != "PUBLISH":
        raise ItipError(f"a {method} VEVENT without ORGANIZER (RFC 5546 §3.2)")
    for name in ("DTSTART", "DTEND", "RECURRENCE-ID"):
        value = component.get(name)
        if value is not None and not isinstance(value.dt, dt.date):
            raise ItipError(f"{name} is not a date or date-time")
    start = component.get("DTSTART")
    end = component.get("DTEND")
    if method in ("REQUEST", "ADD", "PUBLISH", "COUNTER") and start is None:
        raise ItipError(f"a {method} VEVENT without DTSTART (RFC 5546 §3.2)")
    if start is not None:
        problem = limits.rule_problem(component, _instant(start.dt))
        if problem:
            raise ItipError(problem)
    if start is not None and end is not None:
        if type(start.dt) is not type(end.dt):
            raise ItipError("DTSTART and DTEND of different value types (RFC 5545 §3.8.2.2)")
        if _instant(end.dt) < _instant(start.dt):
            raise ItipError("DTEND before DTSTART (RFC 5545 §3.8.2.2)")
    if method == "REPLY":
        attendees = event.attendees()
        if len(attendees) != 1:
            raise ItipError("a REPLY names exactly one ATTENDEE (RFC 5546 §3.2.3)")
        partstat = str(attendees[0].params.get("PARTSTAT", "")).upper()
        if partstat not in PARTSTATS:
            raise ItipError("a REPLY without a valid PARTSTAT (RFC 5546 §3.2.3)")
    int(component.get("SEQUENCE", 0))
    return event


def _instant(value: dt.date) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)


def is_newer(incoming: StoredEvent, held: StoredEvent) -> bool:
    """RFC 5546 §2.1.5: a higher SEQUENCE wins; at equal SEQUENCE, the later DTSTAMP."""
    if incoming.sequence != held.sequence:
        return incoming.sequence > held.sequence
    stamp, held_stamp = incoming.dtstamp, held.dtstamp
    if stamp is None or held_stamp is None:
        return False
    return stamp > held_stamp


def apply(
    message: ItipMessage, owner: str, originator: str, held: dict[str, StoredEvent]
) -> Outcome:
    """What ``message``, sent by ``originator``, changes in the agenda of ``owner`` which holds
    ``held`` (its components of this UID, by RECURRENCE-ID key)."""
    owner, originator = owner.lower(), originator.lower()
    if not message.events:
        return Outcome("noted", "no event")
    if message.method == "REPLY" and owner == originator:
        return _own_reply(message, owner, held)
    if message.method in ORGANIZER_METHODS:
        return _from_organizer(message, owner, originator, held)
    return _from_attendee(message, owner, originator, held)


def _from_organizer(
    message: ItipMessage, owner: str, originator: str, held: dict[str, StoredEvent]
) -> Outcome:
    organizer = message.events[0].organizer
    # RFC 6047 §3: only the ORGANIZER sends REQUEST, ADD, CANCEL, DECLINECOUNTER.
    if any(e.organizer != originator for e in message.events):
        return Outcome("refused", "the sender is not the organiser")
    master = held.get(MASTER)
    if master is not None and master.organizer != organizer:
        return Outcome("refused", "the event belongs to another organiser")
    if owner != organizer and not all(e.attendee(owner) is not None for e in message.events):
        if message.method != "CANCEL":
            return Outcome("refused", "the mailbox is not an attendee")
    if message.method in ("REQUEST", "PUBLISH"):
        return _request(message, owner, held)
    if message.method == "ADD":
        return _add(message, held)
    if message.method == "CANCEL":
        return _cancel(message, held)
    if not held:  # DECLINECOUNTER: the proposal was declined; the agenda is unchanged
        return Outcome("unknown", "no such event")
    return Outcome("noted", "counter-proposal declined")


def _stale(incoming: list[StoredEvent], held: dict[str, StoredEvent]) -> bool:
    for event in incoming:
        previous = held.get(event.recurrence_key)
        if previous is not None and not is_newer(event, previous):
            return True
    return False


def _serialized(event: StoredEvent, name: str) -> list[bytes]:
    value: Any = event.component.get(name)
    if value is None:
        return []
    return [bytes(v.to_ical()) for v in (value if isinstance(value, list) else [value])]


def _rescheduled(new: StoredEvent, old: StoredEvent) -> bool:
    return any(_serialized(new, name) != _serialized(old, name) for name in RESCHEDULING)


def _request(message: ItipMessage, owner: str, held: dict[str, StoredEvent]) -> Outcome:
    """RFC 5546 §3.2.2: a new event, an update, or a reschedule of some instances."""
    if _stale(message.events, held):
        return Outcome("stale", "an older or repeated version")
    outcome = Outcome("applied")
    for incoming in message.events:
        copy = incoming.copy()
        previous = held.get(incoming.recurrence_key)
        if copy.organizer != owner:
            # The attendee's copy: asked again (NEEDS-ACTION) unless nothing that matters
            # changed, in which case the answer already given stands (§2.1.4).
            keep = previous.partstat(owner) if previous is not None else None
            if keep is None or _rescheduled(copy, previous):  # type: ignore[arg-type]
                keep = "NEEDS-ACTION"
            copy.set_partstat(owner, keep)
        outcome.writes.append(copy)
    keys = {e.recurrence_key for e in message.events}
    if MASTER in keys:
        # A REQUEST with the master component replaces the whole set (§3.2.2.1).
        outcome.deletes = [k for k in held if k not in keys]
    return outcome


def _add(message: ItipMessage, held: dict[str, StoredEvent]) -> Outcome:
    """RFC 5546 §3.2.4: new instances of a recurring event, kept as RDATEs of the master
    and one override each."""
    master = held.get(MASTER)
    if master is None:
        return Outcome("unknown", "ADD for an event not on file (a REFRESH would be due)")
    if any(e.sequence < master.sequence for e in message.events):
        return Outcome("stale", "an older version")
    updated = master.copy()
    outcome = Outcome("applied")
    for incoming in message.events:
        start: Any = incoming.component.decoded("DTSTART")
        updated.component.add("RDATE", start)
        instance = incoming.copy()
        if instance.component.get("RECURRENCE-ID") is None:
            instance.component.add("RECURRENCE-ID", start)
        outcome.writes.append(instance)
    outcome.writes.insert(0, updated)
    return outcome


def _cancel(message: ItipMessage, held: dict[str, StoredEvent]) -> Outcome:
    """RFC 5546 §3.2.5: the whole event, or the instances named by RECURRENCE-ID."""
    if not held:
        return Outcome("unknown", "CANCEL for an event not on file")
    outcome = Outcome("applied")
    for incoming in message.events:
        key = incoming.recurrence_key
        previous = held.get(key)
        if previous is None and key == MASTER:
            return Outcome("unknown", "CANCEL for a series not on file")
        if previous is not None and incoming.sequence < previous.sequence:
            return Outcome("stale", "an older version")
        if previous is not None and previous.status == "CANCELLED":
            return Outcome("stale", "already cancelled")
        base = previous if previous is not None else _instance(held[MASTER], incoming)
        cancelled = base.copy()
        _stamp(cancelled, incoming)
        cancelled.component["STATUS"] = "CANCELLED"
        outcome.writes.append(cancelled)
        if key == MASTER:
            for other, event in held.items():
                if other != MASTER and event.status != "CANCELLED":
                    instance = event.copy()
                    _stamp(instance, incoming)
                    instance.component["STATUS"] = "CANCELLED"
                    outcome.writes.append(instance)
    return outcome


def _stamp(target: StoredEvent, source: StoredEvent) -> None:
    for name in ("SEQUENCE", "DTSTAMP"):
        if name in target.component:
            del target.component[name]
    target.component.add("SEQUENCE", source.sequence)
    target.component.add("DTSTAMP", source.dtstamp)


def _instance(master: StoredEvent, named: StoredEvent) -> StoredEvent:
    """An override for one instance of ``master``: the instance named by ``named``'s
    RECURRENCE-ID, with the master's properties (RFC 5545 §3.8.4.4)."""
    rid: Any = named.component.decoded("RECURRENCE-ID")
    instance = master.copy()
    component = instance.component
    start = component.get("DTSTART")
    end = component.get("DTEND")
    length = end.dt - start.dt if start is not None and end is not None else None
    for name in ("RRULE", "RDATE", "EXDATE", "DTSTART", "DTEND"):
        if name in component:
            del component[name]
    if isinstance(rid, dt.datetime) and start is not None and isinstance(start.dt, dt.datetime):
        if start.dt.tzinfo is not None and rid.tzinfo is not None:
            rid = rid.astimezone(start.dt.tzinfo)
    component.add("RECURRENCE-ID", rid)
    component.add("DTSTART", rid)
    if length is not None:
        component.add("DTEND", rid + length)
    return instance


def _from_attendee(
    message: ItipMessage, owner: str, originator: str, held: dict[str, StoredEvent]
) -> Outcome:
    """REPLY (§3.2.3), REFRESH (§3.2.6), COUNTER (§3.2.7): to the organiser's copy."""
    master = held.get(MASTER)
    reference = master or next(iter(held.values()), None)
    counter = message.method == "COUNTER"
    if reference is None:
        if counter and _counter_to(message, owner, originator):
            # Nothing here to count against: the organiser's side declines (§3.2.8).
            return Outcome("unknown", "no such event", answer=ANSWER_DECLINECOUNTER)
        return Outcome("unknown", "no such event")
    if reference.organizer != owner:
        return Outcome("refused", "the mailbox is not the organiser")
    for incoming in message.events:
        attendees = incoming.attendees() or []
        replier = originator
        if message.method == "REPLY":
            attendee = attendees[0]
            replier = address_of(attendee)
            sent_by = address_of(attendee.params.get("SENT-BY", ""))
            if originator not in (replier, sent_by):
                return Outcome("refused", "the sender is not the attendee who replies")
        known = held.get(incoming.recurrence_key) or reference
        if known.attendee(replier) is None:
            # RFC 5546 §3.2.3: replies from "uninvited" attendees may be refused; we do,
            # and a REFRESH or COUNTER from someone not invited gets no answer either.
            return Outcome("refused", "the sender is not an attendee")
    if message.method == "REFRESH":
        return Outcome("noted", "refresh received", answer=ANSWER_REQUEST)
    if counter:
        return _counter(message, originator, held)
    outcome = Outcome("applied")
    for incoming in message.events:
        key = incoming.recurrence_key
        on_file = held.get(key)
        if on_file is None:
            if master is None:
                return Outcome("unknown", "no such instance")
            on_file = _instance(master, incoming)
        if incoming.sequence < on_file.sequence:
            return Outcome("stale", "a reply to an older version")
        attendee = incoming.attendees()[0]
        replier = address_of(attendee)
        stored = on_file.attendee(replier)
        assert stored is not None and incoming.dtstamp is not None
        last = stored.params.get(REPLY_STAMP)
        stamp = incoming.dtstamp.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        if last is not None and stamp <= str(last):
            return Outcome("stale", "an older or repeated reply")
        updated = on_file.copy()
        target = updated.attendee(replier)
        assert target is not None
        target.params["PARTSTAT"] = str(attendee.params["PARTSTAT"]).upper()
        target.params[REPLY_STAMP] = stamp
        outcome.writes.append(updated)
    return outcome


def _counter_to(message: ItipMessage, owner: str, originator: str) -> bool:
    """A COUNTER that names ``owner`` as ORGANIZER and comes from one of its ATTENDEEs."""
    return all(e.organizer == owner and e.attendee(originator) is not None for e in message.events)


def _utc_text(value: object) -> str:
    if isinstance(value, dt.datetime):
        return _instant(value).astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    if isinstance(value, dt.date):
        return value.strftime("%Y%m%d")
    return ""


def _counter(message: ItipMessage, originator: str, held: dict[str, StoredEvent]) -> Outcome:
    """RFC 5546 §3.2.7: the organiser decides; the proposal is kept on the organiser's copy
    (the proposed start and end on the proposing ATTENDEE) for the organiser's agenda to
    show, and the message itself is in the organiser's mailbox. A COUNTER for a cancelled
    event or instance is declined at once (§3.2.8); one for an older SEQUENCE is stale."""
    master = held.get(MASTER)
    outcome = Outcome("applied")
    for incoming in message.events:
        on_file = held.get(incoming.recurrence_key)
        if on_file is None:
            if master is None:
                return Outcome("unknown", "no such instance", answer=ANSWER_DECLINECOUNTER)
            on_file = _instance(master, incoming)
        if on_file.status == "CANCELLED" or (master is not None and master.status == "CANCELLED"):
            return Outcome("noted", "counter to a cancelled event", answer=ANSWER_DECLINECOUNTER)
        if incoming.sequence < on_file.sequence:
            return Outcome("stale", "a counter to an older version")
        stored = on_file.attendee(originator)
        assert stored is not None and incoming.dtstamp is not None
        stamp = incoming.dtstamp.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        last = stored.params.get(COUNTER_STAMP)
        if last is not None and stamp <= str(last):
            return Outcome("stale", "an older or repeated counter")
        updated = on_file.copy()
        target = updated.attendee(originator)
        assert target is not None
        component = incoming.component
        start = component.decoded("DTSTART") if "DTSTART" in component else None
        end = component.decoded("DTEND") if "DTEND" in component else None
        if end is None and start is not None and "DURATION" in component:
            end = start + component.decoded("DURATION")
        target.params[PROPOSED_START] = _utc_text(start)
        target.params[PROPOSED_END] = _utc_text(end)
        target.params[COUNTER_STAMP] = stamp
        outcome.writes.append(updated)
    return outcome


def _own_reply(message: ItipMessage, owner: str, held: dict[str, StoredEvent]) -> Outcome:
    """An attendee's REPLY, submitted here, also sets their own copy's PARTSTAT (their answer
    is what their agenda shows, RFC 5546 §3.2.3)."""
    outcome = Outcome("applied")
    for incoming in message.events:
        attendee = incoming.attendees()[0]
        if address_of(attendee) != owner:
            return Outcome("refused", "a reply for someone else")
        on_file = held.get(incoming.recurrence_key)
        if on_file is None:
            master = held.get(MASTER)
            if master is None or incoming.recurrence_key == MASTER:
                return Outcome("unknown", "no such event")
            on_file = _instance(master, incoming)
        if incoming.sequence < on_file.sequence or on_file.attendee(owner) is None:
            return Outcome("stale", "a reply to an older version")
        updated = on_file.copy()
        updated.set_partstat(owner, str(attendee.params["PARTSTAT"]).upper())
        outcome.writes.append(updated)
    return outcome


PRIVATE_PARAMS = (REPLY_STAMP, PROPOSED_START, PROPOSED_END, COUNTER_STAMP)


def for_attendee(event: StoredEvent, now: dt.datetime) -> StoredEvent:
    """The organiser's copy as it goes out again (the REFRESH answer, §3.2.6): Hygie's own
    bookkeeping parameters removed, DTSTAMP now (a new iTIP message, RFC 5545 §3.8.7.2), so
    that an attendee whose copy is current takes it as a harmless update."""
    copy = event.copy()
    for attendee in copy.attendees():
        for name in PRIVATE_PARAMS:
            attendee.params.pop(name, None)
    if "DTSTAMP" in copy.component:
        del copy.component["DTSTAMP"]
    copy.component.add("DTSTAMP", now.astimezone(dt.UTC))
    return copy


def declined_counter(counter: StoredEvent, attendee: str, now: dt.datetime) -> StoredEvent:
    """The VEVENT of a DECLINECOUNTER (RFC 5546 §3.2.8): UID, SEQUENCE and RECURRENCE-ID of
    the COUNTER, its ORGANIZER, the ATTENDEE who proposed, a new DTSTAMP."""
    event = Event()
    source = counter.component
    event.add("UID", counter.uid)
    event.add("DTSTAMP", now.astimezone(dt.UTC))
    event.add("SEQUENCE", counter.sequence)
    if "RECURRENCE-ID" in source:
        event["RECURRENCE-ID"] = source["RECURRENCE-ID"]
    event["ORGANIZER"] = source["ORGANIZER"]
    proposer = counter.attendee(attendee)
    event.add("ATTENDEE", proposer if proposer is not None else f"mailto:{attendee}")
    event.add("COMMENT", "Événement inconnu ou annulé / unknown or cancelled event")
    return StoredEvent(event)
