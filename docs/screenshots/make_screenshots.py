"""Regenerate the README screenshots (SVG, Textual ``save_screenshot``) on the in-memory
mailbox of the snapshot tests:  .venv/bin/python docs/screenshots/make_screenshots.py"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent.parent))

from textual.widgets import Input  # noqa: E402

from client_tui.agenda_screen import AgendaScreen  # noqa: E402
from client_tui.app import HygieClient  # noqa: E402
from client_tui.config import Config  # noqa: E402
from client_tui.mail_screen import MailScreen  # noqa: E402
from tests.client.fake_mailbox import (  # noqa: E402
    START,
    demo_account,
    fake_connect,
    fake_connect_with_agenda,
)
from tests.client.pilot import wait_until  # noqa: E402


async def shoot(size: tuple[int, int], suffix: str) -> None:
    account = demo_account()
    with tempfile.TemporaryDirectory() as tmp:
        config = Config(Path(tmp) / "config.toml", {account.name: account}, account.name)
        app = HygieClient(config, connector=fake_connect)  # type: ignore[arg-type]
        async with app.run_test(size=size) as pilot:
            await pilot.pause(0.3)
            app.save_screenshot(f"sign-in{suffix}.svg", str(HERE))
            await pilot.press(*"secret", "enter")
            await wait_until(pilot, lambda: isinstance(app.screen, MailScreen), "mail")
            await pilot.pause(0.5)
            await pilot.press("down", "enter")
            await pilot.pause(0.5)
            app.save_screenshot(f"mail{suffix}.svg", str(HERE))
            await pilot.press("r")
            await pilot.pause(0.5)
            app.save_screenshot(f"compose{suffix}.svg", str(HERE))
            await pilot.press("escape")
            await pilot.pause(0.3)
            await pilot.press("slash")
            await pilot.pause(0.3)
            app.screen.query_one(Input).value = "ordonnance"
            await pilot.press("enter")
            await pilot.pause(0.5)
            app.save_screenshot(f"search{suffix}.svg", str(HERE))


async def shoot_agenda(size: tuple[int, int], suffix: str) -> None:
    """The agenda (month, then list) on a mailbox with invitations, "today" fixed."""
    account = demo_account()
    with tempfile.TemporaryDirectory() as tmp:
        config = Config(Path(tmp) / "config.toml", {account.name: account}, account.name)
        app = HygieClient(config, connector=fake_connect_with_agenda,  # type: ignore[arg-type]
                          now=lambda: START)  # fmt: skip
        async with app.run_test(size=size) as pilot:
            await pilot.press(*"secret", "enter")
            await wait_until(pilot, lambda: isinstance(app.screen, MailScreen), "mail")
            await pilot.press("A")
            await wait_until(pilot, lambda: isinstance(app.screen, AgendaScreen), "agenda")
            screen = app.screen
            await wait_until(pilot, lambda: screen.agenda is not None, "agenda read")  # type: ignore[attr-defined]
            await pilot.press("down", "down")  # the RCP invitation's day
            await pilot.pause(0.5)
            app.save_screenshot(f"agenda{suffix}.svg", str(HERE))
            await pilot.press("v")
            await pilot.pause(0.5)
            app.save_screenshot(f"agenda-list{suffix}.svg", str(HERE))


async def main() -> None:
    await shoot((80, 24), "-80x24")
    await shoot((120, 36), "")
    await shoot_agenda((80, 24), "-80x24")
    await shoot_agenda((120, 36), "")


if __name__ == "__main__":
    asyncio.run(main())
