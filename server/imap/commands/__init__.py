"""IMAP command handlers, grouped by the state they belong to (RFC 9051 §6), and the dispatch
that checks the state table before calling them.

Each handler is ``async def handler(session, command) -> None`` and sends its own responses.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from server.imap.capabilities import capabilities
from server.imap.commands import (
    any_state,
    authenticated,
    fetch,
    not_authenticated,
    search,
    selected,
    sort,
)
from server.imap.proto import commands as c
from server.imap.proto import response as r
from server.imap.proto.states import is_allowed
from server.imap.session import Session

Handler = Callable[[Session, Any], Awaitable[None]]

__all__ = ["HANDLERS", "capabilities", "dispatch"]

HANDLERS: dict[type[c.Command], Handler] = {
    c.Capability: any_state.capability,
    c.Noop: any_state.noop,
    c.Logout: any_state.logout,
    c.Id: any_state.id_,
    c.StartTLS: not_authenticated.starttls,
    c.Login: not_authenticated.login,
    c.Authenticate: not_authenticated.authenticate,
    c.Enable: authenticated.enable,
    c.Select: authenticated.select,
    c.Examine: authenticated.select,
    c.Create: authenticated.create,
    c.List: authenticated.list_,
    c.Lsub: authenticated.lsub,
    c.Namespace: authenticated.namespace,
    c.Status: authenticated.status,
    c.Append: authenticated.append,
    c.Idle: authenticated.idle,
    c.Unauthenticate: authenticated.unauthenticate,
    c.Replace: authenticated.replace,
    c.Compress: authenticated.compress,
    c.Subscribe: authenticated.subscribe,
    c.Delete: authenticated.delete,
    c.Rename: authenticated.rename,
    c.Copy: selected.copy,
    c.Move: selected.move,
    c.Unsubscribe: authenticated.unsubscribe,
    c.Check: selected.check,
    c.Close: selected.close,
    c.Unselect: selected.unselect,
    c.Expunge: selected.expunge,
    c.Store: selected.store,
    c.Fetch: fetch.fetch,
    c.Search: search.search,
    c.Sort: sort.sort,
    c.Thread: sort.thread,
}


async def dispatch(session: Session, command: c.Command) -> None:
    handler = HANDLERS.get(type(command))
    if not is_allowed(session.state, command):
        await session.bad(
            command.tag, f"{command.name} is not allowed in the {session.state.value} state"
        )
        return
    if handler is None:
        await session.send(
            r.TaggedResponse(
                command.tag, "NO", f"{command.name} is not supported yet", r.Code.CANNOT
            )
        )
        return
    await handler(session, command)
