"""Local delivery (design.md §2 step 3): trace header, structure analysis, encrypted storage.

The caller has already resolved every recipient to a local account. The message is analysed
once (envelope and body structure for IMAP), then stored once, encrypted, for all of them.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any

import structlog

from server.imap.proto.message import analyze
from storage.mailstore import Delivered, MailStore, Recipient

if TYPE_CHECKING:
    from server.ops.metrics import ServerMetrics


log = structlog.get_logger("hygie.delivery")
#: Messages up to this size are analysed and encrypted without a thread hop.
INLINE_LIMIT = 128 * 1024


@dataclass(frozen=True)
class Trace:
    """What the ``Received:`` field says about one SMTP transaction (RFC 5321 §4.4)."""

    helo: str
    peer_ip: str
    protocol: str  # RFC 3848 / RFC 6531 "with" keyword, e.g. ESMTPSA or UTF8SMTPSA
    tls: str  # e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384"
    hostname: str


def new_queue_id() -> str:
    return secrets.token_hex(8).upper()


def received_field(trace: Trace, queue_id: str, when: datetime | None = None) -> bytes:
    when = when or datetime.now(UTC)
    helo = "".join(c for c in trace.helo if c.isprintable() and c not in "()\\")[:255] or "unknown"
    text = (
        f"Received: from {helo} ([{trace.peer_ip}])\r\n"
        f"\tby {trace.hostname} (Hygie) with {trace.protocol} id {queue_id}\r\n"
        f"\t({trace.tls});\r\n"
        f"\t{format_datetime(when)}\r\n"
    )
    return text.encode("utf-8", "replace")


def describe(raw: bytes) -> dict[str, Any]:
    """The IMAP metadata stored (encrypted) next to a message."""
    return analyze(raw)


#: Told of each durable delivery (recipients, what was stored); must not block or raise.
DeliveryObserver = Callable[[Sequence[Recipient], list[Delivered]], None]


class LocalDelivery:
    def __init__(self, store: MailStore) -> None:
        self.store = store
        self.metrics: ServerMetrics | None = None  # issue 11 item 4: delivery latency
        self.observers: list[DeliveryObserver] = []
        self.in_flight = 0
        self.idle = asyncio.Event()
        self.idle.set()

    def stamp(self, raw: bytes, trace: Trace) -> tuple[str, bytes]:
        """A new queue id and ``raw`` with our ``Received:`` field on top."""
        queue_id = new_queue_id()
        return queue_id, received_field(trace, queue_id) + raw

    async def deliver(
        self, raw: bytes, recipients: Sequence[Recipient], trace: Trace
    ) -> tuple[str, list[Delivered]]:
        queue_id, message = self.stamp(raw, trace)
        return queue_id, await self.deliver_stamped(message, recipients)

    async def deliver_stamped(
        self, message: bytes, recipients: Sequence[Recipient]
    ) -> list[Delivered]:
        """Store an already stamped message for local ``recipients``; durable on return."""
        if not recipients:
            return []
        self.in_flight += 1
        self.idle.clear()
        try:
            # Small messages are parsed on the loop (well under a millisecond); a thread hop
            # would cost more in latency than it saves. Large ones go to a thread.
            if len(message) <= INLINE_LIMIT:
                meta = describe(message)
            else:
                meta = await asyncio.to_thread(describe, message)
            started = time.perf_counter()
            delivered = await self.store.deliver(message, meta, recipients)
            if self.metrics is not None:
                self.metrics.delivery.observe(time.perf_counter() - started)
            for observer in self.observers:
                try:
                    observer(recipients, delivered)
                except Exception as exc:  # never the delivery's problem: it is durable
                    log.warning("delivery_observer_failed", error=type(exc).__name__)
            return delivered
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self.idle.set()
