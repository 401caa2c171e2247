"""The answers every route of the HTTPS application shares: one JSON error shape, plain-text
refusals, the security headers of pages and private answers, the client's address."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

JSON = "application/json; charset=utf-8"
TEXT = "text/plain; charset=utf-8"

#: Pages and private answers: never cached, never sniffed, never framed, no referrer; the
#: policy allows our own stylesheet and inline SVG images (the QR code) and nothing else.
CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")  # fmt: skip
PRIVATE = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
}


def json_response(status: int, document: Any, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(document, ensure_ascii=False).encode()
    return Response(body, status, headers=headers, media_type=JSON)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """``{"error": message}``: the one error shape of the JSON APIs."""
    return json_response(status, {"error": message}, headers)


def text(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response((message + "\n").encode(), status, headers=headers, media_type=TEXT)


def peer(request: Request) -> str:
    """The client's IP address (rate limits, audit): the socket's, or the PROXY header's."""
    return request.client.host if request.client is not None else "unknown"


def row_id(text: str) -> int | None:
    """A row number from a path or a form: ASCII digits within a 64-bit integer, else None
    (``str.isdigit`` also takes "²" or "١", which ``int`` refuses or the database cannot
    hold: a 500 instead of a 404)."""
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        return None
    return int(text)


#: Every method a route answers itself (its own 405 in its own shape): Starlette gives a
#: function route GET alone unless told.
ANY = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
