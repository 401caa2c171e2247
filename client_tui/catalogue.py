"""The catalogue of health apps for patients (issue 10 item 4): browse and search the
referenced apps, connect one with chosen scopes and an expiry, see the connected apps and each
one's recent access, revoke. Everything goes through the operator's HTTPS JSON API
(``/catalogue/``, a bearer token from the account's ``token_command``); nothing here imports
the server.

:class:`CatalogueApi` is the network half (urllib in a thread); :class:`CatalogueScreen` the
Textual half, opened from the mail screen with ``k``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Checkbox, DataTable, Footer, Input, Label, Static

from client_tui.config import Account

if TYPE_CHECKING:
    from textual.app import App
from client_tui.credentials import CredentialError, run_token_command, tls_context

#: The scopes a patient may consent to, as the server names them, with what they let an app do.
SCOPES: dict[str, str] = {
    "messages": "vous écrire",
    "dossier-read": "lire votre dossier",
    "dossier-write": "déposer des documents dans votre dossier",
    "agenda-write": "proposer des rendez-vous dans votre agenda",
}
DEFAULT_DAYS = 365


class CatalogueError(Exception):
    """The catalogue could not be asked or said no; the message is for the user."""


def api_base(account: Account) -> str:
    """The operator's HTTPS base: the directory URL's (``…/fhir``), else the host on 8443."""
    if account.directory_url.startswith("https://"):
        return account.directory_url.rstrip("/").removesuffix("/fhir")
    return f"https://{account.host}:8443"


class CatalogueApi:
    def __init__(self, base_url: str, token: Callable[[], str], context: ssl.SSLContext) -> None:
        if not base_url.startswith("https://"):
            raise CatalogueError("the catalogue URL must be https://")
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.context = context

    @classmethod
    def for_account(cls, account: Account) -> CatalogueApi:
        if not account.token_command:
            raise CatalogueError("the catalogue needs token sign-in (token_command)")
        try:
            context = tls_context(account.ca_path)
        except CredentialError as exc:
            raise CatalogueError(str(exc)) from exc
        return cls(api_base(account), lambda: run_token_command(account.token_command), context)

    def _call(self, method: str, path: str, body: object = None) -> Any:
        try:
            token = self.token()
        except CredentialError as exc:
            raise CatalogueError(str(exc)) from exc
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 (https only, checked in __init__)
            self.base_url + path, data=data, method=method,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json",
                     **({"Content-Type": "application/json"} if data else {})},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=30) as reply:  # noqa: S310
                return json.loads(reply.read(2_000_000) or b"null")
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read(10_000)).get("error", "")
            except (ValueError, AttributeError):
                message = ""
            raise CatalogueError(message or f"the server answered {exc.code}") from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise CatalogueError(f"catalogue unreachable: {exc}") from exc

    async def call(self, method: str, path: str, body: object = None) -> Any:
        return await asyncio.to_thread(self._call, method, path, body)

    async def apps(self, text: str = "") -> list[dict[str, Any]]:
        query = f"?{urllib.parse.urlencode({'q': text})}" if text.strip() else ""
        found: list[dict[str, Any]] = (await self.call("GET", f"/catalogue/apps{query}"))["apps"]
        return found

    async def connections(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = (await self.call("GET", "/catalogue/connections"))[
            "connections"
        ]
        return found

    async def connect(self, app: int, scopes: list[str], days: int) -> None:
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=days)
        body = {"app": app, "scopes": scopes, "expiresAt": expires.isoformat()}
        await self.call("POST", "/catalogue/connections", body)

    async def revoke(self, app: int) -> None:
        await self.call("DELETE", f"/catalogue/connections/{app}")


class ConnectDialog(ModalScreen[tuple[list[str], int] | None]):
    """Which scopes, for how long: nothing is ticked in advance (explicit consent)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, app: dict[str, Any]) -> None:
        super().__init__()
        self.offer = app

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Connecter « {self.offer['name']} »", classes="dialog-title")
            yield Static("L'application pourra, jusqu'à l'échéance :")
            for scope in self.offer.get("scopes", []):
                if scope in SCOPES:
                    yield Checkbox(SCOPES[scope], id=f"scope-{scope}")
            with Horizontal(classes="field"):
                yield Label("Jours", classes="field-label")
                yield Input(str(DEFAULT_DAYS), id="days", restrict=r"[0-9]*", max_length=4)
            with Horizontal():
                yield Button("Connecter", id="ok", variant="primary")
                yield Button("Annuler", id="cancel")

    @on(Button.Pressed, "#ok")
    def confirm(self) -> None:
        scopes = [s for s in SCOPES if self.query(f"#scope-{s}")
                  and self.query_one(f"#scope-{s}", Checkbox).value]  # fmt: skip
        days = int(self.query_one("#days", Input).value or 0)
        if not scopes or days < 1:
            self.notify("Cochez au moins une autorisation et une durée", severity="warning")
            return
        self.dismiss((scopes, days))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class CatalogueScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "connect", "Connect"),
        Binding("x", "revoke", "Revoke"),
        Binding("g", "refresh", "Refresh"),
        Binding("escape", "app.pop_screen", "Back"),
    ]

    def __init__(self, api: CatalogueApi) -> None:
        super().__init__()
        self.api = api
        self.offers: dict[str, dict[str, Any]] = {}

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("[b]Applications référencées[/b] · catalogue Mon espace santé")
            yield Input(placeholder="Rechercher (nom, éditeur, usage)…", id="search")
            yield DataTable(id="apps", cursor_type="row")
            yield Static("[b]Mes applications connectées[/b]")
            yield DataTable(id="connections", cursor_type="row")
            yield Static("", id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#apps", DataTable).add_columns("Application", "Éditeur", "Usages",
                                                       "Autorisations demandées")  # fmt: skip
        self.query_one("#connections", DataTable).add_columns(
            "Application", "Autorisations", "Échéance", "État", "Dernier accès"
        )
        self.action_refresh()

    @on(Input.Submitted, "#search")
    def search(self) -> None:
        self.action_refresh()

    @work(exclusive=True, group="catalogue")
    async def action_refresh(self) -> None:
        status = self.query_one("#status", Static)
        try:
            apps = await self.api.apps(self.query_one("#search", Input).value)
            connections = await self.api.connections()
        except CatalogueError as exc:
            status.update(f"[b $error]{exc}[/]")
            return
        table = self.query_one("#apps", DataTable)
        table.clear()
        self.offers = {}
        for app in apps:
            key = str(app["id"])
            self.offers[key] = app
            table.add_row(app["name"], app["editor"]["name"], ", ".join(app["categories"]),
                          ", ".join(app["scopes"]), key=key)  # fmt: skip
        mine = self.query_one("#connections", DataTable)
        mine.clear()
        for connection in connections:
            recent = connection["recentAccess"]
            last = (f"{recent[0]['at'][:16].replace('T', ' ')} {recent[0]['scope']} "
                    f"{'refusé' if recent[0]['outcome'] == 'refused' else 'autorisé'}"
                    if recent else "—")  # fmt: skip
            mine.add_row(connection["app"]["name"], ", ".join(connection["scopes"]),
                         connection["expiresAt"][:10], connection["state"], last,
                         key=str(connection["app"]["id"]))  # fmt: skip
        status.update(f"{len(apps)} application(s) référencée(s), {len(connections)} connectée(s)")

    def _selected(self, table_id: str) -> str | None:
        table = self.query_one(table_id, DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return str(key) if key is not None else None

    def action_connect(self) -> None:
        key = self._selected("#apps")
        if key is None or key not in self.offers:
            self.notify("Choisissez une application", severity="warning")
            return
        offer = self.offers[key]

        async def chosen(answer: tuple[list[str], int] | None) -> None:
            if answer is None:
                return
            try:
                await self.api.connect(int(offer["id"]), answer[0], answer[1])
            except CatalogueError as exc:
                self.notify(str(exc), severity="error")
                return
            self.notify(f"« {offer['name']} » connectée")
            self.action_refresh()

        self.app.push_screen(ConnectDialog(offer), chosen)

    async def action_revoke(self) -> None:
        key = self._selected("#connections")
        if key is None:
            self.notify("Choisissez une application connectée", severity="warning")
            return
        try:
            await self.api.revoke(int(key))
        except CatalogueError as exc:
            self.notify(str(exc), severity="error")
            return
        self.notify("Accès révoqué")
        self.action_refresh()


def open_catalogue(app: App[Any]) -> None:
    """The mail screen's ``k``: the catalogue for the signed-in account."""
    session = getattr(app, "session", None)
    if session is None:
        app.notify("Sign in first", severity="warning")
        return
    try:
        api = CatalogueApi.for_account(session.account)
    except CatalogueError as exc:
        app.notify(str(exc), severity="warning")
        return
    app.push_screen(CatalogueScreen(api))
