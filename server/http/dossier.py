"""The dossier over HTTPS (issue 7 item 4): a JSON read API for patients and professionals.

Authentication is a bearer token (``Authorization: Bearer <JWT>``, the same issuer as the
OAUTHBEARER login); it names a mailbox. Routes:

- ``GET /dossier/documents``: the patient's own documents (replaced versions and documents
  the patient may not see, INVISIBLE_PATIENT, left out: `dossier.visibility.patient_view`);
- ``GET /dossier/patient/documents`` with the header ``Patient-INS: <INS>`` (never the INS
  in the URL, MSSanté test case 19: URLs end up in proxies' and browsers' logs; the old
  ``/dossier/patients/<INS>/…`` answers 400 saying so): what a professional may read of a patient's
  dossier (`dossier.visibility.professional_may_read`): the declared médecin traitant sees
  every document not masked from professionals (MASQUE_PS) nor hidden by the patient; the
  author of a document sees it; a professional the patient blocked sees nothing (403).
  Whether the professional may read this dossier at all is decided before anything says
  whether the patient exists: one with no tie to the patient (neither their médecin traitant
  nor the author of one of their documents) gets the same 404 (:data:`NO_DOSSIER`) for a
  patient with a mailbox here and for an INS unknown here, so the route cannot be used to
  learn who is a patient of this operator (issue 17 finding 5);
- ``GET …/documents/<id>/cda``: one document's CDA (same rules);
- ``POST /dossier/documents/<id>/hide`` and ``…/show``: the patient hides a document from
  professionals, or shows it again (only one the patient can see: any other is 404, as if
  it did not exist);
- ``POST /dossier/blocks/<IdNat>`` and ``DELETE …``: the patient blocks a professional.

Every read and every change is written to the audit log (who, what, when); access logs of
this route never record paths.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import structlog
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from catalogue.consent import NO_CONSENT, Refusal
from directory.ins import is_patient_address, patient_address
from dossier import loinc
from dossier.cda import parse_cda
from dossier.visibility import patient_view, professional_may_read, visible_to_patient
from server.auth.authenticator import Authenticator
from server.http.bearer import bearer_account
from server.http.responses import ANY, error, json_response, peer
from storage import audit
from storage.accounts import IDNAT, AccountInfo, identities_of
from storage.db import Database
from storage.dossier import DossierIndex, FiledDocument
from storage.mailstore import MailStore

if TYPE_CHECKING:
    from catalogue.access import AppGate

log = structlog.get_logger("hygie.http.dossier")
PREFIX = "/dossier"
_INS = re.compile(r"^[0-9]{5}(?:[0-9]{2}|2[AB])[0-9]{8}$", re.I)
#: The answer to whoever may not read a dossier, whether or not the patient exists here.
NO_DOSSIER = "no dossier you may read for this INS"
XML = "application/xml"
#: The request header naming the patient of ``/dossier/patient/…`` (never the URL).
INS_HEADER = "Patient-INS"
Endpoint = Callable[[Request, AccountInfo], Awaitable[Response]]


def _error(status: int, message: str) -> Response:
    return error(status, message)


class DossierApi:
    apps: AppGate | None = None  # apps read with the patient's dossier-read consent (issue 10)

    def __init__(
        self, db: Database, store: MailStore, index: DossierIndex, auth: Authenticator
    ) -> None:
        self.db = db
        self.store = store
        self.index = index
        self.auth = auth

    def routes(self) -> list[BaseRoute]:
        """Every route checks the bearer token first: without one, any path is a 401."""

        def signed(endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
            async def run(request: Request) -> Response:
                account = await bearer_account(request, self.auth, _error)
                if isinstance(account, Response):
                    return account
                try:
                    return await endpoint(request, account)
                except ValueError:
                    return _error(400, "bad document id")

            return run

        p = PREFIX
        return [
            Route(p + "/documents", signed(self._own), methods=["GET"]),
            *(Route(p + f"/documents/{{id}}/{change}", signed(self._hide), methods=["POST"],
                    name=change) for change in ("hide", "show")),
            Route(p + "/documents/{id}/cda", signed(self._own_cda), methods=["GET"]),
            Route(p + "/blocks/{idnat}", signed(self._block), methods=["POST", "DELETE"]),
            Route(p + "/patient/documents{rest:path}", signed(self._patient), methods=ANY),
            Route(p + "/patients/{rest:path}", signed(self._ins_in_url), methods=ANY),
            Route(p + "/{rest:path}", signed(self._nothing), methods=ANY),
        ]

    async def _nothing(self, request: Request, account: AccountInfo) -> Response:
        return _error(404, "no such resource")

    async def _ins_in_url(self, request: Request, account: AccountInfo) -> Response:
        # MSSanté test case 19: no INS in a URL (proxies and browsers keep URLs).
        return _error(400, f"the patient's INS goes in the {INS_HEADER} header, never in the "
                      "URL: GET /dossier/patient/documents")  # fmt: skip

    async def _patient(self, request: Request, account: AccountInfo) -> Response:
        ins = request.headers.get(INS_HEADER, "").strip()
        rest = [p for p in request.path_params["rest"].split("/") if p]
        if request.path_params["rest"] and not request.path_params["rest"].startswith("/"):
            return _error(404, "no such resource")
        if request.method not in ("GET", "HEAD"):
            return _error(405, "read-only")
        if not ins:
            return _error(400, f"name the patient with the {INS_HEADER} header")
        if self.apps is not None and _INS.match(ins):
            answer = await self._app(account, ins, rest, peer(request))
            if answer is not None:
                return answer
        return await self._professional(account, ins, rest, peer(request))

    # -- a referenced app, with the patient's consent (issue 10) --------------------------------

    async def _app(
        self, account: AccountInfo, ins: str, rest: list[str], peer: str
    ) -> Response | None:
        """The answer to an app reading ``/dossier/patient/…`` for ``ins``; None if ``account``
        is not an app's mailbox (the professional rules apply). The app sees what the patient
        sees (`dossier.visibility.patient_view`): every current document but INVISIBLE_PATIENT
        ones; an app the patient never connected gets the answer of an unknown INS."""
        assert self.apps is not None
        app = await self.apps.app_of(account.address)
        if app is None:
            return None
        domain = account.address.rsplit("@", 1)[1]
        patient = await self.store.resolve(patient_address(ins, domain))
        # What stops the app whoever the patient is (its status, its certificate) is answered
        # alike for every INS; past that, an app the patient never connected gets the answer
        # of an unknown INS (issue 17 finding 5): the route tells no one who is a patient here.
        app_wide = app if isinstance(app, Refusal) else self.apps.consents.app_refusal(app)
        if patient is None:
            reason = app_wide.reason if app_wide is not None else NO_CONSENT.reason
            await audit.record(self.db, f"mailbox:{account.address}", "dossier.denied", "-",
                               peer=peer, detail={"reason": reason})  # fmt: skip
            if app_wide is not None:
                return _error(403, app_wide.text)
            return _error(404, NO_DOSSIER)
        refusal = await self.apps.dossier_reader(account.address, patient.account_id, peer)
        if refusal is NO_CONSENT:
            return _error(404, NO_DOSSIER)
        if refusal is not None:
            return _error(403, refusal.text)
        visible = patient_view(await self.index.documents(patient.account_id))
        actor = f"account:{account.id}"
        if rest == []:
            await audit.record(self.db, actor, "dossier.list", f"account:{patient.account_id}",
                               peer=peer, detail={"documents": len(visible)})  # fmt: skip
            return json_response(200, {"documents": [await self._describe(d) for d in visible]})
        if len(rest) == 2 and rest[1] == "cda" and rest[0].isdigit():
            for filed in visible:
                if filed.id == int(rest[0]):
                    await audit.record(self.db, actor, "dossier.read", f"document:{filed.id}",
                                       peer=peer)  # fmt: skip
                    return Response(await self.index.cda(filed.id), 200, media_type=XML)
            return _error(404, "no such document")
        return _error(404, "no such resource")

    # -- the patient --------------------------------------------------------------------------

    async def _own(self, request: Request, account: AccountInfo) -> Response:
        if not is_patient_address(account.address):
            return _error(403, "only a patient has a dossier")
        documents = patient_view(await self.index.documents(account.id))
        await audit.record(
            self.db, f"account:{account.id}", "dossier.list", f"account:{account.id}"
        )
        return json_response(200, {"documents": [await self._describe(d) for d in documents]})

    async def _own_cda(self, request: Request, account: AccountInfo) -> Response:
        filed = await self._own_document(account.id, int(request.path_params["id"]))
        if filed is None or not is_patient_address(account.address):
            return _error(404, "no such document")
        await audit.record(self.db, f"account:{account.id}", "dossier.read", f"document:{filed.id}")
        return Response(await self.index.cda(filed.id), 200, media_type=XML)

    async def _hide(self, request: Request, account: AccountInfo) -> Response:
        document, hidden = request.path_params["id"], request.url.path.endswith("/hide")
        if not is_patient_address(account.address):
            return _error(403, "only the patient decides")
        if await self._own_document(account.id, int(document)) is None:
            return _error(404, "no such document")  # the same answer for an invisible one
        if not await self.index.set_hidden(account.id, int(document), hidden):
            return _error(404, "no such document")
        action = "dossier.hide" if hidden else "dossier.show"
        await audit.record(self.db, f"account:{account.id}", action, f"document:{document}")
        return json_response(200, {"id": int(document), "hiddenFromProfessionals": hidden})

    async def _block(self, request: Request, account: AccountInfo) -> Response:
        idnat, blocked = request.path_params["idnat"], request.method == "POST"
        if not is_patient_address(account.address):
            return _error(403, "only the patient decides")
        if not re.fullmatch(r"[0-9]{9,20}", idnat):
            return _error(400, "not an IdNat")
        await self.index.set_blocked(account.id, idnat, blocked)
        action = "dossier.block" if blocked else "dossier.unblock"
        await audit.record(self.db, f"account:{account.id}", action, f"idnat:{idnat}")
        return json_response(200, {"idnat": idnat, "blocked": blocked})

    # -- a professional -------------------------------------------------------------------------

    async def _professional(
        self, account: AccountInfo, ins: str, rest: list[str], peer: str
    ) -> Response:
        if is_patient_address(account.address):
            return _error(403, "a patient reads their own dossier at /dossier/documents")
        if not _INS.match(ins):
            return _error(400, "not an INS")
        idnats = {v for k, v in await identities_of(self.db, account.id) if k == IDNAT}
        if not idnats:
            return _error(403, "this mailbox is bound to no practitioner (IdNat)")
        actor = f"account:{account.id}"
        patient = await self.store.resolve(patient_address(ins, account.address.rsplit("@", 1)[1]))
        rows = await self.db.raw_rows(
            "SELECT medecin_traitant_idnat FROM dir_patients WHERE ins = ?", ins.upper()
        )
        traitant = bool(rows) and rows[0][0] in idnats
        # Authorisation first: the professional's tie to this patient, from every document of
        # the dossier (replaced, masked and hidden ones too: their author knows the patient).
        documents = await self.index.documents(patient.account_id) if patient else []
        authored: set[int] = set()
        for filed in documents:
            header = parse_cda(await self.index.cda(filed.id))
            if any(a.idnat in idnats for a in header.authors):
                authored.add(filed.id)
        if not (traitant or authored):
            # The same answer, and the same audit write, whether or not the patient exists.
            target = f"account:{patient.account_id}" if patient is not None else "-"
            await audit.record(self.db, actor, "dossier.denied", target, peer=peer,
                               detail={"reason": "no tie to the patient"})  # fmt: skip
            return _error(404, NO_DOSSIER)
        if patient is not None and idnats & await self.index.blocked(patient.account_id):
            await audit.record(self.db, actor, "dossier.denied", f"account:{patient.account_id}",
                               peer=peer, detail={"reason": "blocked"})  # fmt: skip
            return _error(403, "the patient has blocked you")
        visible = [
            filed for filed in documents
            if professional_may_read(filed, traitant=traitant, authored=filed.id in authored)
        ]  # fmt: skip
        target = f"account:{patient.account_id}" if patient is not None else "-"
        if rest == []:
            await audit.record(self.db, actor, "dossier.list", target, peer=peer,
                               detail={"documents": len(visible)})  # fmt: skip
            return json_response(200, {"documents": [await self._describe(d) for d in visible]})
        if len(rest) == 2 and rest[1] == "cda":
            wanted = int(rest[0])
            for filed in visible:
                if filed.id == wanted:
                    await audit.record(self.db, actor, "dossier.read", f"document:{filed.id}",
                                       peer=peer)  # fmt: skip
                    return Response(await self.index.cda(filed.id), 200, media_type=XML)
            return _error(404, "no such document, or not yours to read")
        return _error(404, "no such resource")

    # -- helpers ----------------------------------------------------------------------------

    async def _own_document(self, account_id: int, document_id: int) -> FiledDocument | None:
        """The patient's document with this id (a replaced version too), if the patient may
        see it."""
        for filed in await self.index.documents_by_id([document_id]):
            if filed.account_id == account_id and visible_to_patient(filed.restrictions):
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

