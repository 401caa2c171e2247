"""The Textual client driven by Pilot against a real ``hygie serve``: sign in, read (with the
read-receipt question), new mail arriving live, compose and send, errors shown in the UI."""

from __future__ import annotations

import asyncio
import email
import uuid
from email.policy import default as default_policy
from pathlib import Path

from textual.widgets import DataTable, Input, Static, TextArea

from bench.harness import ServerProcess
from client_tui.app import HygieClient, SignInScreen
from client_tui.compose import Draft, build_message
from client_tui.compose_screen import ComposeScreen
from client_tui.config import load_config
from client_tui.dialogs import Confirm
from client_tui.mail_screen import MailScreen
from client_tui.session import MailSession, resolve_credentials
from tests.client.conftest import CLAIRE, JEAN, PASSWORD, PAUL, account_for
from tests.client.pilot import row_of, table_subjects, wait_until
from tests.support.mail import imap_session, inbox_messages

SIZE = (100, 30)


async def jean_sends(server: ServerProcess, subject: str, *, receipt: bool = False,
                     attachment: Path | None = None) -> None:  # fmt: skip
    account = account_for(server, JEAN)
    session = MailSession(account, await resolve_credentials(account, PASSWORD))
    draft = Draft(sender=JEAN, to=CLAIRE, cc=PAUL, subject=subject, read_receipt=receipt,
                  body="Bonjour Claire,\nle bilan est normal.\nJean\n")  # fmt: skip
    if attachment:
        draft.attachments = [attachment]
    await session.send(build_message(draft))


async def sign_in(pilot, password: str = PASSWORD) -> None:  # type: ignore[no-untyped-def]
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, SignInScreen), "sign-in")
    await pilot.press(*password, "enter")


def with_subject(messages: list[bytes], subject: str) -> list[bytes]:
    """Messages whose decoded Subject is ``subject`` (RFC 2047 words decoded)."""

    def decoded(raw: bytes) -> str:
        return str(email.message_from_bytes(raw, policy=default_policy)["Subject"])

    return [m for m in messages if decoded(m) == subject]


def sent_folder_subjects(server: ServerProcess) -> list[str]:
    with imap_session(server, CLAIRE, PASSWORD) as imap:
        imap.select("Sent")
        _, data = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    return [
        email.message_from_bytes(part[1], policy=default_policy)["Subject"]
        for part in data if isinstance(part, tuple)
    ]  # fmt: skip


async def test_sign_in_read_receipt_and_live_mail(
    server: ServerProcess, config_file: Path, tmp_path: Path
) -> None:
    subject = f"Bilan {uuid.uuid4().hex[:6]}"
    report = tmp_path / "bilan.pdf"
    report.write_bytes(b"%PDF-1.4 bilan")
    await jean_sends(server, subject, receipt=True, attachment=report)

    app = HygieClient(load_config(config_file), account_name="claire")
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot)
        await wait_until(pilot, lambda: subject in table_subjects(pilot), "the message list")
        assert isinstance(app.screen, MailScreen)
        tree_text = str(app.screen.query_one("#folders").root.children[0].label)  # type: ignore[attr-defined]
        assert tree_text.startswith("INBOX (")  # the unread count

        table = app.screen.query_one("#messages", DataTable)
        table.move_cursor(row=row_of(pilot, subject))
        table.focus()
        await pilot.press("enter")
        # The message asks for a read receipt: the user is asked first.
        await wait_until(pilot, lambda: isinstance(app.screen, Confirm), "the receipt question")
        await pilot.press("y")
        await wait_until(pilot, lambda: isinstance(app.screen, MailScreen), "the reader")
        body = app.screen.query_one("#reader-body", Static)
        await wait_until(pilot, lambda: "le bilan est normal" in str(body.render()), "the text")
        attachments = str(app.screen.query_one("#reader-attachments", Static).render())
        assert "bilan.pdf" in attachments

        # Save the attachment where the user says.
        await pilot.press("w")
        await wait_until(pilot, lambda: bool(app.screen.query("#prompt-input")), "save prompt")
        app.screen.query_one("#prompt-input", Input).value = str(tmp_path / "saved")
        await pilot.press("enter")
        await wait_until(pilot, lambda: (tmp_path / "saved" / "bilan.pdf").exists(), "saving")
        assert (tmp_path / "saved" / "bilan.pdf").read_bytes() == b"%PDF-1.4 bilan"

        # New mail shows up by itself (IDLE), without a key press.
        live = f"Urgent {uuid.uuid4().hex[:6]}"
        await jean_sends(server, live)
        await wait_until(pilot, lambda: live in table_subjects(pilot), "the IDLE refresh", 90)

        await pilot.press("q")

    # Jean got the MDN (multipart/report; disposition-notification).
    def mdn_arrived() -> list[bytes]:
        receipt = f"Accusé de lecture : {subject}"
        return with_subject(inbox_messages(server, JEAN, PASSWORD), receipt)

    for _ in range(100):
        if mdn_arrived():
            break
        await asyncio.sleep(0.2)
    [mdn] = mdn_arrived()
    assert b"disposition-notification" in mdn and b"displayed" in mdn


async def test_compose_and_send(server: ServerProcess, config_file: Path) -> None:
    subject = f"Demande d'avis {uuid.uuid4().hex[:6]}"
    app = HygieClient(load_config(config_file), account_name="claire")
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot)
        await wait_until(pilot, lambda: isinstance(app.screen, MailScreen), "the mail screen")
        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(app.screen, ComposeScreen)
                         and bool(app.screen.query("#to")), "the editor")  # fmt: skip
        app.screen.query_one("#to", Input).value = JEAN
        app.screen.query_one("#subject", Input).value = subject
        app.screen.query_one("#body", TextArea).text = "Pouvez-vous revoir ce patient ?\n"
        await pilot.click("#dsn")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, MailScreen), "the send", 90)
        await pilot.press("q")
    [raw] = with_subject(inbox_messages(server, JEAN, PASSWORD), subject)
    assert b"Pouvez-vous revoir ce patient" in raw
    assert subject in sent_folder_subjects(server)  # a copy kept in Sent


async def test_wrong_password_is_shown_not_raised(server: ServerProcess, config_file: Path) -> None:
    app = HygieClient(load_config(config_file), account_name="claire")
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "not-the-password")
        error = app.screen.query_one("#signin-error", Static)
        await wait_until(pilot, lambda: "login refused" in str(error.render()), "the error")
        assert isinstance(app.screen, SignInScreen)  # still there, ready for another try
        await pilot.press("escape")
    assert app.return_code in (0, None)


async def test_refused_recipient_keeps_the_editor(server: ServerProcess, config_file: Path) -> None:
    app = HygieClient(load_config(config_file), account_name="claire")
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot)
        await wait_until(pilot, lambda: isinstance(app.screen, MailScreen), "the mail screen")
        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(app.screen, ComposeScreen)
                         and bool(app.screen.query("#to")), "the editor")  # fmt: skip
        app.screen.query_one("#to", Input).value = "personne@hygie.test"
        app.screen.query_one("#subject", Input).value = "x"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: any("personne@hygie.test" in str(n.message)
                                            for n in app._notifications), "the error")  # fmt: skip
        assert isinstance(app.screen, ComposeScreen)  # the draft is not lost
        assert app.return_code in (0, None)
