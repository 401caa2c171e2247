"""The patient's agenda in the browser (issue 22 item 2, *Agenda*), after the two-factor
sign-in:

- ``/espace/agenda``: the upcoming and the past appointments (the agenda the iMIP step keeps,
  `server.workflows.agenda`), each with its organiser and the patient's answer, and the
  address of the ``.ics`` feed;
- ``POST /espace/agenda/repondre``: accept or decline an invitation: an iMIP ``REPLY``
  (RFC 6047, RFC 5546 §3.2.3) to the organiser, sent through the submission listener's checks
  and the one pipeline (``SubmissionHandler.submit``), whose agenda step updates the
  organiser's copy and the patient's own, as when a calendar program answers.
"""

from __future__ import annotations

import datetime as dt
import email.policy
import email.utils
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage

from icalendar import Calendar, Event
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from agenda.event import MASTER, StoredEvent, address_of
from server.http.espace.messages import Submit
from server.http.espace.pages import EspacePages
from server.http.espace.site import Page
from server.http.responses import peer

Events = Callable[[int], Awaitable[list[StoredEvent]]]
ANSWERS = {"accepter": "ACCEPTED", "refuser": "DECLINED"}


@dataclass(frozen=True)
class Appointment:
    uid: str
    summary: str
    start: dt.datetime
    location: str
    organizer: str
    answer: str  # the patient's PARTSTAT
    cancelled: bool


def _start(event: StoredEvent) -> dt.datetime | None:
    value = event.component.get("DTSTART")
    if value is None:
        return None
    when = value.dt
    if not isinstance(when, dt.datetime):
        when = dt.datetime.combine(when, dt.time(), dt.UTC)
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _answer(event: StoredEvent, me: str) -> str:
    attendees = event.component.get("ATTENDEE") or []
    for attendee in attendees if isinstance(attendees, list) else [attendees]:
        if address_of(attendee) == me:
            return str(attendee.params.get("PARTSTAT", "NEEDS-ACTION")).upper()
    return ""


class AgendaPages:
    def __init__(self, pages: EspacePages, events: Events, submit: Submit) -> None:
        self.pages = pages
        self.site = pages.site
        self.events = events
        self.submit = submit

    def routes(self) -> list[BaseRoute]:
        page = self.pages.page
        return [
            Route("/agenda", page(self._list), methods=["GET"]),
            Route("/agenda/repondre", page(self._reply), methods=["POST"]),
        ]

    async def _appointments(self, account_id: int, me: str) -> list[Appointment]:
        found = []
        for event in await self.events(account_id):
            start = _start(event)
            if start is None or event.recurrence_key != MASTER:
                continue
            found.append(Appointment(
                event.uid, str(event.component.get("SUMMARY", "")), start,
                str(event.component.get("LOCATION", "")),
                address_of(event.component.get("ORGANIZER", "")), _answer(event, me),
                str(event.component.get("STATUS", "")).upper() == "CANCELLED",
            ))  # fmt: skip
        return sorted(found, key=lambda a: a.start)

    async def _list(self, request: Request, page: Page, form: dict[str, str],
                    error_text: str = "", status: int = 200) -> Response:  # fmt: skip
        account = await self.pages.signed_in(request, page)
        if account is None:
            return self.pages.expired(page)
        page.section = "/agenda"
        me = account.address.lower()
        everything = await self._appointments(account.id, me)
        now = self.site.clock()
        upcoming = [a for a in everything if a.start >= now]
        past = list(reversed([a for a in everything if a.start < now]))
        done = request.query_params.get("fait", "")
        ok = page.t.get(f"agenda_{done}", "") if done in ANSWERS else ""
        feed = f"https://{request.headers.get('host', 'localhost')}/agenda/calendar.ics"
        return self.site.render(page, "agenda.html", page.t["nav_agenda"], status,
                                upcoming=upcoming, past=past, feed=feed, ok_text=ok,
                                error_text=error_text, wide=True)  # fmt: skip

    async def _reply(self, request: Request, page: Page, form: dict[str, str]) -> Response:
        account = await self.pages.signed_in(request, page)
        if account is None:
            return self.pages.expired(page)
        choice = form.get("reponse", "")
        me = account.address.lower()
        held = next((e for e in await self.events(account.id)
                     if e.uid == form.get("uid") and e.recurrence_key == MASTER), None)  # fmt: skip
        organizer = address_of(held.component.get("ORGANIZER", "")) if held else ""
        if held is None or choice not in ANSWERS or not organizer or not _answer(held, me):
            return self.site.notice(page, page.t["error"], page.t["agenda_missing"], 404,
                                    error=True)  # fmt: skip
        raw = _reply_mail(held, me, organizer, ANSWERS[choice], self.site.clock())
        answer = await self.submit(account, organizer, raw, peer(request), "TLS (HTTPS)")
        if not answer.startswith("250"):
            message = page.t["msg_refused"].format(reason=answer)
            return await self._list(request, page, form, message,
                                    403 if answer.startswith("5") else 503)  # fmt: skip
        return self.site.redirect(page.href("/agenda", fait=choice))


def _reply_mail(held: StoredEvent, me: str, organizer: str, partstat: str,
                now: dt.datetime) -> bytes:  # fmt: skip
    """The iMIP REPLY a calendar program sends: one VEVENT, the organiser, this attendee with
    its PARTSTAT, the invitation's UID and SEQUENCE (RFC 5546 §3.2.3)."""
    calendar = Calendar()
    calendar.add("PRODID", "-//Hygie//Mon espace sante//FR")
    calendar.add("VERSION", "2.0")
    calendar.add("METHOD", "REPLY")
    event = Event()
    event.add("UID", held.uid)
    event.add("DTSTAMP", now)
    event.add("SEQUENCE", held.sequence)
    event["ORGANIZER"] = held.component["ORGANIZER"]
    event.add("ATTENDEE", f"mailto:{me}", parameters={"PARTSTAT": partstat})
    event["DTSTART"] = held.component["DTSTART"]
    event.add("SUMMARY", str(held.component.get("SUMMARY", "")))
    calendar.add_component(event)
    mail = EmailMessage()
    mail["From"], mail["To"] = me, organizer
    word = "Accepté" if partstat == "ACCEPTED" else "Refusé"
    mail["Subject"] = f"{word} : {held.component.get('SUMMARY', '')}"
    mail["Date"] = email.utils.format_datetime(now)
    mail["Message-ID"] = email.utils.make_msgid(domain=me.rsplit("@", 1)[1])
    mail.set_content(f"{word}.")
    mail.add_alternative(bytes(calendar.to_ical()), maintype="text", subtype="calendar",
                         params={"method": "REPLY", "charset": "UTF-8"})  # fmt: skip
    return mail.as_bytes(policy=email.policy.SMTP)
