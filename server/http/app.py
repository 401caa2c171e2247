"""The HTTPS application (design.md §7): one Starlette application with its router, served by
uvicorn (`server.http.listener`) in ``hygie serve``'s event loop.

    /fhir/…       the directory's FHIR R4 API                 server/http/fhir.py
    /dossier/…    the dossier's JSON API (bearer)             server/http/dossier.py
    /agenda/…     the agenda's iCalendar feed (bearer)        server/http/agenda.py
    /catalogue/…  the catalogue's JSON API (bearer)           server/http/catalogue.py
    /metrics      Prometheus (bearer)                         server/http/metrics.py
    /espace/…     the patients' space (pages and JSON)        server/http/espace/

Two pieces of ASGI middleware wrap every route:

- :class:`Limits` (issue 26): the request head's limits that h11 does not judge (number of
  fields, target, query fields, a declared body too large: 431, 414, 400, 413, then closed),
  and the body read whole, up to :attr:`HttpLimits.max_body` (413 beyond, chunked bodies too),
  before any route sees it;
- :class:`Failures`: a route's exception is a 500 "internal error", logged by its type only
  (a URL or a traceback can carry an INS), never a traceback to the client.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.http.limits import HttpLimits, head_problem
from server.http.responses import text

log = structlog.get_logger("hygie.http")


class Limits:
    def __init__(self, app: ASGIApp, limits: HttpLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        target = scope.get("raw_path", b"")
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        refusal = head_problem(target, scope["headers"], self.limits)
        if refusal is not None:
            await _close_with(text(refusal.status, refusal.reason), scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # gone (or timed out by the listener): nobody to answer
            body += message.get("body", b"")
            if len(body) > self.limits.max_body:
                await _close_with(text(413, "request body too large"), scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        whole: Message = {"type": "http.request", "body": bytes(body), "more_body": False}
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return whole
            return await receive()

        await self.app(scope, replay, send)


async def _close_with(response: Response, scope: Scope, receive: Receive, send: Send) -> None:
    response.headers["Connection"] = "close"
    await response(scope, receive, send)


class Failures:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            log.error("http_handler_failed", error=type(exc).__name__)
            if not started and scope["type"] == "http":
                await text(500, "internal error")(scope, receive, send)


async def _not_found(request: Request, exc: Exception) -> Response:
    return text(404, "not found")


async def _method(request: Request, exc: Exception) -> Response:
    return text(405, "method not allowed")


async def _internal(request: Request, exc: Exception) -> Response:
    return text(500, "internal error")


def application(routes: Sequence[BaseRoute], limits: HttpLimits | None = None) -> ASGIApp:
    """The ASGI application for ``routes``, within the limits and the failure handling."""
    handlers: dict[Any, Any] = {404: _not_found, 405: _method, 500: _internal}
    app = Starlette(routes=list(routes), exception_handlers=handlers)
    return Failures(Limits(app, limits or HttpLimits()))
