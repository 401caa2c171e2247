"""One path for every message (design.md §2): submission, relay from another operator, and what
Hygie writes itself (DSN, MDN, reminders, dossier filing, notices).

A listener checks what belongs to its port (TLS, authentication, the envelope) and hands the
message over with its :class:`Envelope`. Then, in this order:

1. **stamp and parse once**: our ``Received:`` field on top, then :func:`message.parse` (in a
   worker thread for a large message): every step reads that one :class:`Message`;
2. **check**: each step in turn may refuse the message with a reply from the reply table;
3. **route**: each step may change which mailboxes get a copy (``dmp@`` never keeps one, a
   document the patient may not see keeps the patient's INBOX out), add a record to the
   commit, or ask for after-commit work (a job);
4. **one commit** (:mod:`storage.commit`): the copies, the outbound queue entry, the jobs and
   the records, in one transaction shared with concurrent messages (group commit); then IDLE
   sessions and the outbound queue are told, and the ``250`` goes out;
5. **after**: the jobs run from the outbox (:mod:`server.delivery.outbox`), leased, retried
   with back-off, each write at most once, a failure isolated and logged there.

Steps also have ``committed``: work in this process once the message is durable that may be
lost with the process (usage counters, metrics), run in a background task.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

import structlog
from sqlalchemy.engine import Connection

from mailformats import dsn
from server.config import Config
from server.delivery import message as parsing
from server.delivery import replies as S
from server.delivery.message import Message
from server.delivery.trace import Trace, new_queue_id, received_field
from server.outbound.dkim import DkimSigner
from server.outbound.trust import ascii_domain
from storage import commit as commits
from storage import outbound, outbox
from storage.accounts import AccountError, AccountInfo, normalize_address
from storage.crypto import MasterKey
from storage.db import Database
from storage.mailstore import Delivered, Delivery, MailStore, Recipient, seal
from storage.outbound import QueuedRecipient

if TYPE_CHECKING:
    from server.ops.metrics import ServerMetrics

log = structlog.get_logger("hygie.pipeline")
#: Messages up to this size are parsed and encrypted on the event loop (well under a
#: millisecond); larger ones in a worker thread, so that no session stalls meanwhile.
INLINE_LIMIT = 128 * 1024


class Origin(StrEnum):
    SUBMISSION = "submission"  # an account of ours, authenticated (RFC 6409)
    RELAY = "relay"  # another operator, over mutual TLS (the port-25 role)
    INTERNAL = "internal"  # written by Hygie itself (DSN, MDN, reminders, filing, notices)


ALL_ORIGINS = frozenset(Origin)
NO_DSN = dsn.DsnMail(None, None)
FROM_OUTSIDE = frozenset({Origin.SUBMISSION, Origin.RELAY})


@dataclass(frozen=True)
class Envelope:
    """What the listener established about a message (RFC 5321 envelope and more)."""

    origin: Origin
    sender: str  # the reverse-path; "" for the null one
    local: tuple[Recipient, ...] = ()
    remote: tuple[QueuedRecipient, ...] = ()
    account: AccountInfo | None = None  # the authenticated submitter
    peer: str = "unknown"
    mail: dsn.DsnMail = NO_DSN
    #: (account id, address as given, RCPT DSN parameters) of local recipients.
    notify: tuple[tuple[int, str, dsn.DsnRcpt], ...] = ()
    trace: Trace | None = None

    def to_json(self) -> dict[str, Any]:
        """What the outbox keeps (encrypted) for the after-commit work."""
        return {
            "origin": str(self.origin),
            "sender": self.sender,
            "local": [
                [r.account_id, r.address, r.public_key.hex(), r.folder_id] for r in self.local
            ],
            "remote": [r.address for r in self.remote],
            "account": [self.account.id, self.account.address] if self.account else None,
            "peer": self.peer,
            "mail": [self.mail.ret, self.mail.envid],
            "notify": [
                [i, a, sorted(p.notify) if p.notify is not None else None, p.orcpt]
                for i, a, p in self.notify
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Envelope:
        account = data["account"]
        return cls(
            origin=Origin(data["origin"]),
            sender=data["sender"],
            local=tuple(
                Recipient(int(i), str(a), bytes.fromhex(k), int(f)) for i, a, k, f in data["local"]
            ),
            remote=tuple(QueuedRecipient(a, a.rsplit("@", 1)[-1]) for a in data["remote"]),
            account=AccountInfo(int(account[0]), str(account[1]), False, False)
            if account
            else None,
            peer=data["peer"],
            mail=dsn.DsnMail(*data["mail"]),
            notify=tuple(
                (int(i), str(a), dsn.DsnRcpt(frozenset(n) if n is not None else None, o))
                for i, a, n, o in data["notify"]
            ),
        )


@dataclass
class Plan:
    """What the route hooks decide: the mailboxes that get a copy, records written in the
    commit, and the after-commit jobs (step name, JSON data)."""

    inbox: list[Recipient]
    records: list[Callable[[Connection], None]] = field(default_factory=list)
    jobs: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: No report returns the whole message (``RET=HDRS`` whatever was asked): it holds a
    #: document masked from professionals (MSSanté test case 17), its sender's mailbox included.
    headers_only: bool = False

    def skip(self, account_ids: set[int]) -> None:
        self.inbox = [r for r in self.inbox if r.account_id not in account_ids]


@dataclass(frozen=True)
class AfterWork:
    """One job of the outbox: the message as committed, its envelope, the step's data."""

    message: Message
    envelope: Envelope
    data: dict[str, Any]


