"""The agenda: a month view and a list view of the appointments the mailbox's iMIP messages
describe (client_tui.appointments), with accept / decline / propose a new time on an
invitation, each sent as an iMIP REPLY or COUNTER to the organiser."""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from agenda.recurrence import PARIS
from client_tui.appointments import (
    ANSWERS,
    Agenda,
    Appointment,
    agenda_messages,
    build_agenda,
    counter_message,
    reply_message,
)
from client_tui.context import client_of
from client_tui.dialogs import Prompt

if TYPE_CHECKING:
    from client_tui.app import HygieClient

DAYS = ("Mo", "Tu", "We", "Th", "Fr", "Sa", "Su")
PARTSTAT_TEXT = {
    "NEEDS-ACTION": "to answer", "ACCEPTED": "accepted", "DECLINED": "declined",
    "TENTATIVE": "tentative", "DELEGATED": "delegated",
}  # fmt: skip


def answer_text(appointment: Appointment) -> str:
    if appointment.status == "CANCELLED":
        return "cancelled"
    if appointment.partstat is None:
        return "organiser"
    return PARTSTAT_TEXT.get(appointment.partstat, appointment.partstat.lower())


def parse_when(text: str) -> dt.datetime:
    """``JJ/MM/AAAA HH:MM`` in Paris time; ValueError otherwise."""
    return dt.datetime.strptime(text.strip(), "%d/%m/%Y %H:%M").replace(tzinfo=PARIS)


def ask_new_start(
    screen: Screen[Any], appointment: Appointment, then: Callable[[dt.datetime], object]
) -> None:
    """Ask for a new start (``JJ/MM/AAAA HH:MM``, the current one offered) and hand it to
    ``then``; a malformed answer is told, an empty one drops the proposal."""

    def chosen(text: str | None) -> None:
        if not text:
            return
        try:
            start = parse_when(text)
        except ValueError:
            screen.notify("Write the new time JJ/MM/AAAA HH:MM", severity="warning")
            return
        then(start)

    screen.app.push_screen(Prompt("Propose a new start (JJ/MM/AAAA HH:MM)",
                                  f"{appointment.start:%d/%m/%Y %H:%M}"), chosen)  # fmt: skip


async def send_answer(client: HygieClient, appointment: Appointment, partstat: str) -> str:
    """REPLY to the organiser (a copy is kept in Sent, which the agenda reads back)."""
    message = reply_message(appointment, client.account_address, partstat)
    await client.send(message)
    return message.as_string()


async def send_counter(client: HygieClient, appointment: Appointment, start: dt.datetime) -> str:
    message = counter_message(appointment, client.account_address, start)
    await client.send(message)
    return message.as_string()


