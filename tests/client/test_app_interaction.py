"""The interface on the in-memory mailbox: the mouse opens a message, a column header sorts,
the read-receipt question can be declined (nothing is sent), help opens and closes."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest
from textual.widgets import Checkbox, DataTable, Input, Static

from client_tui.app import HygieClient
from client_tui.compose import read_message, register_xdm_builder, register_xdm_describer
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


async def test_open_attachment_and_xdm_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``o`` hands a private copy to the system viewer; an IHE_XDM.zip is described through
    the registered hook (dossier.xdm once merged)."""
    copied = tmp_path / "viewed.pdf"
    viewer = tmp_path / "viewer"
    viewer.write_text(f'#!/bin/sh\ncp "$1" {copied}\n')
    viewer.chmod(0o755)
    monkeypatch.setattr("client_tui.mail_screen.shutil.which",
                        lambda name: str(viewer) if name == "xdg-open" else None)  # fmt: skip

    app: HygieClient = demo_app(tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await signed_in(pilot)
        screen = app.screen
        assert isinstance(screen, MailScreen)
        await pilot.press("down", "enter")  # the lab results, one PDF
        body = screen.query_one("#reader-body", Static)
        await wait_until(pilot, lambda: "Les résultats sont joints" in str(body.render()), "text")
        await pilot.press("o")
        await wait_until(pilot, lambda: copied.exists() and copied.stat().st_size > 0, "viewer")
        assert copied.read_bytes().startswith(b"%PDF-1.4")

        register_xdm_describer(lambda data: [("Patient", "DUPONT Marie"),
                                             ("Document", "11488-4 Compte rendu")])  # fmt: skip
        try:
            message = EmailMessage()
            message["From"] = "jean.dupont@hygie.test"
            message["Subject"] = "XDM/1.0/DDM+Compte rendu DUPONT Marie 20250314"
            message.set_content("Document joint.")
            message.add_attachment(b"PK", maintype="application", subtype="zip",
                                   filename="IHE_XDM.zip")  # fmt: skip
            screen.show_message(read_message(message.as_bytes()))
            await pilot.pause()
            shown = str(screen.query_one("#reader-attachments", Static).render())
            assert "IHE_XDM.zip" in shown and "Patient: DUPONT Marie" in shown
            # MSSanté UX.28 (test case 8): the subject without its XDM/1.0/DDM+ prefix.
            headers = str(screen.query_one("#reader-headers", Static).render())
            assert "Compte rendu DUPONT Marie 20250314" in headers and "DDM+" not in headers
        finally:
            register_xdm_describer(None)


async def test_keyring_remembers_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a ``keyring`` module, "Remember" stores the secret after a good sign-in and the
    next sign-in finds it filled in; without one the box is not shown."""
    import sys
    import types

    store: dict[tuple[str, str], str] = {}
    keyring = types.ModuleType("keyring")
    keyring.get_password = lambda service, user: store.get((service, user))  # type: ignore[attr-defined]
    keyring.set_password = lambda service, user, value: store.__setitem__((service, user), value)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "keyring", keyring)

    app: HygieClient = demo_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        remember = app.screen.query_one("#remember", Checkbox)
        assert remember.display and not remember.value
        remember.value = True
        await signed_in(pilot)
    assert store == {("hygie-client", "claire.martin@hygie.test"): "secret"}

    app = demo_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.screen.query_one("#secret", Input).value == "secret"

    monkeypatch.setitem(sys.modules, "keyring", None)  # import keyring now fails
    app = demo_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert not app.screen.query_one("#remember", Checkbox).display


async def test_first_run_setup_writes_the_account(tmp_path: Path) -> None:
    """No account yet: the setup form writes one (no secret) and leads to the sign-in."""
    from client_tui.app import SetupScreen, SignInScreen
    from client_tui.config import Config, load_config

    path = tmp_path / "hygie-client" / "config.toml"
    app = HygieClient(Config(path))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, SetupScreen), "the setup form")
        await pilot.click("#save")  # empty: refused with a reason, not a crash
        error = app.screen.query_one("#setup-error", Static)
        await wait_until(pilot, lambda: "address" in str(error.render()), "the refusal")
        for key, value in (("address", "claire.martin@hygie.test"), ("host", "mail.hygie.test"),
                           ("ca_file", "/etc/hygie/root.pem")):  # fmt: skip
            app.screen.query_one(f"#{key}", Input).value = value
        await pilot.pause(0.5)  # a Button ignores clicks while it shows the last one
        await pilot.click("#save")
        await wait_until(pilot, lambda: isinstance(app.screen, SignInScreen), "the sign-in")
    [account] = load_config(path).accounts.values()
    assert (account.address, account.host, account.imap_port) == (
        "claire.martin@hygie.test", "mail.hygie.test", 2993)  # fmt: skip
    assert path.stat().st_mode & 0o077 == 0


async def test_send_a_document_to_a_patient(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``p``: INS, document type, file → one message to <INS>@patient.<domain> carrying the
    IHE_XDM.zip that the registered builder made; without a builder, a clear notification."""
    from client_tui import compose
    from client_tui.patient_screen import PatientDocumentScreen

    # Whatever another test module registered (client_tui.mssante), this one sets its own.
    monkeypatch.setattr(compose, "_xdm_builder", None)
    monkeypatch.setattr(compose, "_xdm_dresser", None)

    report = tmp_path / "cr.pdf"
    report.write_bytes(b"%PDF-1.4 cr")
    ins = "277076322082910"
    app: HygieClient = demo_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await signed_in(pilot)
        await pilot.press("p")
        await wait_until(pilot, lambda: isinstance(app.screen, PatientDocumentScreen), "form")
        app.screen.query_one("#ins", Input).value = ins
        app.screen.query_one("#files", Input).value = str(report)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: any("dossier/xdm.py" in str(n.message)
                                            for n in app._notifications), "no builder")  # fmt: skip
        assert isinstance(app.screen, PatientDocumentScreen)

        register_xdm_builder(lambda files, i, code, **_: b"PK-" + i.encode() + code.encode())
        try:
            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: isinstance(app.screen, MailScreen), "the send")
        finally:
            register_xdm_builder(None)
        session = app.session
        assert isinstance(session, FakeAccount)
        [message] = session.sent
        assert message["To"] == f"{ins}@patient.hygie.test"
        assert message["Subject"] == "XDM/1.0/DDM+Compte rendu de consultation"
        [xdm] = [p for p in message.walk() if p.get_filename() == "IHE_XDM.zip"]
        assert xdm.get_payload(decode=True) == f"PK-{ins}11488-4".encode()
