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

Logs say which method and what came of it, never an address nor anything about the event.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable

import structlog

from agenda.event import StoredEvent, calendar_of
from agenda.freebusy import busy_periods, freebusy_reply, requested_of, requested_range
from agenda.imip import CalendarPart, error_message, find_calendar, imip_message
from agenda.itip import ItipError, ItipMessage, Outcome, apply, parse
from server.config import Config
from server.patients import is_patient_address
from storage.agenda import AgendaStore, Decision
from storage.mailstore import MailStore, Recipient

log = structlog.get_logger("hygie.agenda")
AGENDA_SERVICE = "agenda"
Notify = Callable[[bytes, str], Awaitable[None]]
Clock = Callable[[], dt.datetime]


class AgendaWorkflow:
    def __init__(
        self,
        config: Config,
        store: MailStore,
        agenda: AgendaStore,
        notify: Notify,
        clock: Clock = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.config = config
        self.store = store
        self.agenda = agenda
        self.notify = notify
        self.clock = clock

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
        for recipient in targets:
            outcome = await self._apply(message, recipient, originator)
            log.info(
                "agenda_applied", method=message.method, outcome=outcome.status,
                reason=outcome.reason, components=len(outcome.writes),
            )  # fmt: skip

    async def _apply(self, message: ItipMessage, recipient: Recipient, originator: str) -> Outcome:
        def decide(held: dict[str, bytes]) -> Decision[Outcome]:
            components = {k: StoredEvent.from_ical(v) for k, v in held.items()}
            outcome = apply(message, recipient.address, originator, components)
            if outcome.status != "applied":
                return Decision(outcome)
            writes = {e.recurrence_key: e.to_ical() for e in outcome.writes}
            return Decision(outcome, writes, outcome.deletes)

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
        if not to:
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

    async def _error(self, part: CalendarPart, sender: str, problem: str) -> None:
        to = sender or part.originator
        if not to:
            return
        notice = error_message(
            from_address=self.service_address(), to=to, subject=part.subject, problem=problem,
            domain=self.config.server.hostname,
        )  # fmt: skip
        await self.notify(notice, to)
