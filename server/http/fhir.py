"""The directory's FHIR R4 API (``directory.fhir``) as a route of the HTTPS server (``/fhir/``)."""

from __future__ import annotations

import json

from directory import fhir
from server.http.server import Handler, Request, Response
from storage.db import Database

PREFIX = "/fhir"
CONTENT_TYPE = "application/fhir+json; charset=utf-8"


def fhir_route(db: Database) -> Handler:
    async def handle(request: Request) -> Response:
        base = f"{request.scheme}://{request.host}{PREFIX}"
        status, document = await fhir.handle(
            db,
            request.method,
            request.path[len(PREFIX) :],
            request.query,
            base,
            request.body,
            request.headers.get("content-type", ""),
        )
        body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
        # RFC 6585 §4: a 429 says when to come back.
        headers = [("Retry-After", str(max(1, round(fhir.HEAVY_WAIT))))] if status == 429 else []
        return Response(status, CONTENT_TYPE, body if request.method != "HEAD" else b"", headers)

    return handle
