"""The trace of a message (RFC 5321 §4.4): the queue id and the ``Received:`` field the
pipeline puts on top of each message it takes (:mod:`server.delivery.pipeline`)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from mailformats.mime import analyze


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
