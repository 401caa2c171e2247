"""Remote delivery (design.md §2.5): workers that take due recipients from the outbound queue
(`storage.outbound`), relay them to the other operator over mutually authenticated TLS, and
tell the sender what happened with DSNs (RFC 3464).

Per attempt: the route (configured ``domain=host:port``, else the domain's DNS MX records,
else the domain itself, RFC 5321 §5.1), a TLS connection (STARTTLS required) presenting our
SERV certificate and checking the peer's chain against our trust anchors, its host name, and
its revocation (`server.outbound.trust.PeerRevocation`); then one SMTP transaction per (message,
domain), passing DSN parameters on when the peer offers DSN (RFC 3461 §5.2).

Outcomes per recipient: 2xx → done (a "relayed" DSN if the sender asked for success notices
and the peer cannot carry them); 5xx → failed now (DSN); 4xx or no connection → retried with
doubling back-off, a "delayed" DSN once after ``delay_notice_seconds``, and failure (status
4.4.7) when the next try would be past ``lifetime_seconds``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
import ssl
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import aiosmtplib
import dns.asyncresolver
import dns.exception
import structlog

from mailformats import dsn
from pki.tls import client_context
from server.config import Config
from server.delivery.local import LocalDelivery, Trace
from server.outbound.dkim import DkimSigner
from server.outbound.trust import (
    PeerRevocation,
    PeerRevoked,
    RevocationUnknown,
    TrustedDomains,
    ascii_domain,
)
from storage import outbound
from storage.accounts import AccountError, normalize_address
from storage.crypto import MasterKey
from storage.db import Database
from storage.mailstore import MailStore
from storage.outbound import QueuedMessage, QueuedRecipient, QueueItem

log = structlog.get_logger("hygie.queue")
LEASE_SECONDS = 300.0
#: Messages sent over one connection per attempt (a TLS handshake with client certificate
#: and a CRL check cost more than many transactions).
BATCH = 25


@dataclass(frozen=True)
class Route:
    host: str
    port: int


class Routes:
    """Where a domain's mail goes: configuration first, DNS MX otherwise."""

    def __init__(self, entries: Sequence[str], default_port: int = 25) -> None:
        self.fixed: dict[str, list[Route]] = defaultdict(list)
        self.default_port = default_port
        for entry in entries:
            domain, sep, target = entry.partition("=")
            host, colon, port = target.strip().rpartition(":")
            if not sep or not colon or not port.isdigit():
                raise ValueError(f"[relay] routes: {entry!r} is not domain=host:port")
            self.fixed[domain.strip().lower()].append(Route(host.strip("[]"), int(port)))

    async def lookup(self, domain: str) -> list[Route]:
        if domain in self.fixed:
            return list(self.fixed[domain])
        try:
            answer = await dns.asyncresolver.resolve(domain, "MX", lifetime=10)
        except dns.resolver.NXDOMAIN:
            return []
        except (dns.exception.DNSException, OSError):
            return [Route(domain, self.default_port)]
        records = sorted(answer, key=lambda r: r.preference)
        hosts = [str(r.exchange).rstrip(".") for r in records]
        if hosts == [""]:  # RFC 7505 null MX: the domain accepts no mail
            return []
        return [Route(h, self.default_port) for h in hosts]


class Temporary(Exception):
    """This attempt failed; try again later."""


def outbound_context(config: Config) -> ssl.SSLContext:
    """Our SERV certificate as client certificate; our CA and the other operators' as trust."""
    context = client_context(config.path(config.tls.ca_file), min_version=config.tls.min_version)
    for anchor in config.relay.trust_anchors:
        context.load_verify_locations(cafile=str(config.path(anchor)))
    context.load_cert_chain(config.path(config.tls.cert_file), config.path(config.tls.key_file))
    return context