class Step:
    """A stage of the pipeline. Each hook is optional; ``origins`` says which messages it
    sees. ``check`` may refuse (a reply), ``route`` may change the plan, ``after`` runs from
    the outbox once the message is committed (each write in it named with
    :func:`storage.db.effect`, so a run after a crash does not write twice), ``committed``
    runs in this process once the message is durable (best effort: lost with the process)."""

    name: ClassVar[str]
    origins: ClassVar[frozenset[Origin]] = ALL_ORIGINS

    async def check(self, message: Message, envelope: Envelope) -> str | None:
        return None

    async def route(self, message: Message, envelope: Envelope, plan: Plan) -> None:
        return None

    async def after(self, work: AfterWork) -> None:
        return None

    async def committed(
        self, message: Message, envelope: Envelope, inbox: Sequence[Recipient]
    ) -> None:
        """``inbox``: the mailboxes that got a copy."""
        return None


@dataclass(frozen=True)
class Outcome:
    """The pipeline's answer: the reply, and what was committed when it was a ``250``."""

    reply: str
    queue_id: str = ""
    delivered: tuple[Delivered, ...] = ()
    accepted: bool = False
    skipped: bool = False  # a claim said the message was already delivered


#: Trace of the messages Hygie writes itself.
def local_trace(config: Config) -> Trace:
    host = config.server.hostname
    return Trace(helo=host, peer_ip="127.0.0.1", protocol="ESMTP", tls="local", hostname=host)


def mss_nil_field(config: Config) -> bytes:
    """``X-MSS-NIL`` (MSSanté ECO.2.4.3), on every message Hygie writes itself."""
    value = "".join(c for c in config.server.mss_nil if c.isprintable()) or "HYGIE"
    return f"X-MSS-NIL: {value}\r\n".encode()


