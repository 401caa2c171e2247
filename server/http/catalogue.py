"""The catalogue over HTTPS for patients (issue 10 item 4), JSON, behind a bearer token
(``Authorization: Bearer <JWT>``, the same issuer as the OAUTHBEARER login):

- ``GET /catalogue/apps[?q=words&category=…]``: the referenced apps (any signed-in mailbox);
- ``GET /catalogue/apps/<id>``: one referenced app;
- ``GET /catalogue/connections``: the patient's connected apps, each with its scopes, expiry,
  state (active, expired, revoked) and recent access (allowed and refused);
- ``POST /catalogue/connections`` ``{"app": <id>, "scopes": [...], "expiresAt": "<RFC 3339>"}``:
  connect an app (or change an existing connection), 201;
- ``DELETE /catalogue/connections/<id>``: revoke at once.

Connecting and revoking are in the audit log (``catalogue.connect``, ``catalogue.revoke``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from catalogue.consent import Consents
from catalogue.manifest import CATEGORIES
from catalogue.registry import CatalogueError
from catalogue.status import REFERENCED
from directory.ins import is_patient_address
from server.auth.authenticator import Authenticator
from server.http.bearer import bearer_account
from server.http.responses import ANY, error, json_response, peer
from storage.accounts import AccountInfo

PREFIX = "/catalogue"
MAX_BODY = 4096
Endpoint = Callable[[Request, AccountInfo], Awaitable[Response]]
Signed = Callable[[Request], Awaitable[Response]]


def _error(status: int, message: str) -> Response:
    return error(status, message)


class CatalogueApi:
    def __init__(self, consents: Consents, auth: Authenticator) -> None:
        self.consents = consents
        self.catalogue = consents.catalogue
        self.auth = auth

    def routes(self) -> list[BaseRoute]:
        """Every route checks the bearer token first: without one, any path is a 401."""

        def signed(endpoint: Endpoint, patient: bool = False) -> Signed:
            async def run(request: Request) -> Response:
                account = await bearer_account(request, self.auth, _error)
                if isinstance(account, Response):
                    return account
                if patient and not is_patient_address(account.address):
                    return _error(403, "only a patient connects apps")
                try:
                    return await endpoint(request, account)
                except CatalogueError as exc:
                    return _error(400, str(exc))

            return run

        p = PREFIX
        return [
            Route(p + "/apps", signed(self._browse), methods=["GET"]),
            Route(p + "/apps/{id}", signed(self._app), methods=["GET"]),
            Route(p + "/connections", signed(self._connections, True), methods=ANY),
            Route(p + "/connections/{rest:path}", signed(self._revoke, True), methods=ANY),
            Route(p + "/{rest:path}", signed(self._nothing), methods=ANY),
        ]

    async def _nothing(self, request: Request, account: AccountInfo) -> Response:
        return _error(404, "no such resource")

    async def _app(self, request: Request, account: AccountInfo) -> Response:
        ident = request.path_params["id"]
        app = await self.catalogue.find(ident) if ident.isdigit() else None
        if app is None or app.status != REFERENCED:
            return _error(404, "no such referenced app")
        return json_response(200, app.public())

    async def _connections(self, request: Request, account: AccountInfo) -> Response:
        if request.method == "GET":
            now = self.consents.clock()
            found = await self.consents.connections(account.id)
            return json_response(200, {"connections": [c.to_json(now) for c in found]})
        if request.method == "POST":
            return await self._connect(account, request)
        return _error(405, "method not allowed")

    async def _revoke(self, request: Request, account: AccountInfo) -> Response:
        ident = request.path_params["rest"]
        if request.method != "DELETE" or not ident.isdigit():
            return _error(405, "method not allowed")
        if await self.catalogue.find(ident) is None:
            return _error(404, "no such app")
        if not await self.consents.revoke(ident, account.id, peer=peer(request)):
            return _error(404, "this app is not connected")
        return json_response(200, {"app": int(ident), "revoked": True})

    async def _browse(self, request: Request, account: AccountInfo) -> Response:
        query = dict(request.query_params)
        text = query.get("q", "")[:200]
        category = query.get("category", "")
        if category and category not in CATEGORIES:
            return _error(400, f"category is one of: {', '.join(CATEGORIES)}")
        apps = await self.catalogue.apps(status=REFERENCED, text=text, category=category)
        return json_response(200, {"apps": [a.public() for a in apps]})

    async def _connect(self, account: AccountInfo, request: Request) -> Response:
        raw = await request.body()
        if len(raw) > MAX_BODY:
            return _error(413, "request body too large")
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return _error(400, "the body must be a JSON object")
        if not isinstance(body, dict):
            return _error(400, "the body must be a JSON object")
        app, scopes, expires = body.get("app"), body.get("scopes"), body.get("expiresAt")
        if not isinstance(app, int) or isinstance(app, bool):
            return _error(400, "app: the app's number")
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            return _error(400, "scopes: a list of scope names")
        if not isinstance(expires, str):
            return _error(400, "expiresAt: an RFC 3339 date-time")
        try:
            when = dt.datetime.fromisoformat(expires.replace("Z", "+00:00"))
        except ValueError:
            return _error(400, "expiresAt: an RFC 3339 date-time")
        if when.tzinfo is None:
            return _error(400, "expiresAt: give a time zone (Z or ±hh:mm)")
        if await self.catalogue.find(app) is None:
            return _error(404, "no such app")
        connected = await self.consents.connect(
            app, account.id, list(dict.fromkeys(scopes)), when, peer=peer(request)
        )
        return json_response(201, connected.to_json(self.consents.clock()))

