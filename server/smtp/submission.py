"""Message submission (RFC 6409) on aiosmtpd: port 2587 with STARTTLS (RFC 3207), port 2465 with
implicit TLS (RFC 8314). AUTH (RFC 4954) is offered only over TLS and required before MAIL.

Business rules hang off aiosmtpd's named hooks (``handle_MAIL``, ``handle_RCPT``,
``handle_DATA``, ``auth_PLAIN``, ``auth_LOGIN``); replies come from :mod:`server.smtp.replies`.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import logging
import re
import ssl
import warnings
import weakref
from base64 import b64decode
from typing import Any

import structlog
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from server.auth import Authenticator, AuthError
from server.config import Config
from server.delivery import LocalDelivery, Trace
from server.smtp import replies as S
from storage.accounts import AccountError, AccountInfo, normalize_address
from storage.mailstore import MailStore, Recipient

log = structlog.get_logger("hygie.smtp")
# aiosmtpd logs envelope addresses at INFO: they can hold a patient's INS (design.md §5).
# Its warnings are about its own settings (see below); our events are logged by us.
logging.getLogger("mail.log").setLevel(logging.ERROR)
# On the implicit-TLS port the whole connection is TLS, so AUTH without STARTTLS is right;
# aiosmtpd cannot tell and warns on every connection.
warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")


_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
# RFC 5321 §4.1.2: Path = "<" Mailbox ">", here with a dot-atom local part and a domain name.
_SIMPLE_PATH = re.compile(
    rf"<((?:{_ATEXT}\.)*{_ATEXT}@(?:[A-Za-z0-9-]+\.)*[A-Za-z0-9-]+)>[ \t]*([^(]*)", re.S
)


class HygieSMTP(SMTP):
    """aiosmtpd's SMTP with our reply wording and implicit-TLS awareness."""

    def __init__(self, handler: Any, *, implicit_tls: bool, **kwargs: Any) -> None:
        super().__init__(handler, auth_require_tls=not implicit_tls, **kwargs)
        self.implicit_tls = implicit_tls

    async def push(self, status: Any) -> None:
        if isinstance(status, str):
            status = S.enhance(status)
        await super().push(status)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        # aiosmtpd parses every MAIL/RCPT path with the email package's header parser (a
        # tenth of the event loop's time under load); the plain <dot-atom@domain> form that
        # clients send is read here with the same result, anything else goes to aiosmtpd.
        m = _SIMPLE_PATH.fullmatch(arg)
        if m is None or (self.local_part_limit and m[1].find("@") > self.local_part_limit):
            result: tuple[str | None, str | None] = super()._getaddr(arg)
            return result
        return m[1], m[2]

    @property
    def tls_active(self) -> bool:
        return self.implicit_tls or self._tls_protocol is not None

    def ssl_object(self) -> ssl.SSLObject | None:
        transport = self.transport
        if transport is None:
            return None
        obj = transport.get_extra_info("ssl_object")
        return obj if isinstance(obj, ssl.SSLObject) else None


def _recipients(envelope: Envelope) -> list[Recipient]:
    found: list[Recipient] = getattr(envelope, "hygie_recipients", [])
    return found