class Pipeline:
    def __init__(
        self,
        config: Config,
        db: Database,
        master: MasterKey,
        store: MailStore,
        *,
        is_trusted: Callable[[str], bool] = lambda domain: False,
        signer: DkimSigner | None = None,
    ) -> None:
        self.config = config
        self.db = db
        self.master = master
        self.store = store
        self.is_trusted = is_trusted
        self.signer = signer
        self.steps: list[Step] = []
        self.metrics: ServerMetrics | None = None
        #: Called once a commit holds an outbound queue entry / outbox jobs.
        self.queued: Callable[[], None] = lambda: None
        self.jobs_waiting: Callable[[], None] = lambda: None
        #: Given each message committed with jobs (the outbox runner keeps it a moment).
        self.remember: Callable[[str, Message], None] = lambda blob_id, message: None
        self.in_flight = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self._background: set[asyncio.Task[None]] = set()

    async def parse(self, raw: bytes) -> Message:
        """The one parse of a message (in a worker thread when it is large), counted."""
        if len(raw) <= INLINE_LIMIT:
            message = parsing.parse(raw)
        else:
            message = await asyncio.to_thread(parsing.parse, raw)
        if self.metrics is not None:
            self.metrics.parses.inc()
        return message

    def step(self, name: str) -> Step:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)

    # -- the path ------------------------------------------------------------------------------

    async def accept(
        self,
        raw: bytes,
        envelope: Envelope,
        *,
        claim: Callable[[Connection], bool] | None = None,
    ) -> Outcome:
        """Take one message down the pipeline; durable when the outcome is accepted."""
        self.in_flight += 1
        self.idle.clear()
        try:
            return await self._accept(raw, envelope, claim)
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self.idle.set()

    async def _accept(
        self, raw: bytes, envelope: Envelope, claim: Callable[[Connection], bool] | None
    ) -> Outcome:
        queue_id = new_queue_id()
        if envelope.trace is not None:
            raw = received_field(envelope.trace, queue_id) + raw
        message = await self.parse(raw)
        steps = [s for s in self.steps if envelope.origin in s.origins]
        for s in steps:
            try:
                refusal = await s.check(message, envelope)
            except Exception as exc:  # our bug: the client retries later, nothing is kept
                log.error("pipeline_step_failed", step=s.name, hook="check",
                          error=type(exc).__name__, exc_info=exc)  # fmt: skip
                return Outcome(S.S451_LOCAL_ERROR)
            if refusal is not None:
                return Outcome(refusal)
        plan = Plan(inbox=list(envelope.local))
        for s in steps:
            try:
                await s.route(message, envelope, plan)
            except Exception as exc:  # a step's bug must not lose the message: delivered as is
                log.error("pipeline_step_failed", step=s.name, hook="route",
                          error=type(exc).__name__, exc_info=exc)  # fmt: skip
        if plan.headers_only:  # what the queue's and the success DSNs return (RFC 3461 §4.3)
            envelope = replace(envelope, mail=dsn.DsnMail("HDRS", envelope.mail.envid))
        started = time.perf_counter()
        try:
            done = await self._commit(message, envelope, plan, claim)
        except Exception as exc:
            log.error("delivery_failed", error=type(exc).__name__)
            return Outcome(S.S451_LOCAL_ERROR)
        if self.metrics is not None and done.delivered:
            self.metrics.delivery.observe(time.perf_counter() - started)
        if done.skipped:
            return Outcome(S.S250_ACCEPTED, queue_id, skipped=True)
        for d in done.delivered:
            self.store.events.publish(d.folder_id)
        if done.queue_id is not None:
            self.queued()
        if done.outbox_id is not None:
            self.jobs_waiting()
        self._after_commit(steps, message, envelope, plan.inbox)
        return Outcome(
            f"{S.S250_ACCEPTED} as {queue_id}", queue_id, tuple(done.delivered), accepted=True
        )

    async def _commit(
        self,
        message: Message,
        envelope: Envelope,
        plan: Plan,
        claim: Callable[[Connection], bool] | None,
    ) -> commits.Committed:
        raw = message.raw
        delivery = None
        if plan.inbox or plan.jobs:
            meta = dict(parsing.meta_of(message))
            meta.setdefault("internaldate", datetime.now(UTC).isoformat())
            meta.setdefault("size", len(raw))
            publics = [r.public_key for r in plan.inbox]
            if len(raw) <= INLINE_LIMIT:
                sealed = seal(raw, meta, publics)
            else:
                sealed = await asyncio.to_thread(seal, raw, meta, publics)
            delivery = Delivery(tuple(plan.inbox), sealed, "", len(raw))
        queued = None
        if envelope.remote:
            queued = await asyncio.to_thread(self._queued, raw, envelope)
        entry = None
        if plan.jobs and delivery is not None:
            entry = outbox.prepare(
                self.master, delivery.sealed.key, delivery.sealed.blob_id,
                envelope.to_json(), plan.jobs,
            )  # fmt: skip
        commit = commits.Commit(delivery, queued, entry, tuple(plan.records), claim)
        done = await commits.run(self.db, commit)
        if entry is not None and not done.skipped:
            self.remember(entry.blob_id, message)
        return done

    def _queued(self, raw: bytes, envelope: Envelope) -> outbound.Queued:
        """DKIM-signed (RFC 6376) for our sender's domain, encrypted for the queue."""
        sender = envelope.sender
        if sender and "@" in sender and self.signer is not None:
            raw = self.signer.sign(raw, sender.rsplit("@", 1)[1])
        return outbound.prepare(
            self.master, raw, sender, envelope.remote, envid=envelope.mail.envid,
            ret=envelope.mail.ret,
        )  # fmt: skip

    def _after_commit(
        self,
        steps: list[Step],
        message: Message,
        envelope: Envelope,
        inbox: Sequence[Recipient],
    ) -> None:
        async def run() -> None:
            for s in steps:
                try:
                    await s.committed(message, envelope, inbox)
                except Exception as exc:  # durable already: only this step's work is lost
                    log.warning("pipeline_step_failed", step=s.name, hook="committed",
                                error=type(exc).__name__)  # fmt: skip

        # A context of its own: not the outbox job's (its writes are not the job's effects).
        task = asyncio.get_running_loop().create_task(run(), context=contextvars.Context())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self, grace: float) -> None:
        """At shutdown: messages in flight, then the in-process work of committed ones."""
        try:
            await asyncio.wait_for(self.idle.wait(), timeout=grace)
        except TimeoutError:
            log.warning("pipeline_drain_timeout", in_flight=self.in_flight)
        if self._background:
            await asyncio.wait(list(self._background), timeout=grace)

    # -- what Hygie writes itself -----------------------------------------------------------

    async def notice(
        self,
        raw: bytes,
        to: str,
        *,
        claim: Callable[[Connection], bool] | None = None,
    ) -> bool:
        """Deliver a message Hygie wrote (DSN, MDN, answer, reminder…) to ``to``: into its
        mailbox when local, else queued to its operator, with the null reverse-path (RFC
        3461 §6.1, RFC 8098 §2.1: no notice answers a notice). False if it cannot go
        anywhere (or, with ``claim``, if it was sent already)."""
        if "@" not in to:
            return False
        try:
            address = normalize_address(to)
        except AccountError:
            return False
        domain = address.rsplit("@", 1)[1]
        if b"x-mss-nil:" not in raw[: raw.find(b"\r\n\r\n") + 2].lower():
            raw = mss_nil_field(self.config) + raw
        if self.config.is_local_domain(domain):
            local = await self.store.resolve(address)
            if local is None:
                log.warning("notice_undeliverable")
                return False
            envelope = Envelope(Origin.INTERNAL, "", local=(local,), trace=local_trace(self.config))
        elif self.is_trusted(domain):
            target = QueuedRecipient(address, ascii_domain(domain), None, "NEVER")
            envelope = Envelope(Origin.INTERNAL, "", remote=(target,))
        else:
            log.warning("notice_undeliverable")
            return False
        outcome = await self.accept(raw, envelope, claim=claim)
        return outcome.accepted

    async def file(self, raw: bytes, recipient: Recipient) -> Delivered:
        """Put a message Hygie wrote into one mailbox folder (``recipient.folder_id``), e.g. a
        document in the patient's ``Dossier``: no trace field, no X-MSS-NIL (not mail)."""
        outcome = await self.accept(raw, Envelope(Origin.INTERNAL, "", local=(recipient,)))
        if not outcome.delivered:
            raise RuntimeError(f"filing failed: {outcome.reply}")
        return outcome.delivered[0]


Notify = Callable[[bytes, str], Awaitable[bool]]
