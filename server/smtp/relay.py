"""The inbound relay (design.md §2.6, the port-25 role): other operators deliver mail for our
domains here, over STARTTLS with a client certificate.

Refusals come before DATA, each with its own code:

- no TLS: ``530 5.7.0`` (STARTTLS first); no certificate, or one that does not chain to our
  trust anchors: the TLS handshake fails with ``certificate_required`` / ``unknown_ca``;
- a revoked peer certificate: ``554 5.7.1``; its revocation status unknown (CRL unreachable):
  ``454 4.7.5`` (the peer retries);
- a sender domain not on the trusted-domain list: ``550 5.7.1``;
- a recipient outside our domains: ``554 5.7.1`` (no open relay); unknown here: ``550 5.1.1``;
- undeclared 8-bit content: a UTF-8 address without SMTPUTF8 ``553 5.6.7`` (RFC 6531 §3.4),
  UTF-8 header fields without it ``554 5.6.9``, an 8-bit body without BODY=8BITMIME
  ``554 5.6.1`` (RFC 6152).

The ``Received:`` field and Authentication-Results name the peer's certificate and its CA.

The message then takes the pipeline like any other (:mod:`server.delivery.pipeline`); DSN
parameters are accepted (RFC 3461) and a "delivered" notice is returned when the sender asked
for one.
"""

from __future__ import annotations

import asyncio
import ssl
import weakref
from dataclasses import replace
from typing import TYPE_CHECKING

import structlog
from aiosmtpd.smtp import Envelope, Session
from cryptography import x509
from cryptography.x509.oid import NameOID

from mailformats import dsn
from server.config import Config
from server.delivery import replies as S
from server.delivery.pipeline import Envelope as Transaction
from server.delivery.pipeline import Origin, Pipeline
from server.listeners import endpoint
from server.outbound.dkim import DkimVerifier, authentication_results, strip_forged_results
from server.outbound.trust import PeerRevocation, PeerRevoked, RevocationUnknown, TrustedDomains
from server.smtp.submission import (
    HygieSMTP,
    SubmissionHandler,
    _has_bare_newline,
    _peer_ip,
    command_limits,
    smtp_trace,
)

if TYPE_CHECKING:
    from server.ops.metrics import ServerMetrics
from storage.accounts import AccountError, normalize_address
from storage.mailstore import MailStore, Recipient

log = structlog.get_logger("hygie.relay")

S454_REVOCATION_UNKNOWN = "454 4.7.5 Cannot check the revocation of your certificate now"
S554_PEER_REVOKED = "554 5.7.1 Your certificate is revoked"
S550_UNTRUSTED_DOMAIN = "550 5.7.1 Sender domain is not in the MSSanté trusted-domain list"
S530_CERTIFICATE_REQUIRED = "530 5.7.0 A client certificate is required"


