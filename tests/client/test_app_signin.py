"""Signing in from the interface by certificate (PKCS#12 passphrase, SASL EXTERNAL) and by
token command (OAUTHBEARER), and a large folder read page by page."""

from __future__ import annotations

import imaplib
from pathlib import Path

from textual.widgets import DataTable, Input, Static, Tree

from bench.harness import ServerProcess, hygie_command
from client_tui.app import HygieClient, SignInScreen
from client_tui.config import Config, load_config
from client_tui.mail_screen import PAGE_SIZE, MailScreen
from tests.client.conftest import CLAIRE, JEAN, PASSPHRASE, PASSWORD, Setup, account_for
from tests.client.pilot import wait_until
from tests.client.test_app_pilot import SIZE

BIG_FOLDER = "Drafts"  # Jean's; no other test reads it
BIG = PAGE_SIZE * 2 + 30


def one_account_config(tmp_path: Path, **values: object) -> Config:
    account = account_for(**values)  # type: ignore[arg-type]
    return Config(tmp_path / "config.toml", {account.name: account}, account.name)


async def test_certificate_sign_in(client_setup: Setup, tmp_path: Path) -> None:
    server = client_setup.server
    config = one_account_config(tmp_path, server=server, address=JEAN, auth="certificate",
                                pkcs12=str(client_setup.pkcs12))  # fmt: skip
    app = HygieClient(config)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, SignInScreen), "sign-in")
        secret = app.screen.query_one("#secret", Input)
        assert secret.placeholder == "PKCS#12 passphrase"
        await pilot.press(*"wrong", "enter")
        error = app.screen.query_one("#signin-error", Static)
        await wait_until(pilot, lambda: "passphrase" in str(error.render()), "the refusal")
        secret.value = PASSPHRASE
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, MailScreen), "the mail screen")
        topbar = app.screen.query_one("#topbar", Static)  # filled once the folder is selected
        await wait_until(pilot, lambda: JEAN in str(topbar.render()), "the address in the top bar")
        await pilot.press("q")


async def test_token_sign_in(server: ServerProcess, tmp_path: Path) -> None:
    command = " ".join([*hygie_command(), "--data", str(server.data_dir), "token", "issue", CLAIRE])
    config = one_account_config(tmp_path, server=server, address=CLAIRE, auth="token",
                                token_command=command)  # fmt: skip
    app = HygieClient(config)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, SignInScreen), "sign-in")
        assert not app.screen.query_one("#secret", Input).display  # nothing to type
        await pilot.click("#signin-button")
        await wait_until(pilot, lambda: isinstance(app.screen, MailScreen), "the mail screen")
        await pilot.press("q")


def fill_big_folder(server: ServerProcess) -> None:
    """BIG messages in one MULTIAPPEND (RFC 3502) with non-synchronising literals (RFC 7888):
    one durable commit instead of one per APPEND."""
    imap = imaplib.IMAP4_SSL("127.0.0.1", server.imap_tls_port, ssl_context=server.ssl_context())
    imap.login(JEAN, PASSWORD)
    command = f"a1 APPEND {BIG_FOLDER}".encode()
    for n in range(1, BIG + 1):
        message = f"From: {JEAN}\r\nTo: {JEAN}\r\nSubject: Brouillon {n:03d}\r\n\r\nx\r\n"
        command += f" (\\Seen) {{{len(message)}+}}\r\n".encode() + message.encode()
    imap.send(command + b"\r\n")
    while not (line := imap.readline()).startswith(b"a1 "):
        assert line, "connection closed during MULTIAPPEND"
    assert line.startswith(b"a1 OK"), line
    imap.logout()


async def test_large_folder_is_paged(server: ServerProcess, config_file: Path) -> None:
    fill_big_folder(server)
    app = HygieClient(load_config(config_file), account_name="jean")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press(*PASSWORD, "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, MailScreen), "the mail screen")
        screen = app.screen
        assert isinstance(screen, MailScreen)
        tree: Tree[str] = screen.query_one("#folders", Tree)
        await wait_until(pilot, lambda: len(tree.root.children) >= 5, "the folders")
        node = next(n for n in tree.root.children if n.data == BIG_FOLDER)
        tree.select_node(node)
        table = screen.query_one("#messages", DataTable)
        topbar = screen.query_one("#topbar", Static)
        await wait_until(pilot, lambda: f"of {BIG}" in str(topbar.render()), "the big folder")
        assert table.row_count == PAGE_SIZE  # one page fetched, not the folder
        assert f"{BIG - PAGE_SIZE + 1}–{BIG} of {BIG}" in str(topbar.render())
        assert str(table.get_row_at(0)[3]) == f"Brouillon {BIG:03d}"  # newest first
        await pilot.press("left_square_bracket")
        await wait_until(pilot, lambda: f"{BIG - 2 * PAGE_SIZE + 1}–{BIG - PAGE_SIZE} of"
                         in str(topbar.render()), "the older page")  # fmt: skip
        await pilot.press("left_square_bracket")
        await wait_until(pilot, lambda: f"1–{BIG - 2 * PAGE_SIZE} of" in str(topbar.render()),
                         "the oldest page")  # fmt: skip
        assert table.row_count == BIG - 2 * PAGE_SIZE
        await pilot.press("right_square_bracket")
        await wait_until(pilot, lambda: table.row_count == PAGE_SIZE, "back to a full page")
        await pilot.press("q")


async def test_lost_connection_is_reopened(server: ServerProcess, config_file: Path) -> None:
    """The reading connection drops (autologout, server restart): the next action reconnects
    and works, with no error shown."""
    from client_tui.backend import Reconnecting
    from client_tui.imap import ImapClient

    app = HygieClient(load_config(config_file), account_name="claire")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press(*PASSWORD, "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, MailScreen), "the mail screen")
        screen = app.screen
        assert isinstance(screen, MailScreen)
        await wait_until(pilot, lambda: len(screen.folders) >= 5, "the folders")
        reader = app.reader
        assert isinstance(reader, Reconnecting) and isinstance(reader.inner, ImapClient)
        old = reader.inner
        await old.close()
        screen.folders = []
        await pilot.press("g")
        await wait_until(pilot, lambda: len(screen.folders) >= 5, "the folders again")
        assert reader.inner is not old and reader.inner.connected
        assert not [n for n in app._notifications if n.severity == "error"]
        await pilot.press("q")
