"""Manifests by message (issue 10 item 2): a message to ``catalogue@<domain>`` carrying one
JSON manifest (``application/json``, or a ``.json`` attachment) from an editor's organisation
mailbox of this operator. After delivery the manifest is checked (:mod:`catalogue.manifest`,
then :meth:`catalogue.registry.Catalogue.check`) and recorded; the sender gets back an
acknowledgement or the list of every problem, from ``catalogue@<domain>``.

Only submission hands manifests over: a manifest relayed from another operator cannot prove
its sender's organisation here, so it is answered with that refusal. Logs say what came of a
manifest, never its content.
"""

from __future__ import annotations

import email.policy
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from email.parser import BytesParser

import structlog

from catalogue import notices
from catalogue.manifest import MAX_BYTES, ManifestError, parse
from catalogue.registry import Catalogue, CatalogueError
from server.config import Config
from storage.mailstore import Recipient

log = structlog.get_logger("hygie.catalogue")
SERVICE = notices.SERVICE
Notify = Callable[[bytes, str], Awaitable[None]]


def find_manifests(message: EmailMessage) -> list[bytes]:
    """The JSON parts of a message (``application/json`` or a ``*.json`` file name)."""
    found = []
    for part in message.walk():
        if part.is_multipart():
            continue
        name = (part.get_filename() or "").lower()
        if part.get_content_type() == "application/json" or name.endswith(".json"):
            payload = part.get_payload(decode=True)
            found.append(payload if isinstance(payload, bytes) else b"")
    return found


def _automatic(message: EmailMessage) -> bool:
    """``Auto-Submitted`` with a value other than ``no`` (RFC 3834 §5): a vacation notice,
    another robot's answer; answering it could start a loop between robots."""
    value = str(message.get("Auto-Submitted", "no")).split(";")[0].strip().lower()
    return value != "no"


class CatalogueWorkflow:
    SERVICE = SERVICE

    def __init__(self, config: Config, catalogue: Catalogue, notify: Notify) -> None:
        self.config = config
        self.catalogue = catalogue
        self.notify = notify

    def is_service(self, address: str) -> bool:
        local, _, domain = address.lower().rpartition("@")
        return local == SERVICE and self.config.is_local_domain(domain)

    async def after_delivery(
        self, raw: bytes, sender: str, recipients: list[Recipient], *, submitted: bool = False
    ) -> None:
        """Never raises: the message is delivered already (errors are logged)."""
        service = next((r.address for r in recipients if self.is_service(r.address)), None)
        if service is None or not sender:
            return
        try:
            await self._process(raw, sender.lower(), service, submitted)
        except Exception as exc:
            log.error("catalogue_workflow_failed", error=type(exc).__name__, exc_info=exc)

    async def _process(self, raw: bytes, sender: str, service: str, submitted: bool) -> None:
        message = BytesParser(policy=email.policy.default).parsebytes(raw)
        assert isinstance(message, EmailMessage)
        if _automatic(message):  # RFC 3834 §2: no automatic answer to an automatic message
            log.info("catalogue_auto_submitted_ignored")
            return
        reply_to = str(message.get("Message-ID", "")).strip() or None
        domain = self.config.server.hostname
        if not submitted:
            problems = ["manifests are accepted only from a mailbox of this operator"]
        else:
            problems = await self._submit(message, sender, service, reply_to)
            if not problems:
                return
        log.info("catalogue_manifest_refused", problems=len(problems))
        await self.notify(notices.errors(service, sender, problems, domain, reply_to), sender)

    async def _submit(
        self, message: EmailMessage, sender: str, service: str, reply_to: str | None
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
            manifest = parse(data)
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
            done = await self.catalogue.submit(manifest, sender, actor)
        except CatalogueError as exc:
            return [str(exc)]
        log.info("catalogue_manifest_accepted", app=done.app.id, version=done.version)
        ack = notices.acknowledgement(
            service, sender, done.app, done.version, manifest.version,
            self.config.server.hostname, reply_to,
        )  # fmt: skip
        await self.notify(ack, sender)
        return []
