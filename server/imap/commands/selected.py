"""Selected state (RFC 9051 §6.4): CHECK, CLOSE, UNSELECT, EXPUNGE, UID EXPUNGE (RFC 4315),
STORE; and :func:`sync`, which tells the client what other sessions and deliveries changed."""

from __future__ import annotations

from server.imap.proto import commands as c
from server.imap.proto import response as r
from server.imap.proto.sequence import SequenceSet
from server.imap.proto.states import State
from server.imap.session import Session

STORABLE_SYSTEM_FLAGS = {"\\answered", "\\flagged", "\\deleted", "\\seen", "\\draft"}


async def sync(s: Session, *, allow_expunge: bool, with_uid: bool) -> None:
    """Send the untagged updates of the selected folder (nothing if none is selected)."""
    view = s.selected
    if view is None:
        return
    refs = await s.store.messages(view.info.id)
    updates = view.sync(refs, allow_expunge=allow_expunge, with_uid=with_uid)
    if updates:
        await s.send(*updates)


def _deselect(s: Session) -> None:
    s.selected = None
    s.state = State.AUTHENTICATED


async def check(s: Session, cmd: c.Check) -> None:
    await sync(s, allow_expunge=True, with_uid=False)
    await s.ok(cmd.tag, "CHECK completed")


async def close(s: Session, cmd: c.Close) -> None:
    view = s.selected
    assert view is not None
    if not view.readonly:
        # RFC 9051 §6.4.1: CLOSE expunges silently.
        await s.store.expunge(view.info.id)
    _deselect(s)
    await s.ok(cmd.tag, "CLOSE completed")


async def unselect(s: Session, cmd: c.Unselect) -> None:
    _deselect(s)
    await s.ok(cmd.tag, "UNSELECT completed")


async def expunge(s: Session, cmd: c.Expunge) -> None:
    view = s.selected
    assert view is not None
    if view.readonly:
        await s.no(cmd.tag, "Mailbox is read-only", r.Code.READ_ONLY)
        return
    uids = None
    if cmd.uid and cmd.sequence_set is not None:
        uids = [uid for _, uid in view.resolve(cmd.sequence_set, uid=True)]
    await s.store.expunge(view.info.id, uids)
    await sync(s, allow_expunge=True, with_uid=cmd.uid)
    await s.ok(cmd.tag, "EXPUNGE completed")


async def store(s: Session, cmd: c.Store) -> None:
    view = s.selected
    assert view is not None
    if view.readonly:
        await s.no(cmd.tag, "Mailbox is read-only", r.Code.READ_ONLY)
        return
    flags = []
    for flag in cmd.flags:
        if flag.startswith("\\"):
            if flag.lower() not in STORABLE_SYSTEM_FLAGS:
                await s.bad(cmd.tag, f"Cannot store {flag}")
                return
            flag = "\\" + flag[1:].capitalize()
        flags.append(flag)
    targets = view.resolve(cmd.sequence_set, uid=cmd.uid)
    changed = await s.store.store_flags(
        view.info.id, [uid for _, uid in targets], flags, cmd.mode, cmd.unchanged_since
    )
    changed_uids = {m.uid for m in changed}
    for m in changed:
        view.flags[m.uid] = m.flags
        view.modseq[m.uid] = m.modseq
    responses: list[r.Response] = []
    modified: list[int] = []
    for seq, uid in targets:
        if cmd.unchanged_since is not None and uid not in changed_uids:
            if view.modseq.get(uid, 0) > cmd.unchanged_since:
                modified.append(uid if cmd.uid else seq)
                continue
        if cmd.silent and uid in changed_uids:
            continue
        items: list[tuple[str, r.Value]] = [
            ("FLAGS", [r.Atom(f) for f in sorted(view.flags.get(uid, frozenset()))])
        ]
        if cmd.uid:
            items.append(("UID", uid))
        responses.append(r.FetchResponse(seq, items))
    await s.send(*responses)
    await sync(s, allow_expunge=cmd.uid, with_uid=cmd.uid)
    if modified:
        await s.ok(cmd.tag, "Conditional STORE failed", r.Code.modified(SequenceSet.of(*modified)))
    else:
        await s.ok(cmd.tag, "STORE completed")
