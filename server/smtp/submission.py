"""Message submission (RFC 6409) on aiosmtpd: port 2587 with STARTTLS (RFC 3207), port 2465 with
implicit TLS (RFC 8314). AUTH (RFC 4954) is offered only over TLS and required before MAIL.

SASL mechanisms: EXTERNAL with a TLS client certificate (RFC 4422 Appendix A; advertised only
when the client presented one), OAUTHBEARER (RFC 7628) and XOAUTH2 with a bearer token, PLAIN
(RFC 4616) and LOGIN with a password when the operator allows passwords.

Business rules hang off aiosmtpd's named hooks (``handle_MAIL``, ``handle_RCPT``,
``handle_DATA``, ``auth_<MECHANISM>``); replies come from :mod:`server.delivery.replies`.
"""

from __future__ import annotations

import asyncio
import binascii
import collections
import contextlib
import logging
import re
import ssl
import warnings
import weakref
from base64 import b64decode, b64encode
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog
from aiosmtpd.smtp import (
    MISSING,
    SMTP,
    AuthResult,
    Envelope,
    Session,
    TLSSetupException,
    _Missing,
    syntax,
)

from mailformats import dsn
from mailformats.mime import read_header
from server.auth import sasl
from server.auth.authenticator import Authenticator, AuthError
from server.config import Config
from server.delivery import from_rules
from server.delivery import replies as S
from server.delivery.pipeline import Envelope as Transaction
from server.delivery.pipeline import Origin, Pipeline
from server.delivery.trace import Trace
from server.listeners import endpoint
from server.outbound.trust import ascii_domain
from server.smtp.policy import SubmissionPolicy
from storage.accounts import AccountError, AccountInfo, normalize_address
from storage.mailstore import MailStore, Recipient
from storage.outbound import QueuedRecipient

if TYPE_CHECKING:
    from catalogue.access import AppGate
    from server.delivery.patients import PatientRules
    from server.ops.metrics import ServerMetrics

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


#: RFC 4954 §4: an AUTH command line, and a response to a challenge, may be 12288 octets.
AUTH_LINE_LIMIT = 12288


