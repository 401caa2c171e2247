"""Success reports (RFC 3461 §4.1, RFC 3464): a sender who asked ``NOTIFY=SUCCESS`` for a
recipient here gets a ``delivered`` DSN once the message is committed. An after-commit job:
the report is written once, even if the process dies midway (:mod:`server.delivery.outbox`).
Failure and delay reports for remote recipients are the outbound queue's.
"""

from __future__ import annotations

import datetime as dt

import structlog

from mailformats import dsn
from server.config import Config
from server.delivery.message import Message
from server.delivery.pipeline import FROM_OUTSIDE, AfterWork, Envelope, Notify, Plan, Step
from storage.db import effect

log = structlog.get_logger("hygie.receipts")


class DeliveryReports(Step):
    name = "dsn-success"
    origins = FROM_OUTSIDE

    def __init__(self, config: Config, notice: Notify) -> None:
        self.config = config
        self.notice = notice

    async def route(self, message: Message, envelope: Envelope, plan: Plan) -> None:
        if dsn.is_bounce(envelope.sender) or "@" not in envelope.sender:
            return
        kept = {r.account_id for r in plan.inbox}
        wanted = [
            [address, params.orcpt]
            for account_id, address, params in envelope.notify
            if account_id in kept and params.notify and dsn.wants(params.notify, "delivered")
        ]
        if wanted:
            at = dt.datetime.now(dt.UTC).isoformat()
            plan.jobs.append((self.name, {"recipients": wanted, "at": at}))

    async def after(self, work: AfterWork) -> None:
        sender = work.envelope.sender
        at = dt.datetime.fromisoformat(work.data["at"])
        statuses = [
            dsn.RecipientStatus(
                final_recipient=address, action="delivered", status="2.0.0",
                original_recipient=orcpt, last_attempt=at,
            )
            for address, orcpt in work.data["recipients"]
        ]
        raw = dsn.build_report(
            reporting_mta=self.config.server.hostname,
            postmaster=self.config.postmaster_for(sender),
            sender=sender,
            original=work.message.raw,
            recipients=statuses,
            envid=work.envelope.mail.envid,
            ret=work.envelope.mail.ret,
            arrival=at,
            message_id_domain=self.config.server.hostname,
        )
        with effect("report"):
            if await self.notice(raw, sender):
                log.info("dsn_sent", action="delivered")
