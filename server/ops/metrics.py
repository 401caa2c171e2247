"""Prometheus metrics (issue 11 item 4) on the HTTPS listener at ``/metrics``.

One :class:`ServerMetrics` per ``hygie serve`` holds its own ``CollectorRegistry`` (never the
process-global one, so two servers in one test process do not mix):

- the usage counters of :mod:`server.ops.usage`, labelled by structure, software (``X-MSS-NIL``)
  and mailbox type: ``hygie_messages_sent_total``, ``hygie_messages_received_total``,
  ``hygie_documents_filed_total``, ``hygie_patient_deliveries_total``,
  ``hygie_mdn_sent_total`` (with ``outcome`` and ``code``);
- the servers' own: ``hygie_connections_total`` and ``hygie_connections_open`` by service,
  ``hygie_commands_total`` by service and command, ``hygie_delivery_seconds`` (a histogram
  of local delivery, from the writer's point of view: sealing, group commit, fsync), and the
  queue depths ``hygie_outbound_queue_depth`` and ``hygie_reminders_due``, read from the
  database at each scrape.

Counters are this process's since it started, as Prometheus expects (``sum()`` over the
nodes, ``rate()`` across restarts); the durable figures are `hygie report usage`'s.

Access: a bearer token (RFC 6750) whose SHA-256 is in ``keys/metrics-token.sha256`` in the
data directory (``hygie report metrics-token`` writes a new one and prints it once). It is an
operator credential with a single scope, reading metrics; Prometheus sends it with
``authorization: {credentials_file: …}``.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from sqlalchemy import func, select

from server.http.server import Request, Response, text
from storage.db import Database
from storage.models import AgendaReminder, OutboundRecipient
from storage.usage import UsageEvent

log = structlog.get_logger("hygie.metrics")
TOKEN_FILE = "keys/metrics-token.sha256"  # noqa: S105 (a path, not a secret)
USAGE_LABELS = ("structure", "software", "mailbox_type")
#: Distinct ``software`` label values kept (``X-MSS-NIL`` is whatever a sender writes): past
#: this many, a new value is counted as ``other``, so that a sender cannot grow the registry
#: and each scrape without bound. `hygie report usage` still has every value.
SOFTWARE_LABELS = 200
OTHER_SOFTWARE = "other"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.sent = Counter("hygie_messages_sent", "Messages submitted by local accounts.",
                            USAGE_LABELS, registry=r)  # fmt: skip
        self.received = Counter("hygie_messages_received",
                                "Messages delivered into local mailboxes (submission, relay).",
                                USAGE_LABELS, registry=r)  # fmt: skip
        self.filed = Counter("hygie_documents_filed", "Documents filed in patients' dossiers.",
                             USAGE_LABELS, registry=r)  # fmt: skip
        self.patients = Counter("hygie_patient_deliveries",
                                "Messages or filings that reached a patient.",
                                USAGE_LABELS, registry=r)  # fmt: skip
        self.mdn = Counter("hygie_mdn_sent", "Integration MDNs sent back (MSSanté 900-906).",
                           (*USAGE_LABELS, "outcome", "code"), registry=r)  # fmt: skip
        self.connections = Counter("hygie_connections", "Connections accepted.", ("service",),
                                   registry=r)  # fmt: skip
        self.open = Gauge("hygie_connections_open", "Connections open now.", ("service",),
                          registry=r)  # fmt: skip
        self.commands = Counter("hygie_commands", "Protocol commands received.",
                                ("service", "command"), registry=r)  # fmt: skip
        self.delivery = Histogram("hygie_delivery_seconds",
                                  "Time to store a message durably in local mailboxes.",
                                  buckets=LATENCY_BUCKETS, registry=r)  # fmt: skip
        self.outbound_depth = Gauge(
            "hygie_outbound_queue_depth", "Recipients waiting in the outbound queue.", registry=r
        )
        self.reminders_due = Gauge(
            "hygie_reminders_due", "Agenda reminders due and not sent yet.", registry=r
        )
        self._software: set[str] = set()

    def _software_label(self, software: str) -> str:
        if software in self._software:
            return software
        if len(self._software) >= SOFTWARE_LABELS:
            return OTHER_SOFTWARE
        self._software.add(software)
        return software

    def usage(self, event: UsageEvent) -> None:
        labels = (event.structure, self._software_label(event.software), event.mailbox_type)
        if event.kind == "sent":
            self.sent.labels(*labels).inc(event.count)
        elif event.kind == "received":
            self.received.labels(*labels).inc(event.count)
        elif event.kind == "filed":
            self.filed.labels(*labels).inc(event.count)
        elif event.kind == "patient":
            self.patients.labels(*labels).inc(event.count)
        elif event.kind == "mdn":
            outcome = "processed" if event.code == 0 else "error"
            self.mdn.labels(*labels, outcome, str(event.code)).inc(event.count)

    # -- protocol hooks ---------------------------------------------------------------------

    def connection_opened(self, service: str) -> None:
        self.connections.labels(service).inc()
        self.open.labels(service).inc()

    def connection_closed(self, service: str) -> None:
        self.open.labels(service).dec()

    def command(self, service: str, name: str) -> None:
        self.commands.labels(service, name.upper()).inc()

    def instrument_smtp(self, conn: Any, service: str) -> None:
        """Count an aiosmtpd connection's commands: its ``smtp_<VERB>`` methods wrapped."""
        methods: dict[str, Callable[[str | None], Awaitable[None]]] = conn._smtp_methods

        def counted(
            name: str, method: Callable[[str | None], Awaitable[None]]
        ) -> Callable[[str | None], Awaitable[None]]:
            @functools.wraps(method)  # keeps aiosmtpd's @syntax data, which HELP reads
            async def call(arg: str | None) -> None:
                self.command(service, name)
                await method(arg)

            return call

        conn._smtp_methods = {name: counted(name, m) for name, m in methods.items()}

    # -- scrape -----------------------------------------------------------------------------

    async def refresh(self, db: Database) -> None:
        """The gauges read from the database (shared by every node)."""
        now = dt.datetime.now(dt.UTC)
        try:
            async with db.read() as session:
                outbound = await session.scalar(select(func.count()).select_from(OutboundRecipient))
                due = await session.scalar(
                    select(func.count())
                    .select_from(AgendaReminder)
                    .where(AgendaReminder.sent_at.is_(None), AgendaReminder.due_at <= now)
                )
            self.outbound_depth.set(int(outbound or 0))
            self.reminders_due.set(int(due or 0))
        except Exception as exc:  # the scrape still returns the rest
            log.warning("metrics_refresh_failed", error=type(exc).__name__)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def new_token(data_dir: Path) -> str:
    """A new metrics token; its SHA-256 replaces the previous one's (0600)."""
    token = secrets.token_urlsafe(32)
    path = data_dir / TOKEN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(hashlib.sha256(token.encode()).hexdigest() + "\n")
    tmp.replace(path)
    return token


def token_ok(data_dir: Path, presented: str) -> bool:
    try:
        expected = (data_dir / TOKEN_FILE).read_text("ascii").strip()
    except OSError:
        return False  # no token made: nobody may read the metrics
    digest = hashlib.sha256(presented.encode()).hexdigest()
    return bool(expected) and hmac.compare_digest(digest, expected)


def metrics_route(
    metrics: ServerMetrics, db: Database, data_dir: Path
) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        if request.path != "/metrics":
            return text(404, "not found")
        if request.method not in ("GET", "HEAD"):
            return text(405, "method not allowed")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            response = text(401, "a bearer token is required")
            response.headers.append(("WWW-Authenticate", 'Bearer realm="hygie-metrics"'))
            return response
        if not token_ok(data_dir, token.strip()):
            log.info("metrics_refused", peer=request.peer)
            response = text(401, "invalid token")
            response.headers.append(("WWW-Authenticate", 'Bearer error="invalid_token"'))
            return response
        await metrics.refresh(db)
        return Response(200, CONTENT_TYPE_LATEST, metrics.exposition(),
                        [("Cache-Control", "no-store")])  # fmt: skip

    return handle
