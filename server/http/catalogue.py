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
from typing import Any

from catalogue.consent import Consents
from catalogue.manifest import CATEGORIES
from catalogue.registry import CatalogueError
from catalogue.status import REFERENCED
from server.auth.authenticator import Authenticator
from server.delivery.patients import is_patient_address
from server.http.bearer import bearer_account
from server.http.server import Handler, Request, Response
from storage.accounts import AccountInfo

PREFIX = "/catalogue"
JSON = "application/json; charset=utf-8"
MAX_BODY = 4096


def _json(status: int, document: Any) -> Response:
    return Response(status, JSON, json.dumps(document, ensure_ascii=False).encode())


def _error(status: int, message: str) -> Response:
    return _json(status, {"error": message})


class CatalogueApi:
    def __init__(self, consents: Consents, auth: Authenticator) -> None:
        self.consents = consents
        self.catalogue = consents.catalogue
        self.auth = auth

    async def handle(self, request: Request) -> Response:
        account = await bearer_account(request, self.auth, _error)
        if isinstance(account, Response):
            return account
        parts = [p for p in request.path[len(PREFIX) :].split("/") if p]
        method = request.method
        try:
            if parts == ["apps"] and method == "GET":
                return await self._browse(request)
            if len(parts) == 2 and parts[0] == "apps" and method == "GET":
                app = await self.catalogue.find(parts[1]) if parts[1].isdigit() else None
                if app is None or app.status != REFERENCED:
                    return _error(404, "no such referenced app")
                return _json(200, app.public())
            if parts and parts[0] == "connections":
                if not is_patient_address(account.address):
                    return _error(403, "only a patient connects apps")
                if len(parts) == 1 and method == "GET":
                    now = self.consents.clock()
                    found = await self.consents.connections(account.id)
                    return _json(200, {"connections": [c.to_json(now) for c in found]})
                if len(parts) == 1 and method == "POST":
                    return await self._connect(account, request)
                if len(parts) == 2 and method == "DELETE" and parts[1].isdigit():
                    if await self.catalogue.find(parts[1]) is None:
                        return _error(404, "no such app")
                    if not await self.consents.revoke(parts[1], account.id, peer=request.peer):
                        return _error(404, "this app is not connected")
                    return _json(200, {"app": int(parts[1]), "revoked": True})
                return _error(405, "method not allowed")
        except CatalogueError as exc:
            return _error(400, str(exc))
        return _error(404, "no such resource")

    async def _browse(self, request: Request) -> Response:
        query = dict(request.query)
        text = query.get("q", "")[:200]
        category = query.get("category", "")
        if category and category not in CATEGORIES:
            return _error(400, f"category is one of: {', '.join(CATEGORIES)}")
        apps = await self.catalogue.apps(status=REFERENCED, text=text, category=category)
        return _json(200, {"apps": [a.public() for a in apps]})

    async def _connect(self, account: AccountInfo, request: Request) -> Response:
        if len(request.body) > MAX_BODY:
            return _error(413, "request body too large")
        try:
            body = json.loads(request.body.decode("utf-8"))
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
            app, account.id, list(dict.fromkeys(scopes)), when, peer=request.peer
        )
        return _json(201, connected.to_json(self.consents.clock()))


def catalogue_route(api: CatalogueApi) -> Handler:
    return api.handle
