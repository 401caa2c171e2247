"""The patient's dossier and its access history in the browser (issue 22 item 2), after the
two-factor sign-in:

- ``/espace/documents``: the documents the patient may see (`dossier.visibility.patient_view`),
  newest first, or grouped by type (LOINC label) with ``?par=type``; each can be hidden from
  professionals and shown again (a form with its CSRF token: the same rule as
  ``POST /dossier/documents/<id>/hide``; the médecin traitant still sees every document,
  design.md §6);
- ``/espace/documents/<id>``: one document as a page: its header and, for a structured body,
  its sections as plain text (`dossier.cda.read_sections`: no markup of the sender's is kept,
  the template escapes every value); a PDF body is linked, to be shown inline or downloaded
  (``/espace/documents/<id>/pdf``, ``?telecharger=1``);
- ``/espace/historique``: who listed, read, hid or showed what in the dossier, and when, from
  the audit log (`storage.audit.about`), and when each document was added.

Every read here is written to the audit log as the JSON API's are.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from directory.ins import is_patient_address
from dossier import loinc
from dossier.cda import parse_cda, read_sections
from dossier.errors import CdaError
from dossier.visibility import patient_view, visible_to_patient
from server.http.espace.pages import EspacePages
from server.http.espace.site import Page
from server.http.responses import peer, row_id
from storage import audit
from storage.accounts import AccountInfo
from storage.db import Database
from storage.dossier import DossierIndex, FiledDocument

#: The audit actions a patient is shown, with their message ids.
ACTIONS = {
    "dossier.list": "act_list", "dossier.read": "act_read", "dossier.hide": "act_hide",
    "dossier.show": "act_show", "dossier.denied": "act_denied", "dossier.block": "act_block",
    "dossier.unblock": "act_unblock",
}  # fmt: skip


@dataclass(frozen=True)
class Shown:
    """One document as the pages show it."""

    id: int
    title: str
    kind: str
    date: dt.datetime
    author: str
    hidden: bool
    pdf: bool


class DossierPages:
    def __init__(self, pages: EspacePages, db: Database, index: DossierIndex) -> None:
        self.pages = pages
        self.site = pages.site
        self.db = db
        self.index = index

    def routes(self) -> list[BaseRoute]:
        page = self.pages.page
        return [
            Route("/documents", page(self._list), methods=["GET"]),
            Route("/documents/{id}", page(self._one), methods=["GET"]),
            Route("/documents/{id}/pdf", page(self._pdf), methods=["GET"]),
            Route("/documents/{id}/masquer", page(self._hide), methods=["POST"]),
            Route("/documents/{id}/afficher", page(self._hide), methods=["POST"]),
            Route("/historique", page(self._history), methods=["GET"]),
        ]

    async def _patient(self, request: Request, page: Page) -> AccountInfo | None:
        account = await self.pages.signed_in(request, page)
        if account is None or not is_patient_address(account.address):
            return None
        return account

    async def _shown(self, filed: FiledDocument) -> Shown:
        cda = await self.index.cda(filed.id)
        header = parse_cda(cda)
        kind = loinc.document_type(header.code.code)
        author = header.authors[0] if header.authors else None
        name = " ".join(p for p in (author.prefix, author.given, author.family) if p) \
            if author else ""  # fmt: skip
        if author and author.organisation:
            name = f"{name}, {author.organisation}" if name else author.organisation
        label = kind.label if kind else (header.code.display_name or header.code.code)
        return Shown(filed.id, header.title, label, header.effective_time, name, filed.hidden,
                     header.body.kind == "nonXML" and header.body.media_type == "application/pdf")

    async def _own(self, account: AccountInfo, ident: str) -> FiledDocument | None:
        number = row_id(ident)
        if number is None:
            return None
        for filed in await self.index.documents_by_id([number]):
            if filed.account_id == account.id and visible_to_patient(filed.restrictions):
                return filed
        return None

    # -- pages ------------------------------------------------------------------------------

    async def _list(self, request: Request, page: Page, form: dict[str, str]) -> Response:
        account = await self._patient(request, page)
        if account is None:
            return self.pages.expired(page)
        page.section = "/documents"
        documents = sorted([await self._shown(d) for d in
                            patient_view(await self.index.documents(account.id))],
                           key=lambda d: d.date, reverse=True)  # fmt: skip
        by_type = request.query_params.get("par") == "type"
        groups: list[tuple[str, list[Shown]]] = []
        if by_type:
            for shown in sorted(documents, key=lambda d: d.kind):
                if not groups or groups[-1][0] != shown.kind:
                    groups.append((shown.kind, []))
                groups[-1][1].append(shown)
        else:
            groups = [("", documents)]
        await audit.record(self.db, f"account:{account.id}", "dossier.list",
                           f"account:{account.id}", peer=peer(request),
                           detail={"documents": len(documents)})  # fmt: skip
        changed = request.query_params.get("fait", "")
        ok = page.t.get(f"doc_{changed}", "") if changed in ("masque", "affiche") else ""
        return self.site.render(page, "documents.html", page.t["nav_documents"], groups=groups,
                                by_type=by_type, count=len(documents), ok_text=ok, wide=True)

    async def _one(self, request: Request, page: Page, form: dict[str, str]) -> Response:
        account = await self._patient(request, page)
        if account is None:
            return self.pages.expired(page)
        page.section = "/documents"
        filed = await self._own(account, request.path_params["id"])
        if filed is None:
            return self.site.notice(page, page.t["error"], page.t["doc_missing"], 404, error=True)
        shown = await self._shown(filed)
        try:
            sections = read_sections(await self.index.cda(filed.id))
        except CdaError:
            sections = ()
        await audit.record(self.db, f"account:{account.id}", "dossier.read",
                           f"document:{filed.id}", peer=peer(request))  # fmt: skip
        return self.site.render(page, "document.html", shown.title, doc=shown,
                                sections=sections, wide=True)  # fmt: skip

    async def _pdf(self, request: Request, page: Page, form: dict[str, str]) -> Response:
        account = await self._patient(request, page)
        if account is None:
            return self.pages.expired(page)
        filed = await self._own(account, request.path_params["id"])
        body = parse_cda(await self.index.cda(filed.id)).body if filed is not None else None
        if filed is None or body is None or body.media_type != "application/pdf" \
                or not body.content:  # fmt: skip
            return self.site.notice(page, page.t["error"], page.t["doc_missing"], 404, error=True)
        await audit.record(self.db, f"account:{account.id}", "dossier.read",
                           f"document:{filed.id}", peer=peer(request))  # fmt: skip
        how = "attachment" if request.query_params.get("telecharger") == "1" else "inline"
        return Response(body.content, 200, media_type="application/pdf", headers={
            "Content-Disposition": f'{how}; filename="document-{filed.id}.pdf"',
            "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
        })  # fmt: skip

    async def _hide(self, request: Request, page: Page, form: dict[str, str]) -> Response:
        account = await self._patient(request, page)
        if account is None:
            return self.pages.expired(page)
        filed = await self._own(account, request.path_params["id"])
        hidden = request.url.path.endswith("/masquer")
        if filed is None or not await self.index.set_hidden(account.id, filed.id, hidden):
            return self.site.notice(page, page.t["error"], page.t["doc_missing"], 404, error=True)
        await audit.record(self.db, f"account:{account.id}",
                           "dossier.hide" if hidden else "dossier.show", f"document:{filed.id}",
                           peer=peer(request))  # fmt: skip
        done = "masque" if hidden else "affiche"
        return self.site.redirect(page.href("/documents", fait=done))

    async def _history(self, request: Request, page: Page, form: dict[str, str]) -> Response:
        account = await self._patient(request, page)
        if account is None:
            return self.pages.expired(page)
        page.section = "/historique"
        filed = await self.index.documents(account.id)
        visible = {d.id for d in filed if visible_to_patient(d.restrictions)}
        titles = {d.id: (await self._shown(d)).title for d in filed if d.id in visible}
        targets = [f"account:{account.id}", *(f"document:{i}" for i in sorted(visible))]
        records = await audit.about(self.db, targets, action_prefix="dossier.")
        ids = {int(r.actor.split(":", 1)[1]) for r in records
               if r.actor.startswith("account:") and r.actor[8:].isdigit()}  # fmt: skip
        names = await audit.addresses(self.db, ids)
        rows: list[dict[str, Any]] = []
        for record in records:
            if record.action not in ACTIONS:
                continue
            who = record.actor
            if who == f"account:{account.id}":
                who = page.t["you"]
            elif who.startswith("account:") and who[8:].isdigit():
                who = names.get(int(who[8:]), page.t["closed_account"])
            what = page.t["your_dossier"]
            if record.target.startswith("document:") and record.target[9:].isdigit():
                what = titles.get(int(record.target[9:]), page.t["a_document"])
            rows.append({"at": record.at, "who": who, "action": page.t[ACTIONS[record.action]],
                         "what": what})  # fmt: skip
        for document in filed:
            if document.id in visible:
                rows.append({"at": document.filed_at, "who": "", "what": titles[document.id],
                             "action": page.t["act_filed"]})  # fmt: skip
        rows.sort(key=lambda r: _aware(r["at"]), reverse=True)
        return self.site.render(page, "historique.html", page.t["nav_history"], rows=rows,
                                wide=True)  # fmt: skip


def _aware(when: dt.datetime) -> dt.datetime:
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