class OutboundQueue:
    def __init__(
        self,
        config: Config,
        db: Database,
        master: MasterKey,
        store: MailStore,
        delivery: LocalDelivery,
        revocation: PeerRevocation,
        trusted: TrustedDomains,
    ) -> None:
        self.config = config
        self.relay = config.relay
        self.db = db
        self.master = master
        self.store = store
        self.delivery = delivery
        self.revocation = revocation
        self.trusted = trusted
        self.signer = (
            DkimSigner(
                config.path(config.dkim.key_dir), config.dkim.selector, config.server.domains
            )
            if config.dkim.sign
            else None
        )
        self.routes = Routes(config.relay.routes)
        self.tls = outbound_context(config)
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.slots = asyncio.Semaphore(max(1, config.relay.workers))
        self.wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- what submission and the relay hand over ----------------------------------------------

    async def submit(
        self,
        raw: bytes,
        sender: str,
        recipients: Sequence[QueuedRecipient],
        *,
        envid: str | None = None,
        ret: str | None = None,
    ) -> int:
        """Queue ``raw`` for remote ``recipients`` (durable on return) and wake a worker."""
        if sender and "@" in sender and self.signer is not None:
            raw = self.signer.sign(raw, sender.rsplit("@", 1)[1])
        message_id = await outbound.enqueue(
            self.db, self.master, raw, sender, recipients, envid=envid, ret=ret
        )
        log.info("queued", queue_id=message_id, recipients=len(recipients), size=len(raw))
        self.wake.set()
        return message_id

    async def report_local(
        self,
        raw: bytes,
        sender: str,
        notify: dict[int, tuple[str, dsn.DsnRcpt]],
        mail: dsn.DsnMail,
    ) -> None:
        """ "delivered" DSNs for local recipients that asked for NOTIFY=SUCCESS."""
        statuses = [
            dsn.RecipientStatus(
                final_recipient=address,
                action="delivered",
                status="2.0.0",
                original_recipient=params.orcpt,
                last_attempt=dt.datetime.now(dt.UTC),
            )
            for address, params in notify.values()
            if params.notify and dsn.wants(params.notify, "delivered")
        ]
        if statuses:
            message = QueuedMessage(0, sender, mail.envid, mail.ret, dt.datetime.now(dt.UTC), raw)
            try:
                await self._send_report(message, statuses)
            except Exception as exc:  # the message itself is delivered; a lost notice is logged
                log.error("dsn_failed", error=type(exc).__name__)

    # -- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            try:
                items = await outbound.lease(
                    self.db, self.owner, limit=self.relay.workers * BATCH,
                    lease_seconds=LEASE_SECONDS,
                )  # fmt: skip
            except Exception as exc:  # the database may be briefly unavailable
                log.error("queue_lease_failed", error=type(exc).__name__)
                items = []
            for batch in _batches(items, self.relay.workers):
                await self.slots.acquire()
                task = asyncio.create_task(self._attempt(batch))
                self._tasks.add(task)
                task.add_done_callback(self._done)
            if len(items) < self.relay.workers * BATCH:
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), timeout=self.relay.poll_seconds)
                except TimeoutError:
                    pass

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self.slots.release()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- one attempt: several messages to one domain over one connection ---------------------

    async def _attempt(self, groups: list[list[QueueItem]]) -> None:
        """Send each group (one message, its recipients in one domain) in turn over one
        connection; what the connection could not carry is deferred."""
        domain = groups[0][0].domain
        pending = list(groups)
        try:
            routes = await self.routes.lookup(domain)
            if not routes:
                for group in pending:
                    await self._settle_group(
                        group, {i.id: (550, "5.1.2 no mail route for the domain") for i in group}
                    )
                return
            smtp, error = await self._connect(routes, domain)
            if smtp is None:
                for group in pending:
                    await self._settle_group(group, {i.id: (0, error) for i in group})
                return
            try:
                while pending:
                    group = pending[0]
                    message = await outbound.load(self.db, self.master, group[0].message_id)
                    if message is None:
                        pending.pop(0)
                        continue
                    try:
                        results = await self._transaction(smtp, message, group)
                    except Temporary as exc:
                        for rest in pending:
                            await self._settle_group(rest, {i.id: (0, str(exc)) for i in rest})
                        pending = []
                        break
                    pending.pop(0)
                    await self._settle(message, group, results)
            finally:
                try:
                    await smtp.quit()
                except (aiosmtplib.SMTPException, OSError):
                    smtp.close()
        except Exception as exc:
            log.error("queue_attempt_failed", error=type(exc).__name__, exc_info=exc)
            with_retry = dt.datetime.now(dt.UTC) + dt.timedelta(
                seconds=self.relay.retry_base_seconds
            )
            for group in pending:
                await outbound.defer(self.db, group, next_attempt_at=with_retry,
                                     error=f"local error: {type(exc).__name__}")  # fmt: skip

    async def _settle_group(
        self, group: list[QueueItem], results: dict[int, tuple[int, str]]
    ) -> None:
        message = await outbound.load(self.db, self.master, group[0].message_id)
        if message is not None:
            await self._settle(message, group, results)

    async def _connect(
        self, routes: list[Route], domain: str
    ) -> tuple[aiosmtplib.SMTP | None, str]:
        """A connection to the first route that answers, TLS and peer checked."""
        last = "no route answered"
        for route in routes:
            smtp = aiosmtplib.SMTP(
                hostname=route.host, port=route.port, local_hostname=self.config.server.hostname,
                tls_context=self.tls, start_tls=True, timeout=60,
            )  # fmt: skip
            try:
                await smtp.connect()
            except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as exc:
                last = f"{route.host}:{route.port}: {_describe(exc)}"
                log.info("relay_attempt_failed", domain=domain, host=route.host, error=last)
                continue
            try:
                peer = smtp.get_transport_info("ssl_object")
                der = peer.getpeercert(binary_form=True) if peer is not None else None
                if der is None:
                    raise Temporary("peer presented no certificate")
                try:
                    await self.revocation.check(der)
                except PeerRevoked:
                    raise Temporary("peer certificate revoked") from None
                except RevocationUnknown as exc:
                    raise Temporary(f"peer revocation unknown: {exc}") from None
            except Temporary as exc:
                last = f"{route.host}:{route.port}: {exc}"
                log.info("relay_attempt_failed", domain=domain, host=route.host, error=last)
                smtp.close()
                continue
            return smtp, ""
        return None, last

    async def _transaction(
        self, smtp: aiosmtplib.SMTP, message: QueuedMessage, items: list[QueueItem]
    ) -> dict[int, tuple[int, str]]:
        """One SMTP transaction; raises :class:`Temporary` if the connection breaks."""
        try:
            use_dsn = smtp.supports_extension("dsn")
            mail_options = []
            if use_dsn:
                if message.ret:
                    mail_options.append(f"RET={message.ret}")
                if message.envid:
                    mail_options.append(f"ENVID={dsn.xtext_encode(message.envid)}")
            if smtp.supports_extension("smtputf8") and not message.raw.isascii():
                mail_options.append("SMTPUTF8")
            if smtp.supports_extension("8bitmime") and not message.raw.isascii():
                mail_options.append("BODY=8BITMIME")
            try:
                await smtp.mail(message.sender, options=mail_options)
            except aiosmtplib.SMTPResponseException as exc:
                await _reset(smtp)
                return {i.id: (exc.code, exc.message) for i in items}
            results: dict[int, tuple[int, str]] = {}
            accepted = []
            for item in items:
                options = []
                if use_dsn and item.notify:
                    options.append(f"NOTIFY={item.notify}")
                if use_dsn and item.orcpt:
                    options.append(f"ORCPT={item.orcpt}")
                try:
                    reply = await smtp.rcpt(item.recipient, options=options)
                    results[item.id] = (reply.code, reply.message)
                    accepted.append(item)
                except aiosmtplib.SMTPResponseException as exc:
                    results[item.id] = (exc.code, exc.message)
            if not accepted:
                await _reset(smtp)
                return results
            try:
                reply = await smtp.data(message.raw)
                for item in accepted:
                    results[item.id] = (reply.code, reply.message)
            except aiosmtplib.SMTPResponseException as exc:
                for item in accepted:
                    results[item.id] = (exc.code, exc.message)
            return results
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as exc:
            raise Temporary(_describe(exc)) from None

    # -- outcomes --------------------------------------------------------------------------

    async def _settle(
        self, message: QueuedMessage, items: list[QueueItem], results: dict[int, tuple[int, str]]
    ) -> None:
        now = dt.datetime.now(dt.UTC)
        done, failed, later = [], [], []
        reports: list[tuple[QueueItem, dsn.RecipientStatus]] = []
        for item in items:
            code, text = results[item.id]
            notify = frozenset(item.notify.split(",")) if item.notify else None
            if 200 <= code < 300:
                done.append(item)
                log.info("relayed", queue_id=item.message_id, domain=item.domain)
                if dsn.wants(notify, "relayed") and "SUCCESS" in (notify or ()):
                    reports.append((item, self._status(item, "relayed", "2.0.0", code, text)))
            elif code >= 500:
                failed.append(item)
                log.info("relay_failed", queue_id=item.message_id, domain=item.domain, code=code)
                if dsn.wants(notify, "failed"):
                    reports.append((item, self._status(item, "failed", _enhanced(text, "5.0.0"),
                                                       code, text)))  # fmt: skip
            else:
                later.append(item)
        if reports:
            await self._report(message, reports)
        await outbound.finish(self.db, done + failed)
        await self._later(message, later, results, now)

    async def _later(
        self,
        message: QueuedMessage,
        items: list[QueueItem],
        results: dict[int, tuple[int, str]],
        now: dt.datetime,
    ) -> None:
        expired, notice, retry = [], [], []
        for item in items:
            delay = min(
                self.relay.retry_base_seconds * 2**item.attempts, self.relay.retry_max_seconds
            )
            next_at = now + dt.timedelta(seconds=delay)
            if next_at > item.created_at + dt.timedelta(seconds=self.relay.lifetime_seconds):
                expired.append(item)
            else:
                retry.append((item, next_at))
                old_enough = now - item.created_at >= dt.timedelta(
                    seconds=self.relay.delay_notice_seconds
                )
                notify = frozenset(item.notify.split(",")) if item.notify else None
                if old_enough and not item.delay_notified and dsn.wants(notify, "delayed"):
                    notice.append(item)
        if expired:
            reports = []
            for item in expired:
                code, text = results[item.id]
                notify = frozenset(item.notify.split(",")) if item.notify else None
                log.info("relay_expired", queue_id=item.message_id, domain=item.domain)
                if dsn.wants(notify, "failed"):
                    reports.append((item, self._status(item, "failed", "4.4.7", code, text)))
            if reports:
                await self._report(message, reports)
            await outbound.finish(self.db, expired)
        if notice:
            until = {
                i.id: i.created_at + dt.timedelta(seconds=self.relay.lifetime_seconds)
                for i in notice
            }
            await self._report(
                message,
                [
                    (i, self._status(i, "delayed", "4.4.1", *results[i.id], until=until[i.id]))
                    for i in notice
                ],
            )
        for item, next_at in retry:
            code, text = results[item.id]
            await outbound.defer(
                self.db, [item], next_attempt_at=next_at,
                error=f"{code} {text}" if code else text,
                delay_notified=True if item in notice else None,
            )  # fmt: skip

    def _status(
        self,
        item: QueueItem,
        action: str,
        status: str,
        code: int,
        text: str,
        *,
        until: dt.datetime | None = None,
    ) -> dsn.RecipientStatus:
        diagnostic = f"smtp; {code} {text}" if code else None
        return dsn.RecipientStatus(
            final_recipient=item.recipient,
            action=action,
            status=status,
            diagnostic=diagnostic,
            original_recipient=item.orcpt,
            last_attempt=dt.datetime.now(dt.UTC),
            will_retry_until=until,
        )

    async def _report(
        self, message: QueuedMessage, reports: list[tuple[QueueItem, dsn.RecipientStatus]]
    ) -> None:
        await self._send_report(message, [status for _, status in reports])

    async def _send_report(
        self, message: QueuedMessage, statuses: list[dsn.RecipientStatus]
    ) -> None:
        """A DSN to the sender: into its mailbox when it is local, else queued to its operator
        with the null reverse-path. Never for a null sender (RFC 3461 §6.1)."""
        if dsn.is_bounce(message.sender) or "@" not in message.sender:
            return
        domain = message.sender.rsplit("@", 1)[1]
        raw = dsn.build_report(
            reporting_mta=self.config.server.hostname,
            postmaster=f"postmaster@{domain}",
            sender=message.sender,
            original=message.raw,
            recipients=statuses,
            envid=message.envid,
            ret=message.ret,
            arrival=message.created_at,
            message_id_domain=self.config.server.hostname,
        )
        raw = mss_nil_field(self.config) + raw
        if await self.send_notice(raw, message.sender):
            log.info("dsn_sent", queue_id=message.id, action=statuses[0].action)

    async def send_notice(self, raw: bytes, to: str) -> bool:
        """Deliver a notice Hygie wrote (DSN, MDN, error mail) to ``to``: into its mailbox
        when local, else queued to its operator with the null reverse-path (RFC 3461 §6.1,
        RFC 8098 §2.1, so that no notice answers a notice). False if it cannot go anywhere."""
        if "@" not in to:
            return False
        domain = to.rsplit("@", 1)[1]
        if self.config.is_local_domain(domain):
            local = await self.store.resolve(to)
            if local is None:
                log.warning("notice_undeliverable")
                return False
            trace = Trace(
                helo=self.config.server.hostname, peer_ip="127.0.0.1", protocol="ESMTP",
                tls="local", hostname=self.config.server.hostname,
            )  # fmt: skip
            await self.delivery.deliver(raw, [local], trace)
            return True
        if self.trusted.is_trusted(domain):
            try:
                address = normalize_address(to)
            except AccountError:
                return False
            target = QueuedRecipient(address, ascii_domain(domain), None, "NEVER")
            await self.submit(raw, "", [target])
            return True
        log.warning("notice_undeliverable")
        return False


