"""Manifests by message (issue 10 item 2), a step of the pipeline: a message to
``catalogue@<domain>`` carrying one JSON manifest (``application/json``, or a ``.json``
attachment) from an editor's organisation mailbox of this operator. Once the message is
committed (an after-commit job, each write an outbox effect) the manifest is checked
(:mod:`catalogue.manifest`, then :meth:`catalogue.registry.Catalogue.check`) and recorded;
the sender gets back an acknowledgement or the list of every problem, from
``catalogue@<domain>``.

Only submission hands manifests over: a manifest relayed from another operator cannot prove
its sender's organisation here, so it is answered with that refusal. Logs say what came of a
manifest, never its content.
"""

from __future__ import annotations

import asyncio

import structlog

from catalogue import notices
from catalogue.manifest import MAX_BYTES, ManifestError, parse
from catalogue.registry import Catalogue, CatalogueError
from server.config import Config
from server.delivery.message import Message
from server.delivery.pipeline import (
    FROM_OUTSIDE,
    AfterWork,
    Envelope,
    Notify,
    Origin,
    Plan,
    Step,
)
from storage.db import effect

log = structlog.get_logger("hygie.catalogue")
SERVICE = notices.SERVICE


def find_manifests(message: Message, most: int = 2) -> list[bytes]:
    """The JSON parts of a message (``application/json`` or a ``*.json`` file name), the
    first ``most`` of them: one is wanted, a second is enough to refuse (issue 26: a
    message of thousands of parts is not decoded whole)."""
    found: list[bytes] = []
    for leaf in message.leaves():
        name = (leaf.filename or "").lower()
        if leaf.content_type == "application/json" or name.endswith(".json"):
            found.append(message.decoded(leaf) or b"")
            if len(found) >= most:
                break
    return found


def _automatic(message: Message) -> bool:
    """``Auto-Submitted`` with a value other than ``no`` (RFC 3834 §5): a vacation notice,
    another robot's answer; answering it could start a loop between robots."""
    value = (message.header("Auto-Submitted") or "no").split(";")[0].strip().lower()
    return value != "no"


class CatalogueWorkflow(Step):
    SERVICE = SERVICE
    name = "catalogue"
    origins = FROM_OUTSIDE

    def __init__(self, config: Config, catalogue: Catalogue, notify: Notify) -> None:
        self.config = config
        self.catalogue = catalogue
        self.notify = notify

    def is_service(self, address: str) -> bool:
        local, _, domain = address.lower().rpartition("@")
        return local == SERVICE and self.config.is_local_domain(domain)

    async def route(self, message: Message, envelope: Envelope, plan: Plan) -> None:
        service = next((r.address for r in plan.inbox if self.is_service(r.address)), None)
        if service is not None and envelope.sender:
            plan.jobs.append((self.name, {"service": service}))

    async def after(self, work: AfterWork) -> None:
        submitted = work.envelope.origin is Origin.SUBMISSION
        await self._process(
            work.message, work.envelope.sender.lower(), work.data["service"], submitted
        )

    async def _process(self, message: Message, sender: str, service: str, submitted: bool) -> None:
        if _automatic(message):  # RFC 3834 §2: no automatic answer to an automatic message
            log.info("catalogue_auto_submitted_ignored")
            return
        reply_to = (message.header("Message-ID") or "").strip() or None
        domain = self.config.server.hostname
        if not submitted:
            problems = ["manifests are accepted only from a mailbox of this operator"]
        else:
            problems = await self._submit(message, sender, service, reply_to)
            if not problems:
                return
        log.info("catalogue_manifest_refused", problems=len(problems))
        with effect("answer"):
            await self.notify(
                notices.errors(service, sender, problems, domain, reply_to), sender
            )

    async def _submit(
        self, message: Message, sender: str, service: str, reply_to: str | None
    ) -> list[str]:
        manifests = find_manifests(message)
        if not manifests:
            return ["no manifest attached (one JSON file, application/json)"]
        if len(manifests) > 1:
            return ["attach exactly one manifest per message"]
        data = manifests[0]
        if len(data) > MAX_BYTES:
            return [f"the manifest is larger than {MAX_BYTES // 1024} KiB"]
        try:
            manifest = await asyncio.to_thread(parse, data)  # bounded: catalogue.manifest
        except ManifestError as exc:
            return exc.problems
        problems = await self.catalogue.check(manifest, sender)
        if problems:
            return problems
        account = await self.catalogue.db.lookup(
            "SELECT id FROM accounts WHERE address = ?", sender
        )
        actor = f"account:{account[0][0]}" if account else sender
        try:
            with effect("submit"):
                done = await self.catalogue.submit(manifest, sender, actor)
        except CatalogueError as exc:
            return [str(exc)]
        log.info("catalogue_manifest_accepted", app=done.app.id, version=done.version)
        ack = notices.acknowledgement(
            service, sender, done.app, done.version, manifest.version,
            self.config.server.hostname, reply_to,
        )  # fmt: skip
        with effect("answer"):
            await self.notify(ack, sender)
        return []
