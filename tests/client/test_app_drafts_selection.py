"""Against a real ``hygie serve``: actions on several selected messages at once, drafts kept
in Drafts (APPEND with \\Draft) and reopened, and new mail shown live in the folder on screen
(IDLE follows the selected folder, not only INBOX)."""

from __future__ import annotations

import uuid
from pathlib import Path

from textual.widgets import DataTable, Input, OptionList, TextArea, Tree

from bench.harness import ServerProcess
from client_tui.app import HygieClient
from client_tui.compose import Draft, build_message
from client_tui.compose_screen import ComposeScreen
from client_tui.config import load_config
from client_tui.dialogs import ChooseFolder
from client_tui.mail_screen import MailScreen
from client_tui.session import MailSession, resolve_credentials
from tests.client.conftest import CLAIRE, JEAN, PASSWORD, PAUL, account_for
from tests.client.pilot import row_of, table_subjects, wait_until
from tests.client.test_app_pilot import SIZE, sign_in, with_subject
from tests.support.mail import imap_session, inbox_messages


def folder_on_server(server: ServerProcess, who: str, folder: str) -> dict[str, str]:
    """Subject → FLAGS of every message in ``who``'s ``folder``."""
    with imap_session(server, who, PASSWORD) as imap:
        imap.select(folder, readonly=True)
        _, data = imap.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    found: dict[str, str] = {}
    for part in data:
        if isinstance(part, tuple):
            subject = part[1].decode().partition(":")[2].strip()
            found[subject] = part[0].decode()
    return found


def choose_folder(pilot, name: str) -> None:  # type: ignore[no-untyped-def]
    tree = pilot.app.screen.query_one("#folders", Tree)
    node = next(n for n in tree.root.children if n.data == name)
    tree.select_node(node)


async def test_several_selected_messages_at_once(server: ServerProcess, config_file: Path) -> None:
    tag = uuid.uuid4().hex[:6]
    subjects = [f"Lot {tag} {n}" for n in (1, 2, 3)]
    account = account_for(server, JEAN)
    session = MailSession(account, await resolve_credentials(account, PASSWORD))
    for subject in subjects:
        await session.send(build_message(Draft(sender=JEAN, to=PAUL, subject=subject)))

    app = HygieClient(load_config(config_file), account_name="paul")
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot)
        await wait_until(pilot, lambda: subjects[2] in table_subjects(pilot), "the list")
        screen = app.screen
        assert isinstance(screen, MailScreen)
        table = screen.query_one("#messages", DataTable)
        table.focus()
        for subject in subjects[:2]:
            table.move_cursor(row=row_of(pilot, subject))
            await pilot.press("space")
        assert len(screen.marked) == 2
        await pilot.press("s")  # flag both

        def flagged() -> list[str]:
            inbox = folder_on_server(server, PAUL, "INBOX")
            return [s for s in subjects if "\\Flagged" in inbox.get(s, "")]

        await wait_until(pilot, lambda: flagged() == subjects[:2], "both flagged", every=0.5)
        assert not screen.marked  # an action clears the selection

        for subject in subjects[1:]:
            table.move_cursor(row=row_of(pilot, subject))
            await pilot.press("space")
        await pilot.press("m")
        await wait_until(pilot, lambda: isinstance(app.screen, ChooseFolder), "the folder list")
        options = app.screen.query_one(OptionList)
        options.highlighted = next(i for i in range(options.option_count)
                                   if options.get_option_at_index(i).id == "Archive")  # fmt: skip
        await pilot.press("enter")

        def archived() -> set[str]:
            return set(folder_on_server(server, PAUL, "Archive")) & set(subjects)

        await wait_until(pilot, lambda: archived() == set(subjects[1:]), "both moved", every=0.5)
        assert subjects[0] in table_subjects(pilot)
        assert not set(subjects[1:]) & set(table_subjects(pilot))

        # IDLE now watches Archive, the folder on screen: a message arriving there shows.
        choose_folder(pilot, "Archive")
        await wait_until(pilot, lambda: subjects[1] in table_subjects(pilot), "Archive listed")
        live = f"Classé {tag}"
        with imap_session(server, PAUL, PASSWORD) as imap:
            raw = f"From: {JEAN}\r\nTo: {PAUL}\r\nSubject: {live}\r\n\r\nx\r\n".encode()
            imap.append("Archive", None, None, raw)
        await wait_until(pilot, lambda: live in table_subjects(pilot), "the live Archive", 90)
        await pilot.press("q")


async def test_draft_saved_reopened_and_sent(server: ServerProcess, config_file: Path) -> None:
    tag = uuid.uuid4().hex[:6]
    first, second = f"Brouillon {tag}", f"Avis {tag}"
    app = HygieClient(load_config(config_file), account_name="claire")
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot)
        await wait_until(pilot, lambda: isinstance(app.screen, MailScreen), "the mail screen")
        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(app.screen, ComposeScreen), "the editor")
        app.screen.query_one("#to", Input).value = JEAN
        app.screen.query_one("#subject", Input).value = first
        app.screen.query_one("#body", TextArea).text = "Premier jet.\n"
        await pilot.press("ctrl+d")

        def drafts() -> dict[str, str]:
            return folder_on_server(server, CLAIRE, "Drafts")

        await wait_until(
            pilot, lambda: "\\Draft" in drafts().get(first, ""), "the draft", every=0.5
        )
        await pilot.press("escape")  # saved: leaving asks nothing
        await wait_until(pilot, lambda: isinstance(app.screen, MailScreen), "back to the list")

        choose_folder(pilot, "Drafts")
        await wait_until(pilot, lambda: first in table_subjects(pilot), "Drafts listed")
        table = app.screen.query_one("#messages", DataTable)
        table.move_cursor(row=row_of(pilot, first))
        table.focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ComposeScreen), "the draft again")
        editor = app.screen
        assert editor.query_one("#to", Input).value == JEAN
        assert "Premier jet." in editor.query_one("#body", TextArea).text
        editor.query_one("#subject", Input).value = second
        await pilot.press("ctrl+d")  # a new version replaces the old one
        await wait_until(
            pilot, lambda: set(drafts()) == {second}, "one version in Drafts", every=0.5
        )
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, MailScreen), "the send", 90)
        await wait_until(pilot, lambda: not drafts(), "Drafts emptied by the send", every=0.5)
        await pilot.press("q")
    [sent] = with_subject(inbox_messages(server, JEAN, PASSWORD), second)
    assert b"Premier jet." in sent
