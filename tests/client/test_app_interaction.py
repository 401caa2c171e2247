"""The interface on the in-memory mailbox: the mouse opens a message, a column header sorts,
the read-receipt question can be declined (nothing is sent), help opens and closes."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable, Static

from client_tui.app import HygieClient
from client_tui.dialogs import Confirm, Help
from client_tui.mail_screen import MailScreen
from tests.client.fake_mailbox import FakeAccount
from tests.client.pilot import table_subjects, wait_until
from tests.client.test_snapshots import demo_app, signed_in


async def test_mouse_sort_and_declined_receipt(tmp_path: Path) -> None:
    app: HygieClient = demo_app(tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await signed_in(pilot)
        screen = app.screen
        assert isinstance(screen, MailScreen)

        # A click on the second row opens it (no receipt asked there).
        await pilot.click("#messages", offset=(40, 2))
        body = screen.query_one("#reader-body", Static)
        await wait_until(pilot, lambda: "Les résultats sont joints" in str(body.render()),
                         "the clicked message")  # fmt: skip

        # A click on the Subject header sorts by subject.
        table = screen.query_one("#messages", DataTable)
        await pilot.click("#messages", offset=(70, 0))
        await pilot.pause(0.2)
        subjects = table_subjects(pilot)
        assert (screen.sort_column, screen.sort_reverse) == ("subject", False), subjects
        assert subjects == sorted(subjects, key=str.lower)
        assert table.row_count == 6

        # The first message asks for a receipt; "Not now" sends nothing but remembers.
        first = subjects.index("Compte rendu d'échographie abdominale")
        table.move_cursor(row=first)
        table.focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, Confirm), "the question")
        await pilot.click("#no")
        await wait_until(pilot, lambda: isinstance(app.screen, MailScreen), "back")
        session = app.session
        assert isinstance(session, FakeAccount)
        await pilot.pause(0.2)
        assert session.sent == []
        summary = next(s for s in screen.summaries.values() if s.wants_mdn)
        assert "$MDNSent" in summary.flags

        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, Help), "help")
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, MailScreen), "help closed")
