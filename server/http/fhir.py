"""The directory's FHIR R4 API (``directory.fhir``) as a route of the HTTPS application
(``/fhir/…``)."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from directory import fhir
from server.http.responses import ANY
from storage.db import Database

PREFIX = "/fhir"
CONTENT_TYPE = "application/fhir+json; charset=utf-8"


def fhir_routes(db: Database) -> list[BaseRoute]:
    async def handle(request: Request) -> Response:
        host = request.headers.get("host", "localhost")
        base = f"{request.url.scheme}://{host}{PREFIX}"
        method = "GET" if request.method == "HEAD" else request.method
        status, document = await fhir.handle(
            db,
            method,
            request.url.path[len(PREFIX) :],
            request.query_params.multi_items(),
            base,
            await request.body(),
            request.headers.get("content-type", ""),
        )
        body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
        # RFC 6585 §4: a 429 says when to come back.
        headers = {"Retry-After": str(max(1, round(fhir.HEAVY_WAIT)))} if status == 429 else None
        return Response(body, status, headers=headers, media_type=CONTENT_TYPE)

    return [Route(PREFIX, handle, methods=ANY),
            Route(PREFIX + "/{rest:path}", handle, methods=ANY)]  # fmt: skip