class AgendaScreen(Screen[None]):
    AUTO_FOCUS = ""  # the month view takes the arrows itself; the list gets focus when shown
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("v", "toggle_view", "Month/list"),
        Binding("y", "answer('ACCEPTED')", "Accept"),
        Binding("n", "answer('DECLINED')", "Decline"),
        Binding("t", "propose", "New time"),
        Binding("left", "move(-1)", "Day before", show=False),
        Binding("right", "move(1)", "Day after", show=False),
        Binding("up", "move(-7)", "Week before", show=False),
        Binding("down", "move(7)", "Week after", show=False),
        Binding("left_square_bracket", "month(-1)", "Month before", show=False),
        Binding("right_square_bracket", "month(1)", "Month after", show=False),
        Binding("enter", "open_day", "Day", show=False),
        Binding("g", "reload", "Reload", show=False),
        Binding("escape,q", "close", "Mail"),
    ]

    def __init__(self, today: dt.date | None = None) -> None:
        super().__init__()
        self.today = today or dt.datetime.now(PARIS).date()
        self.day = self.today
        self.view = "month"
        self.agenda: Agenda | None = None
        self.shown: list[Appointment] = []

    @property
    def client(self) -> HygieClient:
        return client_of(self.app)

    def c(self, name: str) -> str:
        value = self.app.get_css_variables().get(name, "")
        return value if value.startswith("#") else ""

    def compose(self) -> ComposeResult:
        yield Static("", id="agenda-topbar")
        yield Static("", id="month-grid")
        table: DataTable[str | Text] = DataTable(id="agenda-list", cursor_type="row",
                                                 zebra_stripes=True)  # fmt: skip
        yield table
        yield Static("", id="agenda-detail")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#agenda-list", DataTable)
        table.add_column("Day", key="day", width=9)
        table.add_column("Time", key="time", width=11)
        table.add_column("Appointment", key="summary")
        table.add_column("Answer", key="answer", width=10)
        self._show_view()
        self.reload()

    # -- loading ---------------------------------------------------------------------------------

    def action_reload(self) -> None:
        self.reload()

    @work(exclusive=True, group="agenda")
    async def reload(self) -> None:
        self._topbar("reading the mailbox…")
        session = self.client.session
        if session is None:
            return
        try:
            reader = await session.imap()
            try:
                messages = await agenda_messages(reader)
            finally:
                await reader.logout()  # its own connection: the mail screen's keeps its folder
        except Exception as exc:  # shown, never a traceback
            self.client.report(exc)
            self._topbar("")
            return
        self.agenda = build_agenda(self.client.account_address, messages)
        self.refresh_views()

    # -- drawing ---------------------------------------------------------------------------------

    def _month_range(self) -> tuple[dt.datetime, dt.datetime]:
        first = self.day.replace(day=1)
        following = (first + dt.timedelta(days=32)).replace(day=1)
        return (dt.datetime.combine(first, dt.time(), PARIS),
                dt.datetime.combine(following, dt.time(), PARIS))  # fmt: skip

    def _topbar(self, note: str = "") -> None:
        text = Text.assemble(
            ("Agenda  ", f"bold {self.c('accent')}"),
            (f"{self.day:%B %Y}", "bold"),
            (f" · {self.view}", ""),
            (f"  {note}" if note else "", "italic"),
        )
        self.query_one("#agenda-topbar", Static).update(text)

    def refresh_views(self) -> None:
        start, end = self._month_range()
        self.shown = self.agenda.between(start, end) if self.agenda is not None else []
        waiting = sum(1 for a in self.shown if a.partstat == "NEEDS-ACTION" and a.is_invitation)
        count = f"{len(self.shown)} appointment{'s' if len(self.shown) != 1 else ''}"
        self._topbar(count + (f", {waiting} to answer" if waiting else ""))
        if self.view == "month":
            self._draw_month()
        else:
            self._fill_list()
        self._show_detail()

    def _show_view(self) -> None:
        self.query_one("#month-grid").display = self.view == "month"
        self.query_one("#agenda-list").display = self.view == "list"
        table = self.query_one("#agenda-list", DataTable)
        table.can_focus = self.view == "list"
        if self.view == "list":
            table.focus()
        else:
            self.set_focus(None)

    def _draw_month(self) -> None:
        grid = Table(expand=True, box=None, padding=(0, 0), show_edge=False,
                     header_style=f"bold {self.c('secondary')}")  # fmt: skip
        for name in DAYS:
            grid.add_column(name, ratio=1, no_wrap=True, overflow="ellipsis")
        by_day: dict[dt.date, list[Appointment]] = {}
        for appointment in self.shown:
            by_day.setdefault(appointment.start.date(), []).append(appointment)
        for week in calendar.Calendar().monthdatescalendar(self.day.year, self.day.month):
            cells = []
            for day in week:
                cell = Text(overflow="ellipsis", no_wrap=True)
                style = "dim" if day.month != self.day.month else ""
                if day == self.today:
                    style += f" bold {self.c('accent')}"
                if day == self.day:
                    style += " reverse"
                cell.append(f"{day.day:>2}", style=style.strip())
                todays = by_day.get(day, [])
                for appointment in todays[:2]:
                    cell.append("\n")
                    cell.append_text(self._short(appointment))
                if len(todays) > 2:
                    cell.append(f" +{len(todays) - 2}", style="italic")
                if not todays:
                    cell.append("\n")
                cells.append(cell)
            grid.add_row(*cells)
        self.query_one("#month-grid", Static).update(grid)

    def _short(self, appointment: Appointment) -> Text:
        style = ""
        if appointment.status == "CANCELLED" or appointment.partstat == "DECLINED":
            style = "strike dim"
        elif appointment.partstat == "NEEDS-ACTION":
            style = f"bold {self.c('warning')}"
        return Text(f"{appointment.start:%H:%M} {appointment.summary}", style=style)

    def _fill_list(self) -> None:
        table = self.query_one("#agenda-list", DataTable)
        table.clear()
        cursor = 0
        for index, appointment in enumerate(self.shown):
            day = f"{DAYS[appointment.start.weekday()]} {appointment.start:%d/%m}"
            hours = f"{appointment.start:%H:%M}–{appointment.end:%H:%M}"
            table.add_row(day, hours, appointment.summary,
                          Text(answer_text(appointment), style=self._short(appointment).style),
                          key=str(index))  # fmt: skip
            if appointment.start.date() < self.day:
                cursor = min(index + 1, len(self.shown) - 1)
        if self.shown:
            table.move_cursor(row=cursor)

    def _selected(self) -> Appointment | None:
        if self.view == "list":
            table = self.query_one("#agenda-list", DataTable)
            if table.row_count == 0:
                return None
            return self.shown[table.cursor_row] if table.cursor_row < len(self.shown) else None
        todays = [a for a in self.shown if a.start.date() == self.day]
        return next((a for a in todays if a.is_invitation), todays[0] if todays else None)

    def _show_detail(self) -> None:
        appointment = self._selected()
        detail = Text()
        if appointment is None:
            detail.append(f"{self.day:%d/%m/%Y}: no appointment.", style="dim")
        else:
            detail.append(f"{appointment.summary}", style="bold")
            detail.append(f"  ·  {appointment.start:%d/%m/%Y %H:%M}–{appointment.end:%H:%M}")
            if appointment.location:
                detail.append(f"  · {appointment.location}")
            who = ", ".join(f"{a} ({PARTSTAT_TEXT.get(p, p.lower())})"
                            for a, p in appointment.attendees)  # fmt: skip
            detail.append(f"\nOrganiser {appointment.organizer} · {answer_text(appointment)}"
                          f"\nAttendees {who}", style="dim")  # fmt: skip
            if appointment.is_invitation:
                detail.append("\ny accept · n decline · t propose a new time", style="italic")
        self.query_one("#agenda-detail", Static).update(detail)

    @on(DataTable.RowHighlighted, "#agenda-list")
    def row_highlighted(self) -> None:
        self._show_detail()

    # -- navigation ------------------------------------------------------------------------------

    def action_toggle_view(self) -> None:
        self.view = "list" if self.view == "month" else "month"
        self._show_view()
        self.refresh_views()

    def action_open_day(self) -> None:
        if self.view == "month":
            self.action_toggle_view()

    def action_move(self, days: int) -> None:
        if self.view != "month":
            table = self.query_one("#agenda-list", DataTable)
            if days == -7:
                table.action_cursor_up()
            elif days == 7:
                table.action_cursor_down()
            return
        before = self.day.month
        self.day += dt.timedelta(days=days)
        if self.day.month != before:
            self.refresh_views()
        else:
            self._draw_month()
            self._show_detail()

    def action_month(self, step: int) -> None:
        first = self.day.replace(day=1)
        target = (first + dt.timedelta(days=32 * step if step > 0 else -1)).replace(day=1)
        self.day = target
        self.refresh_views()

    def action_close(self) -> None:
        self.dismiss(None)

    # -- answers ---------------------------------------------------------------------------------

    def _invitation(self) -> Appointment | None:
        appointment = self._selected()
        if appointment is None or not appointment.is_invitation:
            self.notify("Choose an invitation someone else sent you", severity="warning")
            return None
        return appointment

    def action_answer(self, partstat: str) -> None:
        appointment = self._invitation()
        if appointment is not None:
            self.answer(appointment, partstat)

    @work(exclusive=True, group="answer")
    async def answer(self, appointment: Appointment, partstat: str) -> None:
        try:
            sent = await send_answer(self.client, appointment, partstat)
        except Exception as exc:
            self.client.report(exc)
            return
        if self.agenda is not None:
            self.agenda.take(sent.encode())
        self.notify(f"Answer “{ANSWERS[partstat]}” sent to {appointment.organizer}")
        self.refresh_views()

    def action_propose(self) -> None:
        appointment = self._invitation()
        if appointment is not None:
            ask_new_start(self, appointment, lambda start: self.propose(appointment, start))

    @work(exclusive=True, group="answer")
    async def propose(self, appointment: Appointment, start: dt.datetime) -> None:
        try:
            await send_counter(self.client, appointment, start)
        except Exception as exc:
            self.client.report(exc)
            return
        self.notify(f"New time proposed to {appointment.organizer}")
