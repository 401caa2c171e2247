"""Selected state (RFC 9051 §6.4): CHECK, CLOSE, UNSELECT, EXPUNGE, UID EXPUNGE (RFC 4315),
STORE (with CONDSTORE's UNCHANGEDSINCE, RFC 7162), COPY, MOVE (RFC 6851); and :func:`sync`,
which tells the client what other sessions and deliveries changed."""

from __future__ import annotations

from server.imap.proto import commands as c
from server.imap.proto import response as r
from server.imap.proto.sequence import SequenceSet
from server.imap.proto.states import State
from server.imap.readonly import refuse_read_only
from server.imap.selected import SelectedFolder
from server.imap.session import Session
from storage import audit, recent

STORABLE_SYSTEM_FLAGS = {"\\answered", "\\flagged", "\\deleted", "\\seen", "\\draft"}


async def sync(s: Session, *, allow_expunge: bool, with_uid: bool) -> None:
    """Send the untagged updates of the selected folder (nothing if none is selected)."""
    view = s.selected
    if view is None:
        return
    changes = await s.store.changes(view.info.id, view.modseq)
    updates = view.apply(
        changes,
        allow_expunge=allow_expunge,
        with_uid=with_uid,
        condstore=s.condstore,
        qresync=s.qresync,
    )
    if view.arrived and not s.rev2:
        # RFC 3501 §2.3.2 / §7.3.2: new messages are recent in the first session told.
        await claim_recent(s, view, view.arrived)
        updates.append(r.recent(len(view.recent)))
    if updates:
        await s.send(*updates, more=True)


async def claim_recent(s: Session, view: SelectedFolder, uids: list[int]) -> None:
    """Make the recent ones among ``uids`` (ascending) recent in this session: claimed when
    the folder is read-write, only read when it was EXAMINEd (RFC 3501 §6.3.2)."""
    if not uids:
        return
    if view.readonly:
        first = await recent.first_recent(s.store.db, view.info.id)
        start, end = (first, uids[-1] + 1) if first is not None else (0, 0)
    else:
        start, end = await recent.claim(s.store.db, view.info.id, uids[-1] + 1)
    view.recent.update(u for u in uids if start <= u < end)


async def enable_condstore(s: Session) -> None:
    """RFC 7162 §3.1: a CONDSTORE-enabling command (FETCH MODSEQ or CHANGEDSINCE, SEARCH
    MODSEQ, STORE UNCHANGEDSINCE) turns CONDSTORE on; the first one in the selected state is
    preceded by ``* OK [HIGHESTMODSEQ n]``."""
    if s.condstore:
        return
    s.enabled.add("CONDSTORE")
    view = s.selected
    if view is not None:
        info = await s.store.refresh(view.info.id)
        highest = info.highestmodseq if info is not None else view.modseq
        await s.send(
            r.UntaggedStatus("OK", "Highest", r.Code.highestmodseq(highest)), more=True
        )


def _deselect(s: Session) -> None:
    s.saved_uids = []  # RFC 5182 §2.1
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
        await _audited(s, await s.store.expunge(view.info.id))
    _deselect(s)
    await s.ok(cmd.tag, "CLOSE completed")


async def unselect(s: Session, cmd: c.Unselect) -> None:
    _deselect(s)
    await s.ok(cmd.tag, "UNSELECT completed")


async def _audited(s: Session, expunged: list[int]) -> None:
    """Deletions are in the audit log (MSSanté test case 19): which folder, which UIDs."""
    view = s.selected
    if expunged and view is not None:
        await audit.record(
            s.store.db, f"account:{view.info.account_id}", "mail.expunge",
            f"folder:{view.info.id}", peer=s.peer,
            detail={"count": len(expunged), "uids": expunged[:100]},
        )  # fmt: skip


async def expunge(s: Session, cmd: c.Expunge) -> None:
    view = s.selected
    assert view is not None
    if view.readonly:
        await s.no(cmd.tag, "Mailbox is read-only", r.Code.READ_ONLY)
        return
    uids = None
    if cmd.uid and cmd.sequence_set is not None:
        uids = [uid for _, uid in s.resolve(cmd.sequence_set, uid=True)]
    await _audited(s, await s.store.expunge(view.info.id, uids))
    await sync(s, allow_expunge=True, with_uid=cmd.uid)
    code = r.Code.highestmodseq(view.modseq) if s.condstore else None
    await s.ok(cmd.tag, "EXPUNGE completed", code)


