"""Each agenda as an iCalendar feed over HTTPS (issue 9 item 5).

``GET /agenda/calendar.ics`` with ``Authorization: Bearer <JWT>`` (the same tokens as
``/dossier/``) returns the mailbox's agenda as one ``text/calendar`` object (RFC 5545 §3.4,
media type §8.1), with the VTIMEZONEs its events use, for calendar programs to subscribe to.
"""

from __future__ import annotations

import structlog
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from server.auth.authenticator import Authenticator
from server.http.bearer import bearer_account
from server.http.responses import ANY, text
from server.workflows.agenda import AgendaWorkflow

log = structlog.get_logger("hygie.http.agenda")
PREFIX = "/agenda"
CALENDAR = "text/calendar; charset=utf-8"


class AgendaFeed:
    def __init__(self, workflow: AgendaWorkflow, auth: Authenticator) -> None:
        self.workflow = workflow
        self.auth = auth

    async def handle(self, request: Request) -> Response:
        account = await bearer_account(request, self.auth, text)
        if isinstance(account, Response):
            return account
        if request.url.path != f"{PREFIX}/calendar.ics":
            return text(404, "no such resource")
        if request.method not in ("GET", "HEAD"):
            return text(405, "read-only")
        body = await self.workflow.feed(account.id)
        log.info("agenda_feed", account=account.id, size=len(body))
        return Response(body, 200, headers={"Cache-Control": "private, no-store"},
                        media_type=CALENDAR)  # fmt: skip

    def routes(self) -> list[BaseRoute]:
        return [Route(PREFIX + "/{rest:path}", self.handle, methods=ANY)]
