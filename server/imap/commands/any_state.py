"""Commands valid in any state (RFC 9051 §6.1): CAPABILITY, NOOP, LOGOUT; ID (RFC 2971)."""

from __future__ import annotations

from server.imap.capabilities import capabilities
from server.imap.commands.selected import sync
from server.imap.proto import commands as c
from server.imap.proto import response as r
from server.imap.proto.states import State
from server.imap.session import Session


async def capability(s: Session, cmd: c.Capability) -> None:
    await s.send(r.capability(capabilities(s)), more=True)
    await s.ok(cmd.tag, "CAPABILITY completed")


async def noop(s: Session, cmd: c.Noop) -> None:
    # RFC 9051 §6.1.2: NOOP is how a client polls for updates.
    await sync(s, allow_expunge=True, with_uid=False)
    await s.ok(cmd.tag, "NOOP completed")


async def logout(s: Session, cmd: c.Logout) -> None:
    await s.send(r.UntaggedStatus("BYE", "Hygie logging out"))
    await s.ok(cmd.tag, "LOGOUT completed")
    s.state = State.LOGOUT


async def id_(s: Session, cmd: c.Id) -> None:
    await s.send(
        r.id_data({"name": "Hygie", "vendor": "Hygie", "support-url": None}), more=True
    )
    await s.ok(cmd.tag, "ID completed")