def _normalize_flags(flags: tuple[str, ...]) -> list[str] | str:
    out = []
    for flag in flags:
        if flag.startswith("\\"):
            if flag.lower() not in STORABLE_SYSTEM_FLAGS:
                return f"Cannot store {flag}"
            flag = "\\" + flag[1:].capitalize()
        out.append(flag)
    return out


async def store(s: Session, cmd: c.Store) -> None:
    view = s.selected
    assert view is not None
    if view.readonly:
        await s.no(cmd.tag, "Mailbox is read-only", r.Code.READ_ONLY)
        return
    flags = _normalize_flags(cmd.flags)
    if isinstance(flags, str):
        await s.bad(cmd.tag, flags)
        return
    if cmd.unchanged_since is not None:
        await enable_condstore(s)
    targets = s.resolve(cmd.sequence_set, uid=cmd.uid)
    uids = [uid for _, uid in targets]
    changed = {
        m.uid: m
        for m in await s.store.store_flags(view.info.id, uids, flags, cmd.mode, cmd.unchanged_since)
    }
    # Messages the STORE left unchanged are reported as they are (one more read, if any).
    unchanged = [u for u in uids if u not in changed]
    current = await s.store.flags(view.info.id, unchanged) if unchanged else {}
    responses: list[r.Response] = []
    modified: list[int] = []
    for seq, uid in targets:
        ref = changed.get(uid) or current.get(uid)
        if ref is None:
            continue  # expunged meanwhile
        if (
            cmd.unchanged_since is not None
            and uid not in changed
            and ref.modseq > cmd.unchanged_since
        ):
            modified.append(uid if cmd.uid else seq)
            continue
        if uid in changed:
            view.note_reported(uid, ref.modseq)
        if cmd.silent and not (s.condstore and uid in changed):
            continue
        items: list[tuple[str, r.Value]] = []
        if cmd.uid:
            items.append(("UID", uid))
        if not cmd.silent:
            items.append(("FLAGS", view.flags_of(uid, ref.flags)))
        if s.condstore:
            items.append(("MODSEQ", [ref.modseq]))
        responses.append(r.FetchResponse(seq, items))
    # RFC 9051 §7.3.5: a new keyword is announced before the FETCH that shows it.
    responses[:0] = view.announce(*(m.flags for m in changed.values()))
    await s.send(*responses, more=True)
    await sync(s, allow_expunge=cmd.uid, with_uid=cmd.uid)
    if modified:
        code = r.Code.modified(SequenceSet.of(*modified))
        await s.ok(cmd.tag, "Conditional STORE failed for some messages", code)
    else:
        await s.ok(cmd.tag, "STORE completed")


async def copy(s: Session, cmd: c.Copy) -> None:
    await _copy_or_move(s, cmd.tag, cmd.sequence_set, cmd.mailbox, uid=cmd.uid, move=False)


async def move(s: Session, cmd: c.Move) -> None:
    await _copy_or_move(s, cmd.tag, cmd.sequence_set, cmd.mailbox, uid=cmd.uid, move=True)


async def _copy_or_move(
    s: Session, tag: str, sequence_set: SequenceSet, mailbox: str, *, uid: bool, move: bool
) -> None:
    view = s.selected
    assert view is not None and s.account is not None
    if move and view.readonly:
        await s.no(tag, "Mailbox is read-only", r.Code.READ_ONLY)
        return
    target = await s.store.folder(s.account.id, mailbox)
    if target is None:
        await s.no(tag, "No such mailbox", r.Code.TRYCREATE)
        return
    if await refuse_read_only(s, tag, target.name):
        return
    targets = s.resolve(sequence_set, uid=uid)
    if not targets:
        await s.ok(tag, "Nothing to " + ("move" if move else "copy"))
        return
    pairs = await s.store.copy(view.info.id, [u for _, u in targets], target.id, move=move)
    name = "MOVE" if move else "COPY"
    if not pairs:
        await s.no(tag, f"{name} failed: messages were expunged", r.Code.EXPUNGEISSUED)
        return
    code = r.Code.copyuid(
        target.uidvalidity,
        SequenceSet.of(*(p[0] for p in pairs)),
        SequenceSet.of(*(p[1] for p in pairs)),
    )
    if move:
        # RFC 6851 §4.3: COPYUID in an untagged OK, then the expunges, then the tagged OK.
        await s.send(r.UntaggedStatus("OK", "Moved", code), more=True)
        await sync(s, allow_expunge=True, with_uid=uid)
        await s.ok(tag, "MOVE completed")
    else:
        await sync(s, allow_expunge=uid, with_uid=uid)
        await s.ok(tag, "COPY completed", code)