class RelayHandler:
    """aiosmtpd hooks for the inbound relay listener."""

    service = "relay"  # Prometheus label (server.ops.metrics)

    def __init__(
        self,
        config: Config,
        store: MailStore,
        pipeline: Pipeline,
        trusted: TrustedDomains,
        revocation: PeerRevocation,
        metrics: ServerMetrics | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.pipeline = pipeline
        self.trusted = trusted
        self.revocation = revocation
        self.metrics = metrics
        self.dkim = (
            DkimVerifier(config.path(config.dkim.key_dir) / "peers") if config.dkim.verify else None
        )

    async def handle_EHLO(
        self, server: HygieSMTP, session: Session, envelope: Envelope, hostname: str,
        responses: list[str],
    ) -> list[str]:  # fmt: skip
        session.host_name = hostname
        extra = ["250-PIPELINING", "250-ENHANCEDSTATUSCODES", "250-DSN"]
        return responses[:-1] + extra + responses[-1:]

    handle_exception = SubmissionHandler.handle_exception

    async def handle_MAIL(
        self, server: HygieSMTP, session: Session, envelope: Envelope, address: str,
        mail_options: list[str],
    ) -> str:  # fmt: skip
        der = server.client_certificate()
        if der is None:
            return S530_CERTIFICATE_REQUIRED
        try:
            await self.revocation.check(der)
        except PeerRevoked:
            log.warning("relay_peer_revoked", peer=_peer_ip(session))
            return S554_PEER_REVOKED
        except RevocationUnknown as exc:
            log.warning("relay_peer_status_unknown", peer=_peer_ip(session), error=str(exc))
            return S454_REVOCATION_UNKNOWN
        # RFC 5321 §4.5.5: the null reverse-path "<>" (DSNs, MDNs, notices) comes from any
        # peer the TLS check admitted. aiosmtpd hands it over as "<>", and refuses RCPT when
        # the envelope's sender is empty, so "<>" is what the envelope keeps (`_reverse_path`).
        if not address.isascii() and "SMTPUTF8" not in (o.upper() for o in mail_options):
            return S.S553_UTF8_WITHOUT_SMTPUTF8
        if address not in ("", "<>"):
            try:
                sender = normalize_address(address)
            except AccountError:
                return S.S501_BAD_ADDRESS
            if not self.trusted.is_trusted(sender.rsplit("@", 1)[1]) or self.trusted.is_local(
                sender.rsplit("@", 1)[1]
            ):
                log.info("relay_untrusted_domain", peer=_peer_ip(session))
                return S550_UNTRUSTED_DOMAIN
        try:
            mail = dsn.parse_mail_params(getattr(server, "dsn_params", {}))
        except dsn.DsnSyntaxError as exc:
            return f"501 5.5.4 {exc}"
        envelope.mail_from = address or "<>"
        envelope.mail_options.extend(mail_options)
        # Per-transaction state rides on the envelope, which aiosmtpd renews on RSET.
        setattr(envelope, "hygie_dsn", mail)  # noqa: B010
        setattr(envelope, "hygie_recipients", [])  # noqa: B010
        setattr(envelope, "hygie_notify", {})  # noqa: B010
        return S.S250_SENDER_OK

    async def handle_RCPT(
        self, server: HygieSMTP, session: Session, envelope: Envelope, address: str,
        rcpt_options: list[str],
    ) -> str:  # fmt: skip
        found: list[Recipient] = getattr(envelope, "hygie_recipients", [])
        if len(found) >= self.config.smtp.max_recipients:
            return S.S452_TOO_MANY_RECIPIENTS
        if not address.isascii() and not envelope.smtp_utf8:
            return S.S553_UTF8_WITHOUT_SMTPUTF8
        try:
            normalized = normalize_address(address)
            params = dsn.parse_rcpt_params(getattr(server, "dsn_params", {}))
        except AccountError:
            return S.S501_BAD_ADDRESS
        except dsn.DsnSyntaxError as exc:
            return f"501 5.5.4 {exc}"
        if not self.config.is_local_domain(normalized.rsplit("@", 1)[1]):
            return S.S554_RELAY_DENIED
        recipient = await self.store.resolve(normalized)
        if recipient is None:
            return S.S550_NO_SUCH_USER
        if all(r.account_id != recipient.account_id for r in found):
            found.append(recipient)
            notify: dict[int, tuple[str, dsn.DsnRcpt]] = getattr(envelope, "hygie_notify", {})
            notify[recipient.account_id] = (normalized, params)
        envelope.rcpt_tos.append(address)
        return S.S250_RECIPIENT_OK

    async def handle_DATA(self, server: HygieSMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content
        if not isinstance(raw, bytes | bytearray):
            return S.S451_LOCAL_ERROR
        raw = bytes(raw)
        if _has_bare_newline(raw):  # no SMTP smuggling through us (RFC 5321 §2.3.8)
            return S.S554_BARE_NEWLINE
        if len(raw) > self.config.smtp.max_message_size:
            return S.S552_TOO_BIG
        refusal = _undeclared_8bit(raw, envelope)
        if refusal is not None:
            return refusal
        trace = smtp_trace(server, session, envelope, self.config, authenticated=False)
        der = server.client_certificate()
        if der is not None:
            # The certificate that admitted the peer, and its CA (issue 24: each operator's
            # CA has its own name), in the Received comment as Postfix writes it.
            subject, issuer = certificate_names(der)
            trace = replace(trace, tls=f'{trace.tls}; client CN "{_comment(subject)}", '
                                      f'issuer "{_comment(issuer)}" (verified OK)')  # fmt: skip
        recipients: list[Recipient] = getattr(envelope, "hygie_recipients", [])
        sender = _reverse_path(envelope)
        raw = await self._authenticate(raw, sender, server)
        notify: dict[int, tuple[str, dsn.DsnRcpt]] = getattr(envelope, "hygie_notify", {})
        transaction = Transaction(
            origin=Origin.RELAY,
            sender=sender,
            local=tuple(recipients),
            peer=_peer_ip(session),
            mail=getattr(envelope, "hygie_dsn", dsn.DsnMail(None, None)),
            notify=tuple((i, a, p) for i, (a, p) in notify.items()),
            trace=trace,
        )
        outcome = await self.pipeline.accept(raw, transaction)
        if outcome.accepted:
            log.info("relay_accepted", queue_id=outcome.queue_id, recipients=len(recipients),
                     size=len(raw))  # fmt: skip
        return outcome.reply

    async def _authenticate(self, raw: bytes, mail_from: str, server: HygieSMTP) -> bytes:
        """Our Authentication-Results (RFC 8601) on top, any forged one removed: the DKIM
        verdict, and the TLS client certificate that admitted the peer."""
        authserv = self.config.server.hostname
        raw = strip_forged_results(raw, authserv)
        results = []
        if self.dkim is not None:
            verdict, domain, selector = await asyncio.to_thread(self.dkim.verify, raw)
            detail = f" header.d={domain} header.s={selector}" if domain else ""
            results.append(f"dkim={verdict}{detail}")
        der = server.client_certificate()
        if der is not None:
            cn, issuer = certificate_names(der)
            results.append(f"x-tls=pass smtp.client-cert-cn={_value(cn)} "
                           f"smtp.client-cert-issuer={_value(issuer)}")  # fmt: skip
        sender_domain = mail_from.rsplit("@", 1)[1] if "@" in mail_from else ""
        if sender_domain:
            results.append(f"x-mssante-trust=pass smtp.mailfrom={_value(sender_domain)}")
        return authentication_results(authserv, results) + raw


def _undeclared_8bit(raw: bytes, envelope: Envelope) -> str | None:
    """Between operators 8-bit content travels only as declared (RFC 6152 §3: BODY=8BITMIME;
    RFC 6531 §3.4: SMTPUTF8 for UTF-8 header fields), so that a peer that skips the
    declaration finds out here rather than at a stricter operator further on."""
    if raw.isascii():
        return None
    end = raw.find(b"\r\n\r\n")
    head = raw if end < 0 else raw[:end]
    if not head.isascii() and not envelope.smtp_utf8:
        return S.S554_UTF8_HEADERS_WITHOUT_SMTPUTF8
    if not envelope.smtp_utf8 and "BODY=8BITMIME" not in envelope.mail_options:
        return S.S554_8BIT_WITHOUT_8BITMIME
    return None


def certificate_names(der: bytes) -> tuple[str, str]:
    """The CN of a certificate's subject and of its issuer ("unknown" where there is none)."""
    cert = x509.load_der_x509_certificate(der)

    def cn(name: x509.Name) -> str:
        found = name.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(found[0].value) if found else "unknown"

    return cn(cert.subject), cn(cert.issuer)


def _comment(text: str) -> str:
    """``text`` as it may stand in a quoted word inside a header comment (RFC 5322 §3.2.2):
    printable, without parentheses, backslash or double quote, and not too long."""
    return "".join(c for c in text if c.isprintable() and c not in '()\\"')[:128]


def _reverse_path(envelope: Envelope) -> str:
    """The sender's address, or "" for the null reverse-path."""
    sender = str(envelope.mail_from or "")
    return "" if sender == "<>" else sender


def _value(text: str) -> str:
    """An RFC 8601 pvalue: a token, or a quoted string."""
    safe = "".join(c for c in text if c.isprintable() and c not in '"\\')
    return safe if safe and all(c.isalnum() or c in ".-_@" for c in safe) else f'"{safe}"'


def relay_context(base: ssl.SSLContext, anchors: list[str]) -> ssl.SSLContext:
    """``base`` (our server certificate) requiring a client certificate from ``anchors``."""
    base.verify_mode = ssl.CERT_REQUIRED
    for pem in anchors:
        base.load_verify_locations(cadata=pem)
    return base


async def start_relay(
    config: Config, handler: RelayHandler, tls: ssl.SSLContext
) -> tuple[asyncio.Server, weakref.WeakSet[HygieSMTP]]:
    connections: weakref.WeakSet[HygieSMTP] = weakref.WeakSet()

    def factory() -> HygieSMTP:
        conn = HygieSMTP(
            handler, implicit_tls=False, tls_context=tls, require_starttls=True,
            hostname=config.server.hostname, ident="Hygie ESMTP",
            data_size_limit=config.smtp.max_message_size, enable_SMTPUTF8=True,
            decode_data=False, auth_required=False, timeout=300,
            max_session_seconds=config.smtp.max_session_seconds,
            command_call_limit=command_limits(config),
        )  # fmt: skip
        connections.add(conn)
        return conn

    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, **endpoint(config.server.listen, config.relay.port))
    return server, connections
