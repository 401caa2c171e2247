"""The usage indicators of each message (issue 11 item 4) counted once it is committed: a
submitted message, a message relayed in (:class:`server.ops.usage.UsageRecorder`). Counters
are best effort (buffered, flushed by the recorder): a crashed process loses what it had not
flushed, never a message."""

from __future__ import annotations

from collections.abc import Sequence

from server.delivery.message import Message
from server.delivery.pipeline import FROM_OUTSIDE, Envelope, Origin, Step
from server.ops.usage import UsageRecorder
from storage.mailstore import Recipient


class UsageCounting(Step):
    name = "usage"
    origins = FROM_OUTSIDE

    def __init__(self, usage: UsageRecorder) -> None:
        self.usage = usage

    async def committed(
        self, message: Message, envelope: Envelope, inbox: Sequence[Recipient]
    ) -> None:
        nil = message.header("X-MSS-NIL")
        if envelope.origin is Origin.SUBMISSION:
            await self.usage.submitted(nil, envelope.sender, inbox, len(envelope.remote))
        else:
            await self.usage.relayed(nil, inbox)
