"""Bearer-token authentication of the HTTPS routes (RFC 6750 §2.1, §3): the same JWTs as the
OAUTHBEARER login (`server.auth.oauth`), so failures count against the same per-address limit."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response

from server.auth.authenticator import Authenticator, AuthError
from server.http.responses import peer
from storage.accounts import AccountInfo

Refusal = Callable[[int, str], Response]


async def bearer_account(
    request: Request, auth: Authenticator, refuse: Refusal
) -> AccountInfo | Response:
    """The account the request's token names, or the 401 to send (in ``refuse``'s format)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        response = refuse(401, "a bearer token is required")
        response.headers["WWW-Authenticate"] = 'Bearer realm="hygie"'
        return response
    try:
        return await auth.token(token.strip(), "", peer(request), "https")
    except AuthError as exc:
        response = refuse(401, exc.detail or "authentication failed")
        response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return response
