"""The dossier over HTTPS (issue 7 item 4): a JSON read API for patients and professionals.

Authentication is a bearer token (``Authorization: Bearer <JWT>``, the same issuer as the
OAUTHBEARER login); it names a mailbox. Routes:

- ``GET /dossier/documents``: the patient's own documents (replaced versions left out);
- ``GET /dossier/patients/<INS>/documents``: what a professional may read of a patient's
  dossier: the declared médecin traitant sees every document not masked from professionals
  (MASQUE_PS) nor hidden by the patient; the author of a document sees it; a professional the
  patient blocked sees nothing (403);
- ``GET …/documents/<id>/cda``: one document's CDA (same rules);
- ``POST /dossier/documents/<id>/hide`` and ``…/show``: the patient hides a document from
  professionals, or shows it again;
- ``POST /dossier/blocks/<IdNat>`` and ``DELETE …``: the patient blocks a professional.

Every read and every change is written to the audit log (who, what, when); URLs carry an INS,
so access logs of this route never record paths.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import structlog

from dossier import loinc
from dossier.cda import parse_cda
from dossier.xdm import MASQUE_PS
from server.auth.authenticator import Authenticator
from server.delivery.patients import is_patient_address
from server.http.bearer import bearer_account
from server.http.server import Handler, Request, Response
from storage import audit
from storage.accounts import IDNAT, AccountInfo, identities_of
from storage.db import Database
from storage.dossier import DossierIndex, FiledDocument
from storage.mailstore import MailStore

if TYPE_CHECKING:
    from server.workflows.consent import AppGate

log = structlog.get_logger("hygie.http.dossier")
PREFIX = "/dossier"
JSON = "application/json; charset=utf-8"
_INS = re.compile(r"^[0-9]{5}(?:[0-9]{2}|2[AB])[0-9]{8}$", re.I)


def _json(status: int, document: Any) -> Response:
    return Response(status, JSON, json.dumps(document, ensure_ascii=False).encode())


def _error(status: int, message: str) -> Response:
    return _json(status, {"error": message})


class DossierApi:
    apps: AppGate | None = None  # apps read with the patient's dossier-read consent (issue 10)

    def __init__(
        self, db: Database, store: MailStore, index: DossierIndex, auth: Authenticator
    ) -> None:
        self.db = db
        self.store = store
        self.index = index
        self.auth = auth

    async def handle(self, request: Request) -> Response:
        account = await bearer_account(request, self.auth, _error)
        if isinstance(account, Response):
            return account
        parts = [p for p in request.path[len(PREFIX) :].split("/") if p]
        method = request.method
        try:
            if parts == ["documents"] and method == "GET":
                return await self._own(account)
            if len(parts) == 3 and parts[0] == "documents" and method == "POST":
                if parts[2] in ("hide", "show"):
                    return await self._hide(account, parts[1], parts[2] == "hide")
            if len(parts) == 2 and parts[0] == "blocks" and method in ("POST", "DELETE"):
                return await self._block(account, parts[1], method == "POST")
            if len(parts) >= 3 and parts[0] == "patients" and parts[2] == "documents":
                if method != "GET":
                    return _error(405, "read-only")
                if self.apps is not None and _INS.match(parts[1]):
                    answer = await self.apps.read_dossier(
                        self, account, parts[1], parts[3:], request.peer
                    )
                    if answer is not None:
                        return answer
                return await self._professional(account, parts[1], parts[3:])
            if len(parts) == 3 and parts[0] == "documents" and parts[2] == "cda":
                return await self._own_cda(account, parts[1])
        except ValueError:
            return _error(400, "bad document id")
        return _error(404, "no such resource")

    # -- the patient --------------------------------------------------------------------------

    async def _own(self, account: AccountInfo) -> Response:
        if not is_patient_address(account.address):
            return _error(403, "only a patient has a dossier")
        documents = [d for d in await self.index.documents(account.id) if d.replaced_by is None]
        await audit.record(
            self.db, f"account:{account.id}", "dossier.list", f"account:{account.id}"
        )
        return _json(200, {"documents": [await self._describe(d) for d in documents]})

    async def _own_cda(self, account: AccountInfo, document: str) -> Response:
        filed = await self._find(account.id, int(document))
        if filed is None or not is_patient_address(account.address):
            return _error(404, "no such document")
        await audit.record(self.db, f"account:{account.id}", "dossier.read", f"document:{filed.id}")
        return Response(200, "application/xml", await self.index.cda(filed.id))

    async def _hide(self, account: AccountInfo, document: str, hidden: bool) -> Response:
        if not is_patient_address(account.address):
            return _error(403, "only the patient decides")
        if not await self.index.set_hidden(account.id, int(document), hidden):
            return _error(404, "no such document")
        action = "dossier.hide" if hidden else "dossier.show"
        await audit.record(self.db, f"account:{account.id}", action, f"document:{document}")
        return _json(200, {"id": int(document), "hiddenFromProfessionals": hidden})

    async def _block(self, account: AccountInfo, idnat: str, blocked: bool) -> Response:
        if not is_patient_address(account.address):
            return _error(403, "only the patient decides")
        if not re.fullmatch(r"[0-9]{9,20}", idnat):
            return _error(400, "not an IdNat")
        await self.index.set_blocked(account.id, idnat, blocked)
        action = "dossier.block" if blocked else "dossier.unblock"
        await audit.record(self.db, f"account:{account.id}", action, f"idnat:{idnat}")
        return _json(200, {"idnat": idnat, "blocked": blocked})

    # -- a professional -------------------------------------------------------------------------

    async def _professional(self, account: AccountInfo, ins: str, rest: list[str]) -> Response:
        if is_patient_address(account.address):
            return _error(403, "a patient reads their own dossier at /dossier/documents")
        if not _INS.match(ins):
            return _error(400, "not an INS")
        idnats = {v for k, v in await identities_of(self.db, account.id) if k == IDNAT}
        if not idnats:
            return _error(403, "this mailbox is bound to no practitioner (IdNat)")
        patient_domain = account.address.rsplit("@", 1)[1]
        patient = await self.store.resolve(f"{ins.lower()}@patient.{patient_domain}")
        if patient is None:
            return _error(404, "no such patient")
        if idnats & await self.index.blocked(patient.account_id):
            await audit.record(self.db, f"account:{account.id}", "dossier.denied",
                               f"account:{patient.account_id}")  # fmt: skip
            return _error(403, "the patient has blocked you")
        rows = await self.db.raw_rows(
            "SELECT medecin_traitant_idnat FROM dir_patients WHERE ins = ?", ins.upper()
        )
        traitant = bool(rows) and rows[0][0] in idnats
        visible = []
        for filed in await self.index.documents(patient.account_id):
            if filed.replaced_by is not None or MASQUE_PS in filed.restrictions or filed.hidden:
                continue
            header = parse_cda(await self.index.cda(filed.id))
            authored = any(a.idnat in idnats for a in header.authors)
            if traitant or authored:
                visible.append(filed)
        if rest == []:
            await audit.record(
                self.db, f"account:{account.id}", "dossier.list",
                f"account:{patient.account_id}", detail={"documents": len(visible)},
            )  # fmt: skip
            return _json(200, {"documents": [await self._describe(d) for d in visible]})
        if len(rest) == 2 and rest[1] == "cda":
            wanted = int(rest[0])
            for filed in visible:
                if filed.id == wanted:
                    await audit.record(self.db, f"account:{account.id}", "dossier.read",
                                       f"document:{filed.id}")  # fmt: skip
                    return Response(200, "application/xml", await self.index.cda(filed.id))
            return _error(404, "no such document, or not yours to read")
        return _error(404, "no such resource")

    # -- helpers ----------------------------------------------------------------------------

    async def _find(self, account_id: int, document_id: int) -> FiledDocument | None:
        for filed in await self.index.documents_by_id([document_id]):
            if filed.account_id == account_id:
                return filed
        return None

    async def _describe(self, filed: FiledDocument) -> dict[str, Any]:
        header = parse_cda(await self.index.cda(filed.id))
        kind = loinc.document_type(header.code.code)
        author = header.authors[0] if header.authors else None
        return {
            "id": filed.id,
            "uniqueId": filed.unique_id,
            "type": {"code": header.code.code,
                     "label": kind.label if kind else header.code.display_name},
            "title": header.title,
            "date": header.effective_time.isoformat(),
            "version": filed.version,
            "author": {"idnat": author.idnat, "name": " ".join(
                p for p in (author.prefix, author.given, author.family) if p)} if author else None,
            "restrictions": sorted(filed.restrictions),
            "hiddenFromProfessionals": filed.hidden,
        }  # fmt: skip


def dossier_route(api: DossierApi) -> Handler:
    return api.handle
