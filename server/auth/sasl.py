"""SASL message formats shared by SMTP AUTH (RFC 4954) and IMAP AUTHENTICATE (RFC 9051 §6.2.2):
the client's first message of EXTERNAL (RFC 4422 Appendix A), OAUTHBEARER (RFC 7628 §3.1) and
XOAUTH2 (Google's format, used by Thunderbird and most mail programs), and the error challenge of
RFC 7628 §3.2.2. Sans-I/O: bytes in, values out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

#: Mechanisms by the credential they carry.
EXTERNAL: Final = "EXTERNAL"
OAUTHBEARER: Final = "OAUTHBEARER"
XOAUTH2: Final = "XOAUTH2"
PLAIN: Final = "PLAIN"
LOGIN: Final = "LOGIN"
MAX_MESSAGE: Final = 12 * 1024


class SaslSyntaxError(ValueError):
    """The client's message does not follow the mechanism's grammar."""


@dataclass(frozen=True)
class BearerCredentials:
    authzid: str
    token: str = ""

    def __repr__(self) -> str:  # never show the token
        return f"BearerCredentials(authzid={self.authzid!r}, token=<{len(self.token)} chars>)"


def _text(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SaslSyntaxError(f"{what} is not UTF-8") from None


def parse_external(message: bytes) -> str:
    """RFC 4422 Appendix A.1: the message is the authorisation identity, possibly empty."""
    if b"\x00" in message or len(message) > MAX_MESSAGE:
        raise SaslSyntaxError("malformed EXTERNAL message")
    return _text(message, "authorization identity").strip()


def _gs2_authzid(header: bytes) -> str:
    """RFC 5801 §4: gs2-header = [gs2-nonstd-flag ","] gs2-cb-flag "," [gs2-authzid] ","
    with gs2-authzid = "a=" saslname, where "," and "=" are written "=2C" and "=3D"."""
    parts = header.split(b",")
    if len(parts) != 3 or parts[2] != b"":
        raise SaslSyntaxError("malformed GS2 header")
    flag, authz = parts[0], parts[1]
    if flag not in (b"n", b"y") and not flag.startswith(b"p="):
        raise SaslSyntaxError("malformed GS2 header")
    if flag.startswith(b"p="):
        raise SaslSyntaxError("channel binding is not supported")
    if not authz:
        return ""
    if not authz.startswith(b"a="):
        raise SaslSyntaxError("malformed GS2 header")
    name = authz[2:]
    if b"=" in name.replace(b"=2C", b"").replace(b"=3D", b""):
        raise SaslSyntaxError("malformed authorization identity")
    return _text(name.replace(b"=2C", b",").replace(b"=3D", b"="), "authorization identity")


def _bearer(value: bytes) -> str:
    # RFC 7628 §3.1: auth = "Bearer" 1*SP b64token (RFC 6750 §2.1); the scheme is case-blind.
    scheme, _, token = value.partition(b" ")
    if scheme.lower() != b"bearer" or not token.strip():
        raise SaslSyntaxError("no bearer token")
    return _text(token.strip(), "token")


def parse_oauthbearer(message: bytes) -> BearerCredentials:
    """RFC 7628 §3.1: gs2-header kvsep *kvpair kvsep, kvsep = %x01."""
    if len(message) > MAX_MESSAGE:
        raise SaslSyntaxError("OAUTHBEARER message too long")
    header, sep, rest = message.partition(b"\x01")
    if not sep or not rest.endswith(b"\x01"):
        raise SaslSyntaxError("malformed OAUTHBEARER message")
    authzid = _gs2_authzid(header)
    token: str | None = None
    for pair in rest[:-1].split(b"\x01"):
        if not pair:
            continue
        key, eq, value = pair.partition(b"=")
        if not eq:
            raise SaslSyntaxError("malformed OAUTHBEARER key/value")
        if key == b"auth":
            token = _bearer(value)
    if token is None:
        raise SaslSyntaxError("no bearer token")
    return BearerCredentials(authzid, token)


def parse_xoauth2(message: bytes) -> BearerCredentials:
    """``user=`` address ^A ``auth=Bearer `` token ^A ^A."""
    if len(message) > MAX_MESSAGE:
        raise SaslSyntaxError("XOAUTH2 message too long")
    user: str | None = None
    token: str | None = None
    for pair in message.rstrip(b"\x01").split(b"\x01"):
        key, eq, value = pair.partition(b"=")
        if not eq:
            raise SaslSyntaxError("malformed XOAUTH2 message")
        if key == b"user":
            user = _text(value, "user")
        elif key == b"auth":
            token = _bearer(value)
    if not user or token is None:
        raise SaslSyntaxError("malformed XOAUTH2 message")
    return BearerCredentials(user.strip(), token)


def oauth_error(mechanism: str, scope: str = "") -> bytes:
    """The JSON error challenge sent before the final failure (RFC 7628 §3.2.2); the client
    answers it with a single %x01 and the server then fails the exchange."""
    status = "invalid_token" if mechanism == OAUTHBEARER else "401"
    body: dict[str, str] = {"status": status, "schemes": "bearer"}
    if scope:
        body["scope"] = scope
    return json.dumps(body, separators=(",", ":")).encode()
