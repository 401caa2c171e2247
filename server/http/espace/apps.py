"""The catalogue and the patient's consents in the browser (issue 22 item 2, *Catalogue*), after
the two-factor sign-in:

- ``/espace/applications``: the referenced apps (search by words and category), each with
  what it asks for; the patient's connections, each with its scopes, expiry and state, and
  what the app did under it (its recent accesses, allowed and refused);
- ``POST /espace/applications/connecter``: connect an app with the scopes ticked (a field
  ``scope_<name>`` each) for 3, 6 or 12 months (`catalogue.consent.Consents.connect`: the
  same checks as ``POST /catalogue/connections``);
- ``POST /espace/applications/<id>/revoquer``: revoke at once.

Connecting and revoking are in the audit log (``catalogue.connect``, ``catalogue.revoke``).
"""

from __future__ import annotations

import datetime as dt

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from catalogue.consent import Consents
from catalogue.manifest import CATEGORIES
from catalogue.registry import CatalogueError
from catalogue.scopes import LABELS, SCOPES
from catalogue.status import REFERENCED
from directory.ins import is_patient_address
from server.http.espace.pages import EspacePages
from server.http.espace.site import Page
from server.http.responses import peer, row_id

MONTHS = (3, 6, 12)


class AppPages:
    def __init__(self, pages: EspacePages, consents: Consents) -> None:
        self.pages = pages
        self.site = pages.site
        self.consents = consents

    def routes(self) -> list[BaseRoute]:
        page = self.pages.page
        return [
            Route("/applications", page(self._list), methods=["GET"]),
            Route("/applications/connecter", page(self._connect), methods=["POST"]),
            Route("/applications/{id}/revoquer", page(self._revoke), methods=["POST"]),
        ]

    async def _list(self, request: Request, page: Page, form: dict[str, str],
                    error_text: str = "", status: int = 200) -> Response:  # fmt: skip
        account = await self.pages.signed_in(request, page)
        if account is None or not is_patient_address(account.address):
            return self.pages.expired(page)
        page.section = "/applications"
        words = request.query_params.get("q", "")[:200]
        category = request.query_params.get("categorie", "")
        category = category if category in CATEGORIES else ""
        apps = await self.consents.catalogue.apps(status=REFERENCED, text=words,
                                                  category=category)  # fmt: skip
        now = self.consents.clock()
        connections = [(c, c.state(now)) for c in await self.consents.connections(account.id)]
        done = request.query_params.get("fait", "")
        ok = page.t.get(f"cat_{done}", "") if done in ("connectee", "revoquee") else ""
        return self.site.render(
            page, "applications.html", page.t["nav_apps"], status, apps=apps,
            connections=connections, labels=LABELS, months=MONTHS, words=words,
            category=category, categories=CATEGORIES, ok_text=ok, error_text=error_text,
            wide=True,
        )  # fmt: skip

    async def _connect(self, request: Request, page: Page, form: dict[str, str]) -> Response:
        account = await self.pages.signed_in(request, page)
        if account is None or not is_patient_address(account.address):
            return self.pages.expired(page)
        app = row_id(form.get("app", ""))
        months = row_id(form.get("mois", ""))
        scopes = [s for s in SCOPES if form.get(f"scope_{s}") == "on"]
        if app is None or months not in MONTHS:
            return await self._list(request, page, form, page.t["cat_bad_form"], 400)
        expires = self.consents.clock() + dt.timedelta(days=30 * (months or 0))
        try:
            await self.consents.connect(app, account.id, scopes, expires, peer=peer(request))
        except CatalogueError as exc:
            return await self._list(request, page, form,
                                    page.t["cat_refused"].format(reason=str(exc)), 400)
        return self.site.redirect(page.href("/applications", fait="connectee"))

    async def _revoke(self, request: Request, page: Page, form: dict[str, str]) -> Response:
        account = await self.pages.signed_in(request, page)
        if account is None or not is_patient_address(account.address):
            return self.pages.expired(page)
        app = row_id(request.path_params["id"])
        try:
            done = app is not None and await self.consents.revoke(app, account.id,
                                                                  peer=peer(request))
        except CatalogueError:
            done = False
        if not done:
            return await self._list(request, page, form, page.t["cat_not_connected"], 404)
        return self.site.redirect(page.href("/applications", fait="revoquee"))
