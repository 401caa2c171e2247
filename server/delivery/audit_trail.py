"""The audit trail of submissions (MSSanté test case 19, design.md §4): each message an
account submits leaves one audit entry, written in the message's own commit, so that a
message is never sent without its entry nor the entry written for a message refused.

The entry names the account, the client's address, the number of recipients and a digest of
the Message-ID (to find the message again without writing what a client put in it: a
Message-ID is free text and could carry an identifier)."""

from __future__ import annotations

import hashlib

from sqlalchemy.engine import Connection

from server.delivery.message import Message
from server.delivery.pipeline import Envelope, Origin, Plan, Step
from storage.audit import write_entry


class SubmissionAudit(Step):
    name = "audit"
    origins = frozenset({Origin.SUBMISSION})

    async def route(self, message: Message, envelope: Envelope, plan: Plan) -> None:
        account = envelope.account
        if account is None:
            return
        message_id = (message.header("Message-ID") or "").strip()
        digest = hashlib.sha256(message_id.encode()).hexdigest()[:24] if message_id else "-"
        recipients = len(envelope.local) + len(envelope.remote)
        actor, peer = f"account:{account.id}", envelope.peer

        def write(conn: Connection) -> None:
            write_entry(conn, actor, "mail.send", f"message:{digest}", peer=peer,
                        detail={"recipients": recipients})  # fmt: skip

        plan.records.append(write)
