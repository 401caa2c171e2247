"""Managing mail from the interface against a real ``hygie serve``: flag, read/unread,
server search, move, delete to Trash; each checked on the server with imaplib."""

from __future__ import annotations

import uuid
from pathlib import Path

from textual.widgets import DataTable, Input, OptionList

from bench.harness import ServerProcess
from client_tui.app import HygieClient
from client_tui.compose import Draft, build_message
from client_tui.config import load_config
from client_tui.dialogs import ChooseFolder, Prompt
from client_tui.mail_screen import MailScreen
from client_tui.session import MailSession, resolve_credentials
from tests.client.conftest import JEAN, PASSWORD, PAUL, account_for
from tests.client.pilot import row_of, table_subjects, wait_until
from tests.client.test_app_pilot import SIZE, sign_in
from tests.support.mail import imap_session


def flags_on_server(server: ServerProcess, folder: str, subject: str) -> str | None:
    """The FLAGS of the message with ``subject`` in Paul's ``folder``, None if absent."""
    with imap_session(server, PAUL, PASSWORD) as imap:
        imap.select(folder)
        _, found = imap.search(None, "SUBJECT", f'"{subject}"')
        numbers = found[0].split()
        if not numbers:
            return None
        _, data = imap.fetch(numbers[0].decode(), "(FLAGS)")
    return str(data[0])


async def test_flag_unread_search_move_delete(server: ServerProcess, config_file: Path) -> None:
    tag = uuid.uuid4().hex[:6]
    first, second = f"Ordonnance {tag}", f"Radio {tag}"
    account = account_for(server, JEAN)
    session = MailSession(account, await resolve_credentials(account, PASSWORD))
    for subject in (first, second):
        await session.send(build_message(Draft(sender=JEAN, to=PAUL, subject=subject,
                                               body=f"{subject}\n")))  # fmt: skip

    app = HygieClient(load_config(config_file), account_name="paul")
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot)
        await wait_until(pilot, lambda: second in table_subjects(pilot), "the list")
        screen = app.screen
        assert isinstance(screen, MailScreen)
        table = screen.query_one("#messages", DataTable)

        table.move_cursor(row=row_of(pilot, first))
        await pilot.press("s")
        await wait_until(pilot, lambda: "\\Flagged" in str(flags_on_server(server, "INBOX", first)),
                         "the flag on the server")  # fmt: skip
        await pilot.press("enter")
        await wait_until(pilot, lambda: "\\Seen" in str(flags_on_server(server, "INBOX", first)),
                         "\\Seen after reading")  # fmt: skip
        # The server sets \Seen while the client fetches; "u" acts on the client's own view,
        # updated once the message is shown.
        await wait_until(pilot, lambda: screen.opened is not None, "the message shown")
        await pilot.press("u")

        def unread() -> bool:
            return "\\Seen" not in str(flags_on_server(server, "INBOX", first))

        await wait_until(pilot, unread, "unread again")

        await pilot.press("slash")
        await wait_until(pilot, lambda: isinstance(app.screen, Prompt), "the search box")
        app.screen.query_one(Input).value = f"Radio {tag}"
        await pilot.press("enter")
        await wait_until(pilot, lambda: table_subjects(pilot) == [second], "the search result")
        await pilot.press("escape")
        await wait_until(pilot, lambda: first in table_subjects(pilot), "the whole folder")

        table.move_cursor(row=row_of(pilot, second))
        await pilot.press("m")
        await wait_until(pilot, lambda: isinstance(app.screen, ChooseFolder), "the folder list")
        options = app.screen.query_one(OptionList)
        options.highlighted = next(i for i in range(options.option_count)
                                   if options.get_option_at_index(i).id == "Archive")  # fmt: skip
        await pilot.press("enter")
        await wait_until(pilot, lambda: flags_on_server(server, "Archive", second) is not None,
                         "the move to Archive")  # fmt: skip
        assert second not in table_subjects(pilot)

        table.move_cursor(row=row_of(pilot, first))
        await pilot.press("d")
        await wait_until(pilot, lambda: flags_on_server(server, "Trash", first) is not None,
                         "the move to Trash")  # fmt: skip
        assert flags_on_server(server, "INBOX", first) is None
        await pilot.press("q")