class HygieSMTP(SMTP):
    """aiosmtpd's SMTP with our reply wording and implicit-TLS awareness."""

    def __init__(
        self,
        handler: Any,
        *,
        implicit_tls: bool,
        max_session_seconds: float = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, auth_require_tls=not implicit_tls, **kwargs)
        self.implicit_tls = implicit_tls
        # RFC 4954 §4: an AUTH command line may be up to 12288 octets (bearer tokens are long).
        self.command_size_limits = collections.defaultdict(
            lambda: SMTP.command_size_limit, {"AUTH": AUTH_LINE_LIMIT}
        )
        self.max_session_seconds = max_session_seconds
        self._expiry: asyncio.TimerHandle | None = None
        self._gone = False
        # Prometheus (issue 11 item 4): the handler's metrics count connections and commands.
        self.metrics: ServerMetrics | None = getattr(handler, "metrics", None)
        self.service = str(getattr(handler, "service", "smtp"))
        if self.metrics is not None:
            self.metrics.instrument_smtp(self, self.service)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self.metrics is not None:
            self.metrics.connection_opened(self.service)
        if self.max_session_seconds:
            self._expiry = self.loop.call_later(self.max_session_seconds, self._session_expired)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        if self.metrics is not None:
            self.metrics.connection_closed(self.service)
        super().connection_lost(exc)

    def _session_expired(self) -> None:
        """A connection may not last for ever (slow-drip clients hold resources): 421 and
        close; a message not yet acknowledged is simply not taken (the client retries)."""
        transport = self.transport
        if isinstance(transport, asyncio.WriteTransport) and not transport.is_closing():
            log.info("smtp_session_expired")
            with contextlib.suppress(Exception):
                transport.write(S.S421_SESSION_TOO_LONG.encode() + b"\r\n")
            transport.close()

    async def push(self, status: Any) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            # The connection is going (we closed it after a 421/502, or the client left): a
            # reply cannot be delivered, and asyncio's TLS transport, once closed twice, fails
            # on any write (AttributeError … _write_appdata). End the session as the
            # disconnect it is; aiosmtpd does the same when the connection is lost.
            if not self._gone:
                self._gone = True
                log.info("smtp_client_gone", peer=_peer_ip(self.session))
            raise asyncio.CancelledError
        if isinstance(status, str):
            status = S.enhance(status)
        await super().push(status)

    async def challenge_auth(
        self,
        challenge: str | bytes,
        encode_to_b64: bool = True,
        log_client_response: bool = False,
    ) -> bytes | _Missing:
        """RFC 4954 §4: a ``334`` challenge and the client's base64 answer, as aiosmtpd's, but
        reading an answer of up to 12288 octets (bearer tokens are long) and answering one that
        is longer, or not base64, with a 501 and one log line instead of a traceback."""
        data = challenge.encode() if isinstance(challenge, str) else challenge
        await self.push(b"334 " + (b64encode(data) if encode_to_b64 else data))
        line = await self._read_auth_line()
        if line is None:
            log.info("smtp_auth_line_too_long", peer=_peer_ip(self.session))
            await self.push(S.S500_AUTH_LINE_TOO_LONG)
            return MISSING
        blob = line.strip()
        if blob == b"*":  # RFC 4954 §4: the client cancels the exchange
            await self.push(S.S501_AUTH_CANCELLED)
            return MISSING
        try:
            return b64decode(blob, validate=True)
        except binascii.Error:
            log.info("smtp_auth_bad_base64", step="response", peer=_peer_ip(self.session))
            await self.push(S.S501_BAD_BASE64)
            return MISSING

    async def _read_auth_line(self) -> bytes | None:
        """One line of at most :data:`AUTH_LINE_LIMIT` octets; None (the line read and
        dropped) when longer. The stream's own limit is the 1001 octets of a command line."""
        reader = self._reader
        kept = bytearray()
        too_long = False
        while True:
            try:
                chunk = await reader.readuntil(b"\n")
            except asyncio.LimitOverrunError as exc:
                chunk = await reader.read(max(exc.consumed, 1))
            except asyncio.IncompleteReadError as exc:  # the client left mid-line
                chunk = exc.partial + b"\n"
            if not too_long:
                kept += chunk
                too_long = len(kept) > AUTH_LINE_LIMIT
            if chunk.endswith(b"\n"):
                return None if too_long else bytes(kept)

    # RFC 3461 §4: aiosmtpd refuses parameters it does not know and upper-cases the rest;
    # the DSN ones (whose values are case-sensitive xtext) are taken out here, kept as sent,
    # and read by the handler's hooks from ``dsn_params``.
    dsn_params: dict[str, str]

    async def smtp_MAIL(self, arg: str | None) -> None:
        arg, self.dsn_params = _take_params(arg, MAIL_DSN_PARAMS)
        await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg: str | None) -> None:
        arg, self.dsn_params = _take_params(arg, RCPT_DSN_PARAMS)
        await super().smtp_RCPT(arg)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        # aiosmtpd parses every MAIL/RCPT path with the email package's header parser (a
        # tenth of the event loop's time under load); the plain <dot-atom@domain> form that
        # clients send is read here with the same result, anything else goes to aiosmtpd.
        m = _SIMPLE_PATH.fullmatch(arg)
        if m is None or (self.local_part_limit and m[1].find("@") > self.local_part_limit):
            result: tuple[str | None, str | None] = super()._getaddr(arg)
            return result
        return m[1], m[2]

    @syntax("STARTTLS", when="tls_context")  # as aiosmtpd's: HELP lists it
    async def smtp_STARTTLS(self, arg: str) -> None:
        # RFC 3207 §4.2: no STARTTLS once TLS is on. aiosmtpd would answer 220 and stack a
        # second TLS layer on the first (whose teardown then fails inside asyncio).
        if self.tls_active:
            await self.push(S.S503_TLS_ACTIVE)
            return
        await super().smtp_STARTTLS(arg)

    @property
    def tls_active(self) -> bool:
        return self.implicit_tls or self._tls_protocol is not None

    def ssl_object(self) -> ssl.SSLObject | None:
        transport = self.transport
        if transport is None:
            return None
        obj = transport.get_extra_info("ssl_object")
        return obj if isinstance(obj, ssl.SSLObject) else None

    def client_certificate(self) -> bytes | None:
        """The TLS client certificate (DER), already checked by the handshake, if any."""
        obj = self.ssl_object()
        return obj.getpeercert(binary_form=True) if obj is not None else None


