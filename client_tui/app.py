"""The Textual application: sign-in (or first-account setup), then the mail screen.

Every network call runs in a Textual worker on the app's event loop (the protocol layer is
asyncio), so the interface never waits; every failure becomes a notification.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime
from email.message import Message
from email.utils import getaddresses
from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Center, Horizontal, Vertical
from textual.screen import Screen
from textual.theme import Theme
from textual.widgets import Button, Checkbox, Footer, Input, Label, Select, Static

from client_tui.backend import Connector, MailAccount, MailReader, Reconnecting, connect
from client_tui.compose import DocumentAuthor, author_from_address
from client_tui.config import Account, Config, ConfigError
from client_tui.credentials import (
    CredentialError,
    keyring_available,
    keyring_secret,
    store_keyring_secret,
    tls_context,
)
from client_tui.directory import Correspondent, DirectoryError, search_directory
from client_tui.imap import ImapError
from client_tui.mail_screen import MailScreen
from client_tui.session import MailSession, find_special
from client_tui.smtp import SubmissionError
from client_tui.viewer import ViewerCopies

# A calm dark theme: slate background, sage-teal primary, soft amber for what needs attention.
HYGIE_THEME = Theme(
    name="hygie",
    primary="#6BAFA6",
    secondary="#8FA8C8",
    accent="#E0B872",
    foreground="#D9DEE3",
    background="#1A2027",
    surface="#212931",
    panel="#2A333D",
    success="#8FBF8A",
    warning="#E0B872",
    error="#E07C7C",
    dark=True,
)

IDLE_RETRY_SECONDS = 15.0

# Errors whose text is written for the user; anything else is shown with its type.
USER_ERRORS = (ImapError, SubmissionError, CredentialError, ConfigError, OSError)


class SignInScreen(Screen[None]):
    """Choose the account, give the password or passphrase, sign in."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.quit", "Quit")]

    def __init__(self, config: Config, account_name: str | None = None) -> None:
        super().__init__()
        self.config = config
        self.account = config.account(account_name)

    def compose(self) -> ComposeResult:
        with Center(), Vertical(id="signin", classes="card"):
            yield Static("Hygie", id="brand")
            yield Static("Secure health messaging", id="tagline")
            if len(self.config.accounts) > 1:
                yield Select(
                    [(f"{a.name} · {a.address}", a.name) for a in self.config.accounts.values()],
                    value=self.account.name, allow_blank=False, id="account",
                )  # fmt: skip
            yield Static(self._describe(), id="account-info")
            yield Input(password=True, id="secret", placeholder="")
            yield Checkbox("Remember in the system keyring", id="remember")
            yield Static("", id="signin-error")
            yield Button("Sign in", variant="primary", id="signin-button")
        yield Footer()

    def _describe(self) -> str:
        a = self.account
        how = {
            "password": "password",
            "certificate": f"certificate {Path(a.pkcs12).name}",
            "token": "token from command",
        }[a.auth]
        return (
            f"[b]{a.address}[/b]\n"
            f"[dim]IMAP {a.host}:{a.imap_port} ({a.imap_security}) · "
            f"SMTP {a.smtp_port} ({a.smtp_security})\nsign-in by {how}[/dim]"
        )

    def on_mount(self) -> None:
        self._show_account()

    def _show_account(self) -> None:
        self.query_one("#account-info", Static).update(self._describe())
        secret = self.query_one("#secret", Input)
        secret.display = self.account.needs_secret
        secret.placeholder = (
            "PKCS#12 passphrase" if self.account.auth == "certificate" else "Password"
        )
        secret.value = keyring_secret(self.account.address) or ""
        remember = self.query_one("#remember", Checkbox)
        remember.display = self.account.needs_secret and keyring_available()
        remember.value = bool(secret.value)
        (secret if secret.display else self.query_one("#signin-button")).focus()

    @on(Select.Changed, "#account")
    def account_changed(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            self.account = self.config.accounts[event.value]
            self._show_account()

    @on(Input.Submitted, "#secret")
    @on(Button.Pressed, "#signin-button")
    def submit(self) -> None:
        secret = self.query_one("#secret", Input).value
        if self.account.needs_secret and not secret:
            self.query_one("#signin-error", Static).update("Enter your password or passphrase.")
            return
        self.query_one("#signin-button", Button).disabled = True
        self.query_one("#signin-error", Static).update("[dim]Signing in…[/dim]")
        self.sign_in(secret)

    @work(exclusive=True, group="signin")
    async def sign_in(self, secret: str) -> None:
        app = self.app
        assert isinstance(app, HygieClient)
        try:
            remember = self.query_one("#remember", Checkbox)
            await app.sign_in(self.account, secret,
                              remember=remember.display and remember.value)  # fmt: skip
        except Exception as exc:
            message = app.describe(exc)
            self.query_one("#signin-error", Static).update(f"[b $error]{message}[/]")
            self.query_one("#signin-button", Button).disabled = False
            self.query_one("#secret", Input).focus()


class SetupScreen(Screen[None]):
    """The first account, when the configuration has none. No secret is written."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.quit", "Quit")]

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config

    def compose(self) -> ComposeResult:
        with Center(), Vertical(id="setup", classes="card"):
            yield Static("Hygie — add your account", id="brand")
            for key, label, value in (
                ("address", "Address", ""),
                ("host", "Server", ""),
                ("imap_port", "IMAP port (TLS)", "2993"),
                ("smtp_port", "SMTP port (TLS)", "2465"),
                ("ca_file", "CA certificate", ""),
            ):
                with Horizontal(classes="field"):
                    yield Label(label, classes="field-label")
                    yield Input(value, id=key)
            with Horizontal(classes="field"):
                yield Label("Sign in by", classes="field-label")
                yield Select(
                    [("password", "password"), ("certificate (PKCS#12)", "certificate"),
                     ("token command", "token")],
                    value="password", allow_blank=False, id="auth",
                )  # fmt: skip
            with Horizontal(classes="field"):
                yield Label("PKCS#12 / command", classes="field-label")
                yield Input(id="credential", placeholder="~/cert.p12 or a token command")
            yield Static("", id="setup-error")
            yield Button("Save", variant="primary", id="save")
        yield Footer()

    @on(Button.Pressed, "#save")
    def save(self) -> None:
        def value(key: str) -> str:
            return self.query_one(f"#{key}", Input).value.strip()

        auth = str(self.query_one("#auth", Select).value)
        try:
            account = Account(
                name=value("address").split("@")[0].replace(".", "-") or "account",
                address=value("address"),
                host=value("host"),
                imap_port=int(value("imap_port") or 2993),
                smtp_port=int(value("smtp_port") or 2465),
                ca_file=value("ca_file"),
                auth=auth,
                pkcs12=value("credential") if auth == "certificate" else "",
                token_command=value("credential") if auth == "token" else "",
            )
            account.check()
            self.config.accounts[account.name] = account
            self.config.default = account.name
            self.config.save()
        except (ValueError, ConfigError, OSError) as exc:
            self.query_one("#setup-error", Static).update(f"[b $error]{exc}[/]")
            return
        self.app.switch_screen(SignInScreen(self.config))


class HygieClient(App[None]):
    CSS_PATH = "hygie.tcss"
    TITLE = "Hygie"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+q", "quit", "Quit", show=False)]

    def __init__(
        self,
        config: Config,
        account_name: str | None = None,
        connector: Connector = connect,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__()
        # The agenda's "today" (tests and screenshots fix it).
        self.now: Callable[[], datetime] = now or (lambda: datetime.now().astimezone())
        self.config = config
        self.account_name = account_name
        self.connector = connector
        self.session: MailAccount | None = None
        self._reader: MailReader | None = None
        self._idle: MailReader | None = None
        self._idle_folder = "INBOX"
        self._known: dict[str, Correspondent] = {}
        #: Attachments opened in the system viewer: private copies, removed on quitting.
        self.viewer_copies = ViewerCopies()

    def on_mount(self) -> None:
        self.register_theme(HYGIE_THEME)
        self.theme = "hygie"
        if not self.config.accounts:
            self.push_screen(SetupScreen(self.config))
        else:
            try:
                self.push_screen(SignInScreen(self.config, self.account_name))
            except ConfigError as exc:
                self.exit(message=str(exc))

    def on_unmount(self) -> None:
        self.viewer_copies.remove_all()

    # -- the session -----------------------------------------------------------------------------

    @property
    def reader(self) -> MailReader:
        if self._reader is None:
            raise ImapError("not signed in")
        return self._reader

    @property
    def account_address(self) -> str:
        return self.session.account.address if self.session else ""

    async def sign_in(self, account: Account, secret: str, *, remember: bool = False) -> None:
        self.session, reader = await self.connector(account, secret)
        self._reader = Reconnecting(self.session, reader)
        if remember and secret and not store_keyring_secret(account.address, secret):
            self.notify("The system keyring refused the secret; it will be asked again",
                        severity="warning")  # fmt: skip
        self.sub_title = account.address
        # Not awaited: this runs in a worker of the sign-in screen that the switch removes.
        self.switch_screen(MailScreen())

    async def sign_out(self) -> None:
        self.session = None  # ends the IDLE worker's reconnect loop
        for reader in (self._idle, self._reader):
            if reader is not None:
                reader.stop_idle()
                # Leaving anyway: on failure the server drops the session itself.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(reader.logout(), 3)
        self._idle = self._reader = None

    async def send(self, message: Message, *, notify_success: bool = False,
                   keep_copy: bool = True) -> None:  # fmt: skip
        """Submit, then keep a copy in Sent (a failure there is a warning: it was sent)."""
        if self.session is None:
            raise ImapError("not signed in")
        await self.session.send(message, notify_success=notify_success)
        if not keep_copy:
            return
        try:
            folders = await self.reader.folders()
            await self.reader.append(find_special(folders, "\\Sent", "Sent"), message.as_bytes())
        except Exception as exc:
            self.notify(f"Sent, but no copy kept in Sent: {self.describe(exc)}",
                        severity="warning")  # fmt: skip

    async def save_draft(self, message: Message, replaces: int | None) -> int | None:
        """Keep ``message`` in Drafts (``\\Draft \\Seen``), then remove the version it
        replaces; the new version's UID when the server says it (UIDPLUS), else None."""
        folders = await self.reader.folders()
        drafts = find_special(folders, "\\Drafts", "Drafts")
        uid = await self.reader.append(drafts, message.as_bytes(), "\\Draft \\Seen")
        if replaces is not None:
            await self.discard_draft(replaces)
        return uid

    async def discard_draft(self, uid: int) -> None:
        """Remove a draft once sent or replaced (a failure leaves an extra draft, never a
        lost one). The folder on screen is selected again afterwards."""
        folders = await self.reader.folders()
        drafts = find_special(folders, "\\Drafts", "Drafts")
        selected = self.reader.selected
        if selected is None or selected.name != drafts:
            await self.reader.select(drafts)
        try:
            await self.reader.delete_permanently([uid])
        finally:
            if selected is not None and selected.name != drafts:
                await self.reader.select(selected.name)

    async def document_author(self) -> DocumentAuthor:
        """Who signs a PDF wrapped in CDA: the certificate's practitioner, else the
        directory's entry for this mailbox, else the names in the address."""
        if self.session is None:
            raise ImapError("not signed in")
        if isinstance(self.session, MailSession):
            return await self.session.author()
        return author_from_address(self.account_address)

    # -- recipients ------------------------------------------------------------------------------

    def remember_correspondents(self, people: list[str]) -> None:
        for name, address in getaddresses(people):
            if address and address.lower() != self.account_address.lower():
                self._known[address.lower()] = Correspondent(name, address)

    async def find_correspondents(self, text: str) -> list[Correspondent]:
        """People whose name or address starts with ``text``: those already seen in the
        mailbox first, then the directory (when configured; its failures stay quiet, as a
        completion must never get in the way of typing)."""
        needle = text.lower()
        found = [c for c in self._known.values()
                 if c.address.lower().startswith(needle)
                 or any(w.lower().startswith(needle) for w in c.name.split())]  # fmt: skip
        account = self.session.account if self.session else None
        if account is not None and account.directory_url:
            try:
                context = tls_context(account.ca_path)
                found += await search_directory(account.directory_url, text, context)
            except (DirectoryError, CredentialError):
                pass
        unique: dict[str, Correspondent] = {}
        for correspondent in found:
            unique.setdefault(correspondent.address.lower(), correspondent)
        return list(unique.values())

    # -- new mail (IDLE on a second connection) --------------------------------------------------

    def start_idle(self, folder: str = "INBOX") -> None:
        self._idle_folder = folder
        self.watch_folder()

    def idle_on(self, folder: str) -> None:
        """Watch ``folder`` (the one on screen) instead: the IDLE in progress ends (DONE) and
        the worker selects the new folder on the same connection."""
        if folder == self._idle_folder:
            return
        self._idle_folder = folder
        if self._idle is not None:
            self._idle.stop_idle()

    @work(exclusive=True, group="idle")
    async def watch_folder(self) -> None:
        """RFC 2177 IDLE on the folder on screen over its own connection, so reading never
        waits on it; reconnects after a pause when the connection drops."""
        while self.session is not None:
            try:
                if self._idle is None:
                    self._idle = await self.session.imap()
                folder = self._idle_folder
                await self._idle.select(folder)
                while self.session is not None and folder == self._idle_folder:
                    async for tokens in self._idle.idle():
                        if len(tokens) >= 2 and tokens[1] in ("EXISTS", "EXPUNGE"):
                            self._new_mail(folder)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._idle = None
                if self.session is None:
                    return
                self.notify(f"New-mail watch paused: {self.describe(exc)}", severity="warning",
                            timeout=5)  # fmt: skip
                await asyncio.sleep(IDLE_RETRY_SECONDS)

    def _new_mail(self, folder: str) -> None:
        for screen in self.screen_stack:
            if isinstance(screen, MailScreen):
                screen.new_mail(folder)

    # -- errors ----------------------------------------------------------------------------------

    def describe(self, exc: BaseException) -> str:
        if isinstance(exc, USER_ERRORS) and str(exc):
            return str(exc)
        if isinstance(exc, TimeoutError):
            return "the server did not answer in time"
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

    def report(self, exc: BaseException) -> None:
        self.notify(self.describe(exc), title="Error", severity="error", timeout=8)