def mss_nil_field(config: Config) -> bytes:
    """``X-MSS-NIL`` (MSSanté ECO.2.4.3), on every message Hygie writes itself."""
    value = "".join(c for c in config.server.mss_nil if c.isprintable()) or "HYGIE"
    return f"X-MSS-NIL: {value}\r\n".encode()


def _batches(items: list[QueueItem], connections: int) -> list[list[list[QueueItem]]]:
    """Leased recipients as groups (one message, one domain), the groups of each domain split
    over at most ``connections`` connections."""
    groups: dict[tuple[int, str], list[QueueItem]] = defaultdict(list)
    for item in items:
        groups[(item.message_id, item.domain)].append(item)
    by_domain: dict[str, list[list[QueueItem]]] = defaultdict(list)
    for (_, domain), group in groups.items():
        by_domain[domain].append(group)
    batches = []
    for domain_groups in by_domain.values():
        count = min(connections, max(1, -(-len(domain_groups) // BATCH)))
        for k in range(count):
            batches.append(domain_groups[k::count])
    return [b for b in batches if b]


async def _reset(smtp: aiosmtplib.SMTP) -> None:
    """RSET after a refused transaction, so the connection can carry the next one."""
    try:
        await smtp.rset()
    except aiosmtplib.SMTPResponseException:
        pass


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return f"{exc.code} {exc.message}"
    return str(exc) or type(exc).__name__


def _enhanced(text: str, default: str) -> str:
    first = text.split(" ", 1)[0]
    parts = first.split(".")
    if len(parts) == 3 and all(p.isdigit() for p in parts) and parts[0] in "245":
        return first
    return default