MAIL_DSN_PARAMS = frozenset({"RET", "ENVID"})
RCPT_DSN_PARAMS = frozenset({"NOTIFY", "ORCPT"})


def _take_params(arg: str | None, names: frozenset[str]) -> tuple[str | None, dict[str, str]]:
    """Split ``names`` out of a MAIL/RCPT argument: (the rest, {NAME: value as sent})."""
    if arg is None or ">" not in arg:
        return arg, {}
    head, _, tail = arg.rpartition(">")
    kept, taken = [], {}
    for token in tail.split():
        key, _, value = token.partition("=")
        if key.upper() in names:
            taken[key.upper()] = value
        else:
            kept.append(token)
    return " ".join([head + ">", *kept]), taken


def _recipients(envelope: Envelope) -> list[Recipient]:
    found: list[Recipient] = getattr(envelope, "hygie_recipients", [])
    return found


class SubmissionHandler:
    """The hooks aiosmtpd calls. One instance serves every submission connection: the port's
    own checks (TLS, authentication, the envelope); the message itself goes to the pipeline."""

    service = "submission"

    def __init__(
        self,
        config: Config,
        auth: Authenticator,
        store: MailStore,
        pipeline: Pipeline,
        *,
        trusted: Callable[[str], bool] = lambda domain: False,
        patients: PatientRules | None = None,
        apps: AppGate | None = None,
        metrics: ServerMetrics | None = None,
    ) -> None:
        self.config = config
        self.auth = auth
        self.store = store
        self.pipeline = pipeline
        self.trusted = trusted
        self.patients = patients
        self.apps = apps
        self.metrics = metrics
        self.policy = SubmissionPolicy(store.db)

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
        extra = ["250-PIPELINING", "250-ENHANCEDSTATUSCODES", "250-DSN"]
        responses = [
            self._auth_line(server, r) if r.startswith("250-AUTH ") else r for r in responses
        ]
        responses = [r for r in responses if r]
        return responses[:-1] + extra + responses[-1:]

    def _mechanisms(self, server: HygieSMTP) -> set[str]:
        """What this connection may use: EXTERNAL needs a client certificate; each family
        needs the operator to enable it."""
        usable = set()
        if self.auth.config.password_login:
            usable |= {sasl.PLAIN, sasl.LOGIN}
        if self.auth.tokens is not None:
            usable |= {sasl.OAUTHBEARER, sasl.XOAUTH2}
        if self.auth.certificates is not None and server.client_certificate() is not None:
            usable.add(sasl.EXTERNAL)
        return usable

    def _auth_line(self, server: HygieSMTP, line: str) -> str:
        offered = [m for m in line[len("250-AUTH ") :].split() if m in self._mechanisms(server)]
        return "250-AUTH " + " ".join(offered) if offered else ""

    async def _initial(self, server: HygieSMTP, args: list[str]) -> bytes | None:
        """The client's first SASL message: the initial response, or the answer to an empty
        challenge (RFC 4954 §4). ``None`` once a reply has been sent."""
        if len(args) == 1:
            blob = await server.challenge_auth("")
            return blob if isinstance(blob, bytes) else None
        return await _initial_response(server, args)

    async def _refused(self, server: HygieSMTP, exc: AuthError) -> AuthResult:
        if exc.reason == AuthError.THROTTLED:
            await server.push(S.S421_TOO_MANY_FAILURES)
            if server.transport is not None:
                server.transport.close()
        elif exc.reason == AuthError.DISABLED:
            await server.push(S.S504_MECH_UNAVAILABLE)
        else:
            await server.push(f"{S.S535_AUTH_FAILED}: {exc.detail}")
        return AuthResult(success=False, handled=True)

    # -- AUTH EXTERNAL (RFC 4422 Appendix A), with the TLS client certificate ----------------

    async def auth_EXTERNAL(self, server: HygieSMTP, args: list[str]) -> AuthResult:
        if sasl.EXTERNAL not in self._mechanisms(server):
            await server.push(S.S504_MECH_UNAVAILABLE)
            return AuthResult(success=False, handled=True)
        message = await self._initial(server, args)
        if message is None:
            return AuthResult(success=False, handled=True)
        try:
            authzid = sasl.parse_external(message)
        except sasl.SaslSyntaxError:
            await server.push(S.S501_BAD_SASL)
            return AuthResult(success=False, handled=True)
        try:
            account = await self.auth.certificate(
                server.client_certificate(), authzid, _peer_ip(server.session), "smtp"
            )
        except AuthError as exc:
            return await self._refused(server, exc)
        return AuthResult(success=True, auth_data=account, message=S.S235_AUTH_OK)

    # -- AUTH OAUTHBEARER (RFC 7628) and XOAUTH2 ----------------------------------------------

    async def auth_OAUTHBEARER(self, server: HygieSMTP, args: list[str]) -> AuthResult:
        return await self._bearer(server, args, sasl.OAUTHBEARER)

    async def auth_XOAUTH2(self, server: HygieSMTP, args: list[str]) -> AuthResult:
        return await self._bearer(server, args, sasl.XOAUTH2)

    async def _bearer(self, server: HygieSMTP, args: list[str], mechanism: str) -> AuthResult:
        if mechanism not in self._mechanisms(server):
            await server.push(S.S504_MECH_UNAVAILABLE)
            return AuthResult(success=False, handled=True)
        message = await self._initial(server, args)
        if message is None:
            return AuthResult(success=False, handled=True)
        try:
            if mechanism == sasl.OAUTHBEARER:
                creds = sasl.parse_oauthbearer(message)
            else:
                creds = sasl.parse_xoauth2(message)
        except sasl.SaslSyntaxError:
            await server.push(S.S501_BAD_SASL)
            return AuthResult(success=False, handled=True)
        try:
            account = await self.auth.token(
                creds.token, creds.authzid, _peer_ip(server.session), "smtp"
            )
        except AuthError as exc:
            if exc.reason != AuthError.FAILED:
                return await self._refused(server, exc)
            # RFC 7628 §3.2.2: an error challenge, the client's %x01, then the failure.
            answer = await server.challenge_auth(sasl.oauth_error(mechanism))
            if not isinstance(answer, bytes):
                return AuthResult(success=False, handled=True)
            return await self._refused(server, exc)
        return AuthResult(success=True, auth_data=account, message=S.S235_AUTH_OK)

    async def handle_exception(self, error: Exception) -> str:
        """aiosmtpd's last resort. A failed STARTTLS handshake (a client certificate from
        another CA, a client that gave up) is the client's doing: one log line, no traceback.
        Anything else is our bug: logged with its traceback, and the client is told to retry
        without seeing internals."""
        if isinstance(error, TLSSetupException):
            cause = error.__cause__
            reason = getattr(cause, "reason", None) or type(cause).__name__
            log.info("tls_error", error=str(reason))
            return "421 4.7.0 TLS negotiation failed"
        log.error("smtp_session_failed", error=type(error).__name__, exc_info=error)
        return S.S451_LOCAL_ERROR

    # -- AUTH (RFC 4954), SASL PLAIN (RFC 4616) and LOGIN ----------------------------------

    async def auth_PLAIN(self, server: HygieSMTP, args: list[str]) -> AuthResult:
        if len(args) == 1:
            blob = await server.challenge_auth("")
            if not isinstance(blob, bytes):
                return AuthResult(success=False, handled=True)
        else:
            initial = await _initial_response(server, args)
            if initial is None:
                return AuthResult(success=False, handled=True)
            blob = initial
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
            initial = await _initial_response(server, args)
            if initial is None:
                return AuthResult(success=False, handled=True)
            login = initial
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
        if not address.isascii() and "SMTPUTF8" not in (o.upper() for o in mail_options):
            return S.S553_UTF8_WITHOUT_SMTPUTF8
        try:
            sender = normalize_address(address)
        except AccountError:
            return S.S501_BAD_ADDRESS
        try:
            envelope.hygie_dsn = dsn.parse_mail_params(getattr(server, "dsn_params", {}))
        except dsn.DsnSyntaxError as exc:
            return f"501 5.5.4 {exc}"
        refusal = await self.policy.sender(account, sender)
        if refusal is not None:
            return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        envelope.hygie_recipients = []
        envelope.hygie_remote = []
        envelope.hygie_notify = {}
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
        remote: list[QueuedRecipient] = getattr(envelope, "hygie_remote", [])
        if len(found) + len(remote) >= self.config.smtp.max_recipients:
            return S.S452_TOO_MANY_RECIPIENTS
        if not address.isascii() and not envelope.smtp_utf8:
            return S.S553_UTF8_WITHOUT_SMTPUTF8
        try:
            normalized = normalize_address(address)
        except AccountError:
            return S.S501_BAD_ADDRESS
        try:
            params = dsn.parse_rcpt_params(getattr(server, "dsn_params", {}))
        except dsn.DsnSyntaxError as exc:
            return f"501 5.5.4 {exc}"
        notify = ",".join(sorted(params.notify)) if params.notify else None
        account = session.auth_data
        if self.patients is not None and isinstance(account, AccountInfo):
            refusal = await self.patients.refusal(account.id, account.address, normalized)
            if refusal is not None:
                return refusal
        domain = normalized.rsplit("@", 1)[1]
        if not self.config.is_local_domain(domain):
            # Other operators' domains go to the outbound queue, if they are in the trust space.
            if not self.trusted(domain):
                return S.S554_RELAY_DENIED
            remote.append(QueuedRecipient(normalized, ascii_domain(domain), _orcpt(params), notify))
            envelope.rcpt_tos.append(address)
            return S.S250_RECIPIENT_OK
        recipient = await self.store.resolve(normalized)
        if recipient is None:
            return S.S550_NO_SUCH_USER
        refusal = await self.policy.recipient(normalized)
        if refusal is not None:
            return refusal
        if self.apps is not None and isinstance(account, AccountInfo):
            refusal = await self.apps.rcpt(account.address, recipient, _peer_ip(session))
            if refusal is not None:
                return refusal
        if all(r.account_id != recipient.account_id for r in found):
            found.append(recipient)
            notify_map: dict[int, tuple[str, dsn.DsnRcpt]] = getattr(envelope, "hygie_notify", {})
            notify_map[recipient.account_id] = (normalized, params)
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
        account = session.auth_data
        if not isinstance(account, AccountInfo):
            return S.S530_AUTH_REQUIRED
        if from_rules.needs_from(read_header(raw)):  # RFC 6409 §8.1: the MSA adds From
            raw = from_rules.with_from(raw, account.address)
        notify: dict[int, tuple[str, dsn.DsnRcpt]] = getattr(envelope, "hygie_notify", {})
        transaction = Transaction(
            origin=Origin.SUBMISSION,
            sender=str(envelope.mail_from or ""),
            local=tuple(_recipients(envelope)),
            remote=tuple(getattr(envelope, "hygie_remote", [])),
            account=account,
            peer=_peer_ip(session),
            mail=getattr(envelope, "hygie_dsn", dsn.DsnMail(None, None)),
            notify=tuple((i, a, p) for i, (a, p) in notify.items()),
            trace=smtp_trace(server, session, envelope, self.config, authenticated=True),
        )
        outcome = await self.pipeline.accept(raw, transaction)
        if outcome.accepted:
            log.info(
                "message_accepted", queue_id=outcome.queue_id, account=account.id,
                recipients=len(outcome.delivered), remote=len(transaction.remote), size=len(raw),
            )  # fmt: skip
        return outcome.reply