class SubmissionHandler:
    """The hooks aiosmtpd calls. One instance serves every submission connection."""

    def __init__(
        self, config: Config, auth: Authenticator, store: MailStore, delivery: LocalDelivery
    ) -> None:
        self.config = config
        self.auth = auth
        self.store = store
        self.delivery = delivery

    async def handle_EHLO(
        self,
        server: HygieSMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        """Advertise PIPELINING (RFC 2920: aiosmtpd reads commands in order from a buffered
        stream and answers each in turn) and ENHANCEDSTATUSCODES (RFC 2034)."""
        session.host_name = hostname
        extra = ["250-PIPELINING", "250-ENHANCEDSTATUSCODES"]
        return responses[:-1] + extra + responses[-1:]

    # -- AUTH (RFC 4954), SASL PLAIN (RFC 4616) and LOGIN ----------------------------------

    async def auth_PLAIN(self, server: HygieSMTP, args: list[str]) -> AuthResult:
        if len(args) == 1:
            blob = await server.challenge_auth("")
            if not isinstance(blob, bytes):
                return AuthResult(success=False, handled=True)
        else:
            try:
                blob = b64decode(args[1].encode(), validate=True) if args[1] != "=" else b""
            except binascii.Error:
                await server.push(S.S501_BAD_BASE64)
                return AuthResult(success=False, handled=True)
        parts = blob.split(b"\x00")
        if len(parts) != 3:
            await server.push("501 5.5.2 Malformed PLAIN credentials")
            return AuthResult(success=False, handled=True)
        authzid, login, password = parts
        if authzid and authzid != login:
            # Acting for another account is not allowed (RFC 4616 §2 authorization identity).
            await server.push(S.S535_AUTH_FAILED)
            return AuthResult(success=False, handled=True)
        return await self._password(server, login, password)

    async def auth_LOGIN(self, server: HygieSMTP, args: list[str]) -> AuthResult:
        if len(args) == 1:
            login = await server.challenge_auth("Username:")
            if not isinstance(login, bytes):
                return AuthResult(success=False, handled=True)
        else:
            try:
                login = b64decode(args[1].encode(), validate=True)
            except binascii.Error:
                await server.push(S.S501_BAD_BASE64)
                return AuthResult(success=False, handled=True)
        password = await server.challenge_auth("Password:")
        if not isinstance(password, bytes):
            return AuthResult(success=False, handled=True)
        return await self._password(server, login, password)

    async def _password(self, server: HygieSMTP, login: bytes, password: bytes) -> AuthResult:
        peer = _peer_ip(server.session)
        try:
            account = await self.auth.password(
                login.decode("utf-8", "replace"), password.decode("utf-8", "replace"), peer, "smtp"
            )
        except AuthError as exc:
            status = (
                S.S421_TOO_MANY_FAILURES
                if exc.reason == AuthError.THROTTLED
                else S.S534_MECH_TOO_WEAK
            )
            await server.push(status)
            if exc.reason == AuthError.THROTTLED and server.transport is not None:
                server.transport.close()
            return AuthResult(success=False, handled=True)
        if account is None:
            return AuthResult(success=False, handled=False, message=S.S535_AUTH_FAILED)
        return AuthResult(success=True, auth_data=account, message=S.S235_AUTH_OK)

    # -- envelope --------------------------------------------------------------------------

    async def handle_MAIL(
        self,
        server: HygieSMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        account = session.auth_data
        if not isinstance(account, AccountInfo):
            return S.S530_AUTH_REQUIRED
        try:
            sender = normalize_address(address)
        except AccountError:
            return S.S501_BAD_ADDRESS
        if sender != account.address:
            return S.S553_SENDER_NOT_OWNED
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        envelope.hygie_recipients = []
        return S.S250_SENDER_OK

    async def handle_RCPT(
        self,
        server: HygieSMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        found = _recipients(envelope)
        if len(found) >= self.config.smtp.max_recipients:
            return S.S452_TOO_MANY_RECIPIENTS
        try:
            normalized = normalize_address(address)
        except AccountError:
            return S.S501_BAD_ADDRESS
        domain = normalized.rsplit("@", 1)[1]
        if not self.config.is_local_domain(domain):
            return S.S554_RELAY_DENIED
        recipient = await self.store.resolve(normalized)
        if recipient is None:
            return S.S550_NO_SUCH_USER
        if all(r.account_id != recipient.account_id for r in found):
            found.append(recipient)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return S.S250_RECIPIENT_OK

    # -- content ---------------------------------------------------------------------------

    async def handle_DATA(self, server: HygieSMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content
        if not isinstance(raw, bytes | bytearray):
            return S.S451_LOCAL_ERROR
        raw = bytes(raw)
        if _has_bare_newline(raw):
            return S.S554_BARE_NEWLINE
        if len(raw) > self.config.smtp.max_message_size:
            return S.S552_TOO_BIG
        ssl_obj = server.ssl_object()
        cipher = ssl_obj.cipher() if ssl_obj is not None else None
        tls = f"{ssl_obj.version()} {cipher[0]}" if ssl_obj is not None and cipher else "TLS"
        utf8 = "SMTPUTF8" in (o.upper() for o in envelope.mail_options)
        trace = Trace(
            helo=session.host_name or "unknown",
            peer_ip=_peer_ip(session),
            protocol="UTF8SMTPSA" if utf8 else "ESMTPSA",
            tls=tls,
            hostname=self.config.server.hostname,
        )
        account = session.auth_data
        try:
            queue_id, delivered = await self.delivery.deliver(raw, _recipients(envelope), trace)
        except Exception as exc:
            log.error("delivery_failed", error=type(exc).__name__)
            return S.S451_LOCAL_ERROR
        log.info(
            "message_accepted",
            queue_id=queue_id,
            account=account.id if isinstance(account, AccountInfo) else None,
            recipients=len(delivered),
            size=len(raw),
        )
        return f"{S.S250_ACCEPTED} as {queue_id}"


def _peer_ip(session: Session | None) -> str:
    peer = session.peer if session is not None else None
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return "unknown"


def _has_bare_newline(raw: bytes) -> bool:
    """True if a CR or LF appears other than as part of CRLF (RFC 5321 §2.3.8)."""
    return raw.count(b"\n") != raw.count(b"\r\n") or raw.count(b"\r") != raw.count(b"\r\n")


class SubmissionListeners:
    """The two submission listeners and their open connections."""

    def __init__(self, servers: list[asyncio.Server], connections: weakref.WeakSet[HygieSMTP]):
        self.servers = servers
        self.connections = connections

    def stop_accepting(self) -> None:
        for srv in self.servers:
            srv.close()

    async def close_connections(self, grace: float) -> None:
        """Shutdown: sessions between transactions get 421 now (RFC 5321 §3.8); a session in
        the middle of one (after MAIL, during DATA) may finish it within ``grace`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while True:
            busy = False
            for conn in list(self.connections):
                transport = conn.transport
                if not isinstance(transport, asyncio.WriteTransport) or transport.is_closing():
                    continue
                envelope = conn.envelope
                in_transaction = envelope is not None and envelope.mail_from is not None
                if in_transaction and loop.time() < deadline:
                    busy = True
                    continue
                with contextlib.suppress(Exception):
                    transport.write(S.S421_SHUTTING_DOWN.encode() + b"\r\n")
                    transport.close()
            if not busy:
                return
            await asyncio.sleep(0.05)


async def start_submission(
    config: Config,
    handler: SubmissionHandler,
    tls: ssl.SSLContext,
) -> SubmissionListeners:
    """Listen on the STARTTLS and the implicit-TLS submission ports."""
    loop = asyncio.get_running_loop()
    connections: weakref.WeakSet[HygieSMTP] = weakref.WeakSet()
    common: dict[str, Any] = {
        "hostname": config.server.hostname,
        "ident": "Hygie ESMTP",
        "data_size_limit": config.smtp.max_message_size,
        "enable_SMTPUTF8": True,
        "decode_data": False,
        "auth_required": True,
        "timeout": 300,
    }

    def starttls_factory() -> HygieSMTP:
        conn = HygieSMTP(
            handler, implicit_tls=False, tls_context=tls, require_starttls=True, **common
        )
        connections.add(conn)
        return conn

    def implicit_factory() -> HygieSMTP:
        conn = HygieSMTP(handler, implicit_tls=True, **common)
        connections.add(conn)
        return conn

    host = config.server.listen
    plain = await loop.create_server(starttls_factory, host, config.smtp.submission_port)
    implicit = await loop.create_server(
        implicit_factory, host, config.smtp.submission_tls_port, ssl=tls
    )
    return SubmissionListeners([plain, implicit], connections)
