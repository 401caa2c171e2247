"""Each agenda as an iCalendar feed over HTTPS (issue 9 item 5).

``GET /agenda/calendar.ics`` with ``Authorization: Bearer <JWT>`` (the same tokens as
``/dossier/``) returns the mailbox's agenda as one ``text/calendar`` object (RFC 5545 §3.4,
media type §8.1), with the VTIMEZONEs its events use, for calendar programs to subscribe to.
"""

from __future__ import annotations

import structlog

from server.auth.authenticator import Authenticator
from server.http.bearer import bearer_account
from server.http.server import Handler, Request, Response, text
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
        if request.path != f"{PREFIX}/calendar.ics":
            return text(404, "no such resource")
        if request.method not in ("GET", "HEAD"):
            return text(405, "read-only")
        body = await self.workflow.feed(account.id)
        response = Response(200, CALENDAR, body)
        response.headers.append(("Cache-Control", "private, no-store"))
        log.info("agenda_feed", account=account.id, size=len(body))
        return response


def agenda_route(feed: AgendaFeed) -> Handler:
    return feed.handle