def decode_initial_response(arg: str) -> bytes | None:
    """RFC 4954 §4: initial-response = base64 / "=" (the empty response); None when ``arg``
    is neither. aiosmtpd hands the argument over as UTF-8 with surrogate escapes, so bytes that
    are not ASCII are not base64 either (and must not reach ``str.encode``)."""
    if arg == "=":
        return b""
    try:
        return b64decode(arg.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        return None


async def _initial_response(server: HygieSMTP, args: list[str]) -> bytes | None:
    """The decoded initial response of ``AUTH mechanism response``; ``None`` once 501 has been
    sent for one that is not base64 (and the one log line written)."""
    decoded = decode_initial_response(args[1])
    if decoded is None:
        log.info("smtp_auth_bad_base64", mechanism=args[0].upper(), peer=_peer_ip(server.session))
        await server.push(S.S501_BAD_BASE64)
    return decoded


def _orcpt(params: dsn.DsnRcpt) -> str | None:
    """ORCPT as it goes on the wire again (RFC 3461 §4.2: addr-type ";" xtext)."""
    if params.orcpt is None:
        return None
    kind, _, address = params.orcpt.partition(";")
    return f"{kind};{dsn.xtext_encode(address)}"


def smtp_trace(
    server: HygieSMTP, session: Session, envelope: Envelope, config: Config, *, authenticated: bool
) -> Trace:
    """What the ``Received:`` field says about this transaction (RFC 5321 §4.4), with the
    RFC 3848 / RFC 6531 ``with`` keyword: ESMTPS(A), or UTF8SMTPS(A) under SMTPUTF8."""
    ssl_obj = server.ssl_object()
    cipher = ssl_obj.cipher() if ssl_obj is not None else None
    tls = f"{ssl_obj.version()} {cipher[0]}" if ssl_obj is not None and cipher else "TLS"
    utf8 = "SMTPUTF8" in (o.upper() for o in envelope.mail_options)
    protocol = ("UTF8SMTPS" if utf8 else "ESMTPS") + ("A" if authenticated else "")
    return Trace(
        helo=session.host_name or "unknown",
        peer_ip=_peer_ip(session),
        protocol=protocol,
        tls=tls,
        hostname=config.server.hostname,
    )


def _peer_ip(session: Session | None) -> str:
    peer = session.peer if session is not None else None
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return "unknown"


def _has_bare_newline(raw: bytes) -> bool:
    """True if a CR or LF appears other than as part of CRLF (RFC 5321 §2.3.8)."""
    return raw.count(b"\n") != raw.count(b"\r\n") or raw.count(b"\r") != raw.count(b"\r\n")


def command_limits(config: Config) -> dict[str, int]:
    """How many times a connection may send each command (aiosmtpd closes with 421 beyond):
    generous for the transaction commands, tight for the rest (no endless NOOP or EHLO)."""
    messages = config.smtp.max_messages_per_session
    return {
        "*": 20,
        "MAIL": messages,
        "DATA": messages,
        "RSET": messages,
        "RCPT": messages * config.smtp.max_recipients,
        "NOOP": 100,
        "AUTH": 10,
    }


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
        "max_session_seconds": config.smtp.max_session_seconds,
        "command_call_limit": command_limits(config),
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
    plain = await loop.create_server(
        starttls_factory, **endpoint(host, config.smtp.submission_port)
    )
    implicit = await loop.create_server(
        implicit_factory, **endpoint(host, config.smtp.submission_tls_port), ssl=tls
    )
    return SubmissionListeners([plain, implicit], connections)
