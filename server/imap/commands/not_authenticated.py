"""Not-authenticated state (RFC 9051 §6.2): STARTTLS, LOGIN, AUTHENTICATE (PLAIN, RFC 4616,
with SASL-IR, RFC 4959). No credential is accepted before TLS (design.md §4)."""

from __future__ import annotations

import structlog

from server.auth import AuthError
from server.imap.capabilities import capabilities
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
    if cmd.mechanism.upper() != "PLAIN":
        await s.no(cmd.tag, f"Unsupported mechanism {cmd.mechanism}", r.Code.CANNOT)
        return
    blob = cmd.initial_response
    if blob is None:
        await s.send(r.Continuation(data=b""))
        line = await s.read_line()
        if line == b"*":
            await s.bad(cmd.tag, "AUTHENTICATE cancelled")
            return
        blob = decode_sasl_response(line)
        if blob is None:
            await s.bad(cmd.tag, "Invalid base64 in SASL response")
            return
    parts = blob.split(b"\x00")
    if len(parts) != 3:
        await s.bad(cmd.tag, "Malformed PLAIN credentials")
        return
    authzid, user, password = parts
    if authzid and authzid != user:
        await s.no(cmd.tag, "Authorization identity not allowed", r.Code.AUTHORIZATIONFAILED)
        return
    await _password(
        s, cmd.tag, user.decode("utf-8", "replace"), password.decode("utf-8", "replace")
    )


async def _password(s: Session, tag: str, username: str, password: str) -> None:
    try:
        account = await s.server.auth.password(username, password, s.peer, "imap")
    except AuthError as exc:
        if exc.reason == AuthError.THROTTLED:
            await s.no(tag, "Too many failed logins, try again later", r.Code.UNAVAILABLE)
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
