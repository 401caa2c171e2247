"""The agenda against a real ``hygie serve``: Jean invites Claire (iMIP REQUEST through
submission); Claire accepts from the agenda screen and declines another invitation from the
message view, and proposes a new time for a third; the server applies her REPLYs to Jean's
copy (read back over its HTTPS iCalendar feed) and her COUNTER reaches Jean's INBOX."""

from __future__ import annotations

import datetime as dt
import email
import ssl
import urllib.request
import uuid
from email.policy import default as default_policy
from pathlib import Path

from icalendar import Calendar, Event
from textual.widgets import DataTable, Input

from agenda.recurrence import PARIS
from bench.harness import ServerProcess
from client_tui.agenda_screen import AgendaScreen
from client_tui.app import HygieClient
from client_tui.config import load_config
from client_tui.dialogs import Prompt
from client_tui.mail_screen import MailScreen
from client_tui.session import MailSession, resolve_credentials
from tests.client.conftest import CLAIRE, JEAN, PASSWORD, account_for
from tests.client.invitations import invitation
from tests.client.pilot import row_of, table_subjects, wait_until
from tests.client.test_app_pilot import SIZE, sign_in
from tests.support.mail import inbox_messages


async def jean_invites(session: MailSession, summary: str, start: dt.datetime) -> str:
    uid = str(uuid.uuid4())
    raw = invitation(JEAN, CLAIRE, summary, start, uid=uid)
    await session.send(email.message_from_bytes(raw, policy=default_policy))
    return uid


def jean_agenda(server: ServerProcess, context: ssl.SSLContext, token: str) -> dict[str, Event]:
    """Jean's agenda as his calendar program subscribes to it (bearer token, HTTPS)."""
    request = urllib.request.Request(
        f"https://localhost:{server.https_port}/agenda/calendar.ics",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, context=context, timeout=60) as answer:  # noqa: S310
        calendar = Calendar.from_ical(answer.read())
    return {str(e["UID"]): e for e in calendar.walk("VEVENT")}


def claire_says(event: Event | None) -> str | None:
    if event is None:
        return None
    attendees = event.get("ATTENDEE")
    for attendee in attendees if isinstance(attendees, list) else [attendees]:
        if str(attendee).lower() == f"mailto:{CLAIRE}":
            return str(attendee.params.get("PARTSTAT"))
    return None


async def test_accept_decline_and_propose(server: ServerProcess, config_file: Path) -> None:
    tag = uuid.uuid4().hex[:6]
    soon = dt.datetime.now(PARIS).replace(hour=10, minute=0, second=0, microsecond=0)
    soon += dt.timedelta(days=1)
    meeting, visit, talk = f"RCP {tag}", f"Visite {tag}", f"Staff {tag}"
    account = account_for(server, JEAN)
    jean = MailSession(account, await resolve_credentials(account, PASSWORD))
    accepted = await jean_invites(jean, meeting, soon)
    declined = await jean_invites(jean, visit, soon + dt.timedelta(hours=2))
    await jean_invites(jean, talk, soon + dt.timedelta(hours=4))
    context = server.ssl_context()
    token = server.hygie("token", "issue", JEAN).stdout.decode().strip()

    def jean_copy(uid: str) -> str | None:
        """Claire's PARTSTAT in Jean's (the organiser's) copy on the server."""
        return claire_says(jean_agenda(server, context, token).get(uid))

    app = HygieClient(load_config(config_file), account_name="claire")
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot)
        await wait_until(pilot, lambda: isinstance(app.screen, MailScreen), "the mail screen")
        mail = app.screen
        assert isinstance(mail, MailScreen)

        # From the agenda screen: the list view, the invitation, y.
        await pilot.press("A")
        await wait_until(pilot, lambda: isinstance(app.screen, AgendaScreen), "the agenda")
        agenda = app.screen
        assert isinstance(agenda, AgendaScreen)

        def listed() -> list[str]:
            return [a.summary for a in agenda.shown]

        if soon.month != dt.datetime.now(PARIS).month:  # tomorrow is next month
            await pilot.press("right_square_bracket")
        await wait_until(pilot, lambda: meeting in listed(), "the invitation in the agenda")
        await pilot.press("v")
        table = agenda.query_one("#agenda-list", DataTable)
        table.move_cursor(row=listed().index(meeting))
        await pilot.press("y")
        await wait_until(pilot, lambda: jean_copy(accepted) == "ACCEPTED", "Jean's copy", 90, 0.3)
        # Her own copy follows her answer (once the copy is kept in Sent).
        await wait_until(pilot, lambda: agenda.shown[listed().index(meeting)].partstat
                         == "ACCEPTED", "her own copy")  # fmt: skip
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is mail, "back to the mail")

        # From the message view: the invitation opened, n.
        await wait_until(pilot, lambda: f"Invitation : {visit}" in table_subjects(pilot), "mail")
        messages = mail.query_one("#messages", DataTable)
        messages.move_cursor(row=row_of(pilot, f"Invitation : {visit}"))
        messages.focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: mail.invitation is not None
                         and mail.invitation.summary == visit, "the invitation shown")  # fmt: skip
        await pilot.press("n")
        await wait_until(pilot, lambda: jean_copy(declined) == "DECLINED", "declined", 90, 0.3)

        # Propose another time for the third: a COUNTER to Jean.
        messages.move_cursor(row=row_of(pilot, f"Invitation : {talk}"))
        await pilot.press("enter")
        await wait_until(pilot, lambda: mail.invitation is not None
                         and mail.invitation.summary == talk, "the third invitation")  # fmt: skip
        await pilot.press("t")
        await wait_until(pilot, lambda: isinstance(app.screen, Prompt), "the time prompt")
        later = soon + dt.timedelta(days=1)
        app.screen.query_one(Input).value = f"{later:%d/%m/%Y %H:%M}"
        await pilot.press("enter")

        def counters() -> list[Event]:
            found = []
            for raw in inbox_messages(server, JEAN, PASSWORD):
                for part in email.message_from_bytes(raw, policy=default_policy).walk():
                    if part.get_content_type() == "text/calendar":
                        proposal = Calendar.from_ical(part.get_payload(decode=True))
                        event = proposal.walk("VEVENT")[0]
                        if proposal.get("METHOD") == "COUNTER" and event["SUMMARY"] == talk:
                            found.append(event)
            return found

        def proposed() -> bool:
            return any("New time proposed" in str(n.message) for n in app._notifications)

        await wait_until(pilot, proposed, "the COUNTER sent")
        await wait_until(pilot, lambda: bool(counters()), "the COUNTER in Jean's INBOX", 90, 0.5)
        await pilot.press("q")
    [proposed] = counters()
    assert proposed.decoded("DTSTART") == later
