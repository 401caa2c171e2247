"""Not-authenticated state (RFC 9051 §6.2): STARTTLS, LOGIN, AUTHENTICATE with SASL-IR
(RFC 4959) and the mechanisms PLAIN (RFC 4616), EXTERNAL with the TLS client certificate
(RFC 4422 Appendix A), OAUTHBEARER (RFC 7628) and XOAUTH2. No credential is accepted before TLS
(design.md §4)."""

from __future__ import annotations

import structlog

from server.auth import sasl
from server.auth.authenticator import AuthError
from server.imap.capabilities import capabilities, mechanisms
from server.imap.proto import commands as c
from server.imap.proto import response as r
from server.imap.proto.grammar import decode_sasl_response
from server.imap.proto.states import State
from server.imap.session import Session
from storage.accounts import AccountInfo, unlock_keys

log = structlog.get_logger("hygie.imap")


async def starttls(s: Session, cmd: c.StartTLS) -> None:
    if s.tls:
        await s.bad(cmd.tag, "TLS is already active")
        return
    await s.ok(cmd.tag, "Begin TLS negotiation now")
    await s.start_tls(s.server.tls)


async def login(s: Session, cmd: c.Login) -> None:
    if not s.tls:
        await s.no(cmd.tag, "LOGIN is disabled before STARTTLS", r.Code.PRIVACYREQUIRED)
        return
    await _password(s, cmd.tag, cmd.username, cmd.password)


async def authenticate(s: Session, cmd: c.Authenticate) -> None:
    if not s.tls:
        await s.no(cmd.tag, "Authentication is disabled before STARTTLS", r.Code.PRIVACYREQUIRED)
        return
    mechanism = cmd.mechanism.upper()
    if mechanism not in mechanisms(s):
        await s.no(cmd.tag, f"Unsupported mechanism {cmd.mechanism}", r.Code.CANNOT)
        return
    blob = cmd.initial_response
    if blob is None:
        blob = await _client_message(s, cmd.tag, b"")
        if blob is None:
            return
    if mechanism == sasl.PLAIN:
        await _plain(s, cmd.tag, blob)
    elif mechanism == sasl.EXTERNAL:
        await _external(s, cmd.tag, blob)
    else:
        await _bearer(s, cmd.tag, blob, mechanism)


async def _client_message(s: Session, tag: str, challenge: bytes) -> bytes | None:
    """Send a continuation (RFC 9051 §7.5) and read the client's base64 answer; ``None`` once
    the command has been answered (cancelled with "*", or bad base64)."""
    await s.send(r.Continuation(data=challenge))
    line = await s.read_line()
    if line == b"*":
        await s.bad(tag, "AUTHENTICATE cancelled")
        return None
    blob = decode_sasl_response(line)
    if blob is None:
        await s.bad(tag, "Invalid base64 in SASL response")
        return None
    return blob


async def _plain(s: Session, tag: str, blob: bytes) -> None:
    parts = blob.split(b"\x00")
    if len(parts) != 3:
        await s.bad(tag, "Malformed PLAIN credentials")
        return
    authzid, user, password = parts
    if authzid and authzid != user:
        await s.no(tag, "Authorization identity not allowed", r.Code.AUTHORIZATIONFAILED)
        return
    await _password(s, tag, user.decode("utf-8", "replace"), password.decode("utf-8", "replace"))


async def _external(s: Session, tag: str, blob: bytes) -> None:
    try:
        authzid = sasl.parse_external(blob)
    except sasl.SaslSyntaxError:
        await s.bad(tag, "Malformed EXTERNAL message")
        return
    try:
        account = await s.server.auth.certificate(s.client_certificate(), authzid, s.peer, "imap")
    except AuthError as exc:
        await _refused(s, tag, exc)
        return
    await _logged_in(s, tag, account)


async def _bearer(s: Session, tag: str, blob: bytes, mechanism: str) -> None:
    try:
        if mechanism == sasl.OAUTHBEARER:
            creds = sasl.parse_oauthbearer(blob)
        else:
            creds = sasl.parse_xoauth2(blob)
    except sasl.SaslSyntaxError:
        await s.bad(tag, f"Malformed {mechanism} message")
        return
    try:
        account = await s.server.auth.token(creds.token, creds.authzid, s.peer, "imap")
    except AuthError as exc:
        if exc.reason == AuthError.FAILED:
            # RFC 7628 §3.2.2: the error as a challenge; the client answers %x01.
            if await _client_message(s, tag, sasl.oauth_error(mechanism)) is None:
                return
        await _refused(s, tag, exc)
        return
    await _logged_in(s, tag, account)


async def _refused(s: Session, tag: str, exc: AuthError) -> None:
    if exc.reason == AuthError.THROTTLED:
        await s.no(tag, "Too many failed logins, try again later", r.Code.UNAVAILABLE)
    elif exc.reason == AuthError.DISABLED:
        await s.no(tag, "This mechanism is disabled on this server", r.Code.CANNOT)
    else:
        await s.no(tag, f"Authentication failed: {exc.detail}", r.Code.AUTHENTICATIONFAILED)


async def _password(s: Session, tag: str, username: str, password: str) -> None:
    try:
        account = await s.server.auth.password(username, password, s.peer, "imap")
    except AuthError as exc:
        if exc.reason == AuthError.THROTTLED:
            await s.no(tag, "Too many failed logins, try again later", r.Code.UNAVAILABLE)
        elif exc.reason == AuthError.FAILED:
            await s.no(tag, f"Authentication failed: {exc.detail}", r.Code.AUTHENTICATIONFAILED)
        else:
            await s.no(tag, "Password login is disabled on this server", r.Code.CANNOT)
        return
    if account is None:
        await s.no(tag, "Authentication failed", r.Code.AUTHENTICATIONFAILED)
        return
    await _logged_in(s, tag, account)


async def _logged_in(s: Session, tag: str, account: AccountInfo) -> None:
    s.keys = await unlock_keys(s.store.db, s.server.master, account.id)
    s.account = account
    s.state = State.AUTHENTICATED
    await s.ok(tag, "Logged in", r.Code.capability(capabilities(s)))
