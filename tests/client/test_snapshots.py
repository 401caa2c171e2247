"""SVG snapshots of the main screens at 80×24 and 120×36, on an in-memory mailbox (fixed
dates and names). ``pytest --snapshot-update tests/client/test_snapshots.py`` rewrites them
after an intended change; look at the SVGs before committing."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static, TextArea

from client_tui.agenda_screen import AgendaScreen
from client_tui.app import HygieClient
from client_tui.compose_screen import ComposeScreen
from client_tui.config import Config
from client_tui.mail_screen import MailScreen
from tests.client.fake_mailbox import START, demo_account, fake_connect, fake_connect_with_agenda
from tests.client.pilot import row_of, wait_until


@pytest.fixture(autouse=True)
def no_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    """The "Remember" box shows only with a keyring module; keep the pictures the same
    whatever this machine has installed."""
    monkeypatch.setitem(sys.modules, "keyring", None)


async def steady_cursors(pilot: Pilot[Any]) -> None:
    """Text cursors blink on a timer: on a busy machine the picture caught one off. Stop the
    blinking (the cursor then stays shown) on every input of the screen."""
    for widget in pilot.app.screen.query("Input, TextArea"):
        widget.cursor_blink = False  # type: ignore[attr-defined]
        if isinstance(widget, TextArea):
            # TextArea's line cache does not tell a non-blinking cursor's lines from the same
            # lines drawn before the focus came: drop it, or the cursor may never show.
            widget._line_cache.clear()
        widget.refresh()
    await pilot.pause()


def demo_app(tmp_path: Path) -> HygieClient:
    account = demo_account()
    config = Config(tmp_path / "config.toml", {account.name: account}, account.name)
    return HygieClient(config, connector=fake_connect)  # type: ignore[arg-type]


async def signed_in(pilot: Pilot[Any]) -> None:
    await pilot.press(*"secret", "enter")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, MailScreen), "mail screen")
    screen = pilot.app.screen
    await wait_until(pilot, lambda: screen.query_one("#messages").row_count == 6, "the list")  # type: ignore[attr-defined]
    await pilot.pause()


def _text(pilot: Pilot[Any], selector: str) -> str:
    found = pilot.app.screen.query(selector)
    return str(found.first(Static).render()) if found else ""


async def reading(pilot: Pilot[Any]) -> None:
    await signed_in(pilot)
    await pilot.press("down", "enter")  # the lab results (no receipt question)
    # What a reader waits for (a fixed pause caught it half drawn on a busy machine).
    await wait_until(pilot, lambda: "Select a message" not in _text(pilot, "#reader-body")
                     and bool(_text(pilot, "#reader-headers")), "the message shown")  # fmt: skip
    await pilot.pause(0.3)


def test_sign_in_80x24(snap_compare: Any, tmp_path: Path) -> None:
    assert snap_compare(demo_app(tmp_path), terminal_size=(80, 24), run_before=steady_cursors)


def test_mail_screen_80x24(snap_compare: Any, tmp_path: Path) -> None:
    assert snap_compare(demo_app(tmp_path), terminal_size=(80, 24), run_before=reading)


def test_mail_screen_120x36(snap_compare: Any, tmp_path: Path) -> None:
    assert snap_compare(demo_app(tmp_path), terminal_size=(120, 36), run_before=reading)


def test_compose_80x24(snap_compare: Any, tmp_path: Path) -> None:
    async def composing(pilot: Pilot[Any]) -> None:
        await reading(pilot)
        await pilot.press("r")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, ComposeScreen)
                         and bool(pilot.app.screen.query_one("#subject", Input).value)
                         and pilot.app.screen.query_one("#body").has_focus,
                         "the reply form, the cursor in its text")  # fmt: skip
        await pilot.pause(0.3)
        await steady_cursors(pilot)

    assert snap_compare(demo_app(tmp_path), terminal_size=(80, 24), run_before=composing)


def test_help_80x24(snap_compare: Any, tmp_path: Path) -> None:
    async def helping(pilot: Pilot[Any]) -> None:
        await signed_in(pilot)
        await pilot.press("question_mark")
        await pilot.pause(0.3)

    assert snap_compare(demo_app(tmp_path), terminal_size=(80, 24), run_before=helping)


def test_first_run_setup_80x24(snap_compare: Any, tmp_path: Path) -> None:
    app = HygieClient(Config(tmp_path / "config.toml"))
    assert snap_compare(app, terminal_size=(80, 24), run_before=steady_cursors)


def agenda_app(tmp_path: Path) -> HygieClient:
    account = demo_account()
    config = Config(tmp_path / "config.toml", {account.name: account}, account.name)
    return HygieClient(config, connector=fake_connect_with_agenda,  # type: ignore[arg-type]
                       now=lambda: START)  # fmt: skip


async def in_agenda(pilot: Pilot[Any]) -> None:
    await pilot.press(*"secret", "enter")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, MailScreen), "mail screen")
    await pilot.press("A")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, AgendaScreen), "the agenda")
    screen = pilot.app.screen
    await wait_until(pilot, lambda: screen.agenda is not None, "the agenda read")  # type: ignore[attr-defined]
    await pilot.pause(0.3)


def test_agenda_month_80x24(snap_compare: Any, tmp_path: Path) -> None:
    assert snap_compare(agenda_app(tmp_path), terminal_size=(80, 24), run_before=in_agenda)


def test_agenda_list_80x24(snap_compare: Any, tmp_path: Path) -> None:
    async def listing(pilot: Pilot[Any]) -> None:
        await in_agenda(pilot)
        await pilot.press("v")
        await pilot.pause(0.3)

    assert snap_compare(agenda_app(tmp_path), terminal_size=(80, 24), run_before=listing)


def test_invitation_in_the_reader_80x24(snap_compare: Any, tmp_path: Path) -> None:
    async def invited(pilot: Pilot[Any]) -> None:
        await pilot.press(*"secret", "enter")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, MailScreen), "mail screen")
        screen = pilot.app.screen
        await wait_until(pilot, lambda: screen.query_one("#messages").row_count == 10, "list")  # type: ignore[attr-defined]
        table = screen.query_one("#messages", DataTable)
        table.move_cursor(row=row_of(pilot, "Invitation : Vaccination antigrippale"))
        await pilot.press("enter")
        await pilot.pause(0.3)

    assert snap_compare(agenda_app(tmp_path), terminal_size=(80, 24), run_before=invited)
