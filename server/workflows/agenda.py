"""The agenda workflow (design.md §2.4, §6; issue 9): iMIP messages update agendas.

After local delivery (the message is in the mailbox whatever happens here), a message with a
``text/calendar`` part is read as an iTIP message (RFC 5546) and applied, for each local
recipient, to that mailbox's agenda by the rules of :mod:`agenda.itip`. A message submitted by
an organiser from this operator also keeps the organiser's own copy, so that the attendees'
REPLYs have a copy to update.

- REQUEST, ADD, CANCEL, DECLINECOUNTER: from the ORGANIZER to an attendee's copy;
- REPLY (and COUNTER, REFRESH, noted): from an ATTENDEE to the organiser's copy; from anyone
  else, refused;
- a VFREEBUSY REQUEST to a practitioner (not a patient: a patient's agenda is private) is
  answered at once from ``agenda@<domain>`` with the busy periods only (RFC 5546 §3.3.2);
- an unreadable iCalendar object: a clear error mail to the sender, nothing applied.

Reminders (issue 9 item 4): each change of an event reschedules its reminders
(:mod:`agenda.alarms`) in the same transaction; :meth:`AgendaWorkflow.run_reminders` claims
due ones for a lease, delivers them from ``agenda@<domain>`` and marks them sent, so several
processes on one PostgreSQL share the work and none sends a reminder twice.

Logs say which method and what came of it, never an address nor anything about the event.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import structlog

from agenda.alarms import reminders
from agenda.event import MASTER, StoredEvent, calendar_of, utc_key
from agenda.freebusy import busy_periods, freebusy_reply, requested_of, requested_range
from agenda.imip import (
    CalendarPart,
    error_message,
    find_calendar,
    imip_message,
    reminder_message,
)
from agenda.itip import (
    ANSWER_DECLINECOUNTER,
    ANSWER_REQUEST,
    ItipError,
    ItipMessage,
    Outcome,
    apply,
    declined_counter,
    for_attendee,
    parse,
)
from agenda.recurrence import PARIS, occurrences
from server.config import Config
from server.delivery.local import Trace, describe, new_queue_id, received_field
from server.delivery.patients import is_patient_address
from server.outbound.queue import mss_nil_field
from storage.agenda import AgendaStore, Decision, DueReminder, uid_digest
from storage.mailstore import MailStore, Recipient

if TYPE_CHECKING:
    from server.workflows.consent import AppGate

log = structlog.get_logger("hygie.agenda")
AGENDA_SERVICE = "agenda"
Notify = Callable[[bytes, str], Awaitable[None]]
Clock = Callable[[], dt.datetime]


def _real_time() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def configured_clock(config: Config) -> Clock:
    """The real time; in ``[server] test_mode`` with ``test_clock_file``, the instant written
    in that file (ISO 8601; UTC when it has no offset), so that end-to-end tests move the
    reminder scheduler's time instead of waiting. Read at each call: several processes
    share one file."""
    if not (config.server.test_mode and config.server.test_clock_file):
        return _real_time
    path = config.path(config.server.test_clock_file)

    def clock() -> dt.datetime:
        try:
            value = dt.datetime.fromisoformat(path.read_text("ascii").strip())
        except (OSError, ValueError):
            return _real_time()
        return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)

    return clock


def may_answer(originator: str, envelope_sender: str) -> bool:
    """Whether the server may answer ``originator`` by itself (REFRESH, DECLINECOUNTER,
    free/busy). The iTIP originator is the ``From:`` of the message; over the relay that is
    only the peer operator's word, so an automatic answer goes only to the envelope sender's
    own domain (delegated sending stays within a domain: a secretary's envelope, a doctor's
    From). Never to a null reverse-path message (RFC 3834 §2)."""
    sender = envelope_sender.strip().strip("<>").lower()
    if "@" not in sender or "@" not in originator:
        return False
    return originator.lower().rsplit("@", 1)[1] == sender.rsplit("@", 1)[1]


class AgendaWorkflow:
    apps: AppGate | None = None  # consent enforcement for app mailboxes (issue 10)

    def __init__(
        self,
        config: Config,
        store: MailStore,
        agenda: AgendaStore,
        notify: Notify,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.agenda = agenda
        self.notify = notify
        self.clock = clock or configured_clock(config)

    def service_address(self, domain: str | None = None) -> str:
        domain = domain if domain and self.config.is_local_domain(domain) else None
        return f"{AGENDA_SERVICE}@{domain or self.config.server.domains[0]}"

    async def after_delivery(
        self, raw: bytes, sender: str, recipients: list[Recipient], *, submitted: bool = False
    ) -> None:
        """Never raises: the message is delivered already (errors are logged)."""
        try:
            part = find_calendar(raw)
            if part is None:
                return
            await self._process(part, sender, recipients, submitted)
        except Exception as exc:
            log.error("agenda_workflow_failed", error=type(exc).__name__, exc_info=exc)

    async def _process(
        self, part: CalendarPart, sender: str, recipients: list[Recipient], submitted: bool
    ) -> None:
        try:
            message = parse(part.data)
            if part.method is not None and part.method != message.method:
                raise ItipError("the Content-Type method differs from METHOD (RFC 6047 §2.4)")
            if message.method == "REQUEST" and message.freebusy:
                for request in message.freebusy:
                    requested_range(request)
        except ItipError as exc:
            log.info("agenda_refused", reason="malformed")
            await self._error(part, sender, str(exc))
            return
        originator = part.originator or sender.lower()
        if message.freebusy:
            if message.method == "REQUEST":
                await self._freebusy(message, part, sender, recipients)
            return
        targets = [r for r in recipients if r.address.lower() != originator]
        if submitted and message.method in ("REQUEST", "ADD", "CANCEL"):
            own = await self.store.resolve(originator) if sender.lower() == originator else None
            if own is not None and message.events[0].organizer == originator:
                targets.append(own)  # the organiser's own copy (RFC 5546 §3.2.2)
        if submitted and message.method == "REPLY" and sender.lower() == originator:
            own = await self.store.resolve(originator)
            if own is not None:
                targets.append(own)  # the attendee's own copy takes their answer
        for recipient in targets:
            if self.apps is not None and await self.apps.agenda(sender or originator, recipient):
                continue  # an app without this patient's agenda-write consent (audited)
            outcome = await self._apply(message, recipient, originator)
            log.info(
                "agenda_applied", method=message.method, outcome=outcome.status,
                reason=outcome.reason, components=len(outcome.writes),
            )  # fmt: skip
            if outcome.answer and may_answer(originator, sender):
                await self._answer(message, outcome.answer, recipient, originator)

    async def _apply(self, message: ItipMessage, recipient: Recipient, originator: str) -> Outcome:
        def decide(held: dict[str, bytes]) -> Decision[Outcome]:
            components = {k: StoredEvent.from_ical(v) for k, v in held.items()}
            outcome = apply(message, recipient.address, originator, components)
            if outcome.status != "applied":
                return Decision(outcome)
            writes = {e.recurrence_key: e.to_ical() for e in outcome.writes}
            after = {k: v for k, v in components.items() if k not in outcome.deletes}
            after.update({e.recurrence_key: e for e in outcome.writes})
            due = reminders(after.values(), recipient.address, self.clock())
            planned = [(r.due, r.occurrence, r.alarm) for r in due]
            return Decision(outcome, writes, outcome.deletes, planned)

        return await self.agenda.change(recipient.account_id, message.uid, decide)

    async def events(self, account_id: int) -> list[StoredEvent]:
        return [StoredEvent.from_ical(c) for c in await self.agenda.components(account_id)]

    async def feed(self, account_id: int) -> bytes:
        """The agenda as one iCalendar object (RFC 5545 §3.4), for calendar programs."""
        return bytes(calendar_of(await self.events(account_id)).to_ical())

    async def _freebusy(
        self, message: ItipMessage, part: CalendarPart, sender: str, recipients: list[Recipient]
    ) -> None:
        to = part.originator or sender
        if not to or not may_answer(to, sender):
            return
        for recipient in recipients:
            if is_patient_address(recipient.address):
                log.info("agenda_freebusy", outcome="refused", reason="patient agenda")
                continue
            for request in message.freebusy:
                if recipient.address.lower() not in requested_of(request):
                    continue
                start, end = requested_range(request)
                periods = busy_periods(await self.events(recipient.account_id), start, end)
                domain = recipient.address.rsplit("@", 1)[1]
                reply = imip_message(
                    from_address=self.service_address(domain), to=to,
                    subject="Disponibilités / Free-busy", method="REPLY",
                    text="Périodes occupées (sans détail) en pièce jointe.\n",
                    calendar=freebusy_reply(request, recipient.address.lower(), periods,
                                            self.clock()),
                    domain=self.config.server.hostname,
                )  # fmt: skip
                await self.notify(reply, to)
                log.info("agenda_freebusy", outcome="answered", periods=len(periods))

    # -- the organiser's side answers by itself (RFC 5546 §3.2.6, §3.2.8) -------------------

    async def _answer(
        self, message: ItipMessage, answer: str, organiser: Recipient, attendee: str
    ) -> None:
        """REFRESH: the latest version (REQUEST, or CANCEL once cancelled) to the attendee
        who asked; COUNTER for an unknown or cancelled event: DECLINECOUNTER. Sent From the
        organiser (their operator acts for them, ``Sender: agenda@``), so that the
        attendee's side sees the ORGANIZER's own message (RFC 6047 §3)."""
        if not attendee or "@" not in attendee:
            return
        now = self.clock()
        if answer == ANSWER_REQUEST:
            events = [
                StoredEvent.from_ical(c)
                for c in await self.agenda.components_of(organiser.account_id, uid_digest(
                    message.uid))
            ]  # fmt: skip
            if not events:
                return
            master = next((e for e in events if e.recurrence_key == MASTER), events[0])
            method = "CANCEL" if master.status == "CANCELLED" else "REQUEST"
            latest = [for_attendee(e, now) for e in events]
            calendar = bytes(calendar_of(latest, method).to_ical())
            subject = "Rendez-vous (mise à jour) / Appointment (latest version)"
            text = "La dernière version du rendez-vous, à votre demande (REFRESH).\n"
        elif answer == ANSWER_DECLINECOUNTER:
            method = "DECLINECOUNTER"
            calendar = bytes(
                calendar_of([declined_counter(e, attendee, now) for e in message.events],
                            method).to_ical()
            )  # fmt: skip
            subject = "Proposition refusée / Counter-proposal declined"
            text = "Ce rendez-vous est inconnu ou annulé : la proposition est refusée.\n"
        else:
            return
        domain = organiser.address.rsplit("@", 1)[1]
        reply = imip_message(
            from_address=organiser.address, to=attendee, subject=subject, method=method,
            text=text, calendar=calendar, domain=self.config.server.hostname,
            sender=self.service_address(domain),
        )  # fmt: skip
        await self.notify(reply, attendee)
        log.info("agenda_answered", method=method)

    async def _error(self, part: CalendarPart, sender: str, problem: str) -> None:
        to = sender or part.originator
        if not to:
            return
        notice = error_message(
            from_address=self.service_address(), to=to, subject=part.subject, problem=problem,
            domain=self.config.server.hostname,
        )  # fmt: skip
        await self.notify(notice, to)

    # -- reminders (issue 9 item 4) -------------------------------------------------------

    async def run_reminders(self, interval: float | None = None) -> None:
        pause = self.config.agenda.reminder_interval_seconds if interval is None else interval
        while True:
            try:
                await self.send_due()
            except Exception as exc:  # the next round retries; leases expire
                log.error("agenda_reminders_failed", error=type(exc).__name__, exc_info=exc)
            await asyncio.sleep(pause)

    async def send_due(self) -> int:
        """Claim, send and mark the reminders due now; the number sent."""
        now = self.clock()
        lease = dt.timedelta(seconds=self.config.agenda.reminder_lease_seconds)
        sent = 0
        claimed = await self.agenda.claim_due(now, lease, self.config.agenda.reminder_batch)
        if claimed:
            log.info("agenda_reminders_claimed", count=len(claimed))
        for due in claimed:
            if await self._remind(due):
                sent += 1
        if sent:
            log.info("agenda_reminders_sent", count=sent)
        return sent

    async def _remind(self, due: DueReminder) -> bool:
        """Deliver one reminder and mark it sent in the same transaction (so never twice,
        whichever process dies when); one that no longer applies is only marked."""
        claim = self.agenda.claim_sending(due.id, self.clock())
        rows = await self.store.db.raw_rows(
            "SELECT address FROM accounts WHERE id = ?", due.account_id
        )
        recipient = await self.store.resolve(str(rows[0][0])) if rows else None
        events = [
            StoredEvent.from_ical(c)
            for c in await self.agenda.components_of(due.account_id, due.uid_digest)
        ]
        instance = self._instance(events, due)
        if recipient is None or instance is None:
            await self.store.db.writer.run(claim)
            return False
        start, event = instance
        attached = bytes(calendar_of([event], "PUBLISH").to_ical())
        raw = reminder_message(
            from_address=self.service_address(), to=recipient.address,
            start=start.astimezone(PARIS), calendar=attached,
            message_id=f"<reminder-{due.id}@{self.config.server.hostname}>",
        )  # fmt: skip
        trace = Trace(
            helo=self.config.server.hostname, peer_ip="127.0.0.1", protocol="ESMTP",
            tls="local", hostname=self.config.server.hostname,
        )  # fmt: skip
        stamped = received_field(trace, new_queue_id()) + mss_nil_field(self.config) + raw
        delivered = await self.store.deliver_once(stamped, describe(stamped), [recipient], claim)
        return bool(delivered)

    @staticmethod
    def _instance(
        events: list[StoredEvent], due: DueReminder
    ) -> tuple[dt.datetime, StoredEvent] | None:
        """The instance a reminder is about, if it is still on and not declined."""
        if due.occurrence == "absolute":
            master = next((e for e in events if e.recurrence_key == MASTER), None)
            if master is None or master.status == "CANCELLED":
                return None
            start = master.component.decoded("DTSTART")
            return (start if isinstance(start, dt.datetime) else due.due_at), master
        window = dt.timedelta(days=1)
        moment = dt.datetime.strptime(due.occurrence, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
        for occurrence in occurrences(events, moment - window, moment + window):
            cancelled = occurrence.event.status == "CANCELLED"
            if utc_key(occurrence.start) == due.occurrence and not cancelled:
                return occurrence.start, occurrence.event
        return None
