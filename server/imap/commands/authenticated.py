"""Authenticated state (RFC 9051 §6.3): ENABLE, SELECT/EXAMINE, CREATE, LIST, LSUB, NAMESPACE,
STATUS, APPEND (UIDPLUS, RFC 4315), IDLE (RFC 2177), SUBSCRIBE/UNSUBSCRIBE."""

from __future__ import annotations

import asyncio
import re

from server.delivery import describe
from server.imap.proto import commands as c
from server.imap.proto import response as r
from server.imap.proto.events import NEED_DATA, ContinuationLine
from server.imap.proto.sequence import SequenceSet
from server.imap.proto.states import State
from server.imap.selected import SYSTEM_FLAGS, SelectedFolder
from server.imap.session import ConnectionClosed, Session
from storage.mailstore import FolderError, FolderInfo

DELIMITER = "/"


def _account_id(s: Session) -> int:
    assert s.account is not None
    return s.account.id


async def enable(s: Session, cmd: c.Enable) -> None:
    # Nothing optional is enabled yet (UTF8=ACCEPT, CONDSTORE, QRESYNC come with IMAP4rev2).
    await s.send(r.enabled([]))
    await s.ok(cmd.tag, "ENABLE completed")


async def select(s: Session, cmd: c.Select) -> None:
    if s.selected is not None:
        # RFC 9051 §6.3.2: selecting again deselects first, with [CLOSED] (RFC 7162 §3.2.11).
        s.selected = None
        s.state = State.AUTHENTICATED
        await s.send(r.UntaggedStatus("OK", "Previous mailbox closed", r.Code.CLOSED))
    folder = await s.store.folder(_account_id(s), cmd.mailbox)
    if folder is None:
        await s.no(cmd.tag, "No such mailbox", r.Code.NONEXISTENT)
        return
    view = SelectedFolder(folder, readonly=cmd.readonly)
    view.load(await s.store.messages(folder.id))
    flag_list = [*SYSTEM_FLAGS, *view.keywords()]
    responses: list[r.Response] = [
        r.flags(flag_list),
        r.exists(view.exists),
        r.recent(0),
        r.UntaggedStatus("OK", "UIDs valid", r.Code.uidvalidity(folder.uidvalidity)),
        r.UntaggedStatus("OK", "Predicted next UID", r.Code.uidnext(folder.uidnext)),
        r.UntaggedStatus(
            "OK",
            "Limited" if cmd.readonly else "Flags permitted",
            r.Code.permanentflags([] if cmd.readonly else [*flag_list, "\\*"]),
        ),
    ]
    first_unseen = next(
        (i + 1 for i, uid in enumerate(view.uids) if "\\Seen" not in view.flags[uid]), None
    )
    if first_unseen is not None:
        responses.append(r.UntaggedStatus("OK", "First unseen", r.Code.unseen(first_unseen)))
    await s.send(*responses)
    s.selected = view
    s.state = State.SELECTED
    code = r.Code.READ_ONLY if cmd.readonly else r.Code.READ_WRITE
    await s.ok(cmd.tag, f"{cmd.name} completed", code)


_BAD_NAME = re.compile(r"[\x00-\x1f\x7f*%]")


async def create(s: Session, cmd: c.Create) -> None:
    name = cmd.mailbox.rstrip(DELIMITER)
    if not name or _BAD_NAME.search(name) or f"{DELIMITER}{DELIMITER}" in name:
        await s.no(cmd.tag, "Invalid mailbox name", r.Code.CANNOT)
        return
    try:
        await s.store.create_folder(_account_id(s), name)
    except FolderError as exc:
        await s.no(cmd.tag, str(exc), r.ResponseCode(exc.code))
        return
    await s.ok(cmd.tag, "CREATE completed")


def _pattern(reference: str, pattern: str) -> re.Pattern[str]:
    """RFC 9051 §6.3.9: ``*`` matches anything, ``%`` anything but the hierarchy delimiter."""
    full = reference + pattern if reference and not pattern.startswith(DELIMITER) else pattern
    if full[:5].upper() == "INBOX" and full[5:6] in ("", DELIMITER):
        full = "INBOX" + full[5:]  # RFC 9051 §5.1: INBOX is case-insensitive
    out = []
    for ch in full:
        if ch == "*":
            out.append(".*")
        elif ch == "%":
            out.append(f"[^{re.escape(DELIMITER)}]*")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def _matching(
    folders: list[FolderInfo], reference: str, patterns: tuple[str, ...]
) -> list[FolderInfo]:
    regexes = [_pattern(reference, p) for p in patterns]
    return [f for f in folders if any(rx.match(f.name) for rx in regexes)]


def _attributes(folder: FolderInfo, names: set[str]) -> list[str]:
    prefix = folder.name + DELIMITER
    has_children = any(n.startswith(prefix) for n in names)
    return ["\\HasChildren" if has_children else "\\HasNoChildren"]


async def list_(s: Session, cmd: c.List) -> None:
    if len(cmd.patterns) == 1 and cmd.patterns[0] == "":
        # RFC 9051 §6.3.9: an empty pattern asks for the delimiter and the root.
        await s.send(r.list_item(["\\Noselect"], DELIMITER, ""))
        await s.ok(cmd.tag, "LIST completed")
        return
    folders = await s.store.folders(_account_id(s))
    names = {f.name for f in folders}
    subscribed_only = "SUBSCRIBED" in cmd.selection
    out = []
    for f in _matching(folders, cmd.reference, cmd.patterns):
        if subscribed_only and not f.subscribed:
            continue
        attrs = _attributes(f, names)
        if f.subscribed and ("SUBSCRIBED" in cmd.return_options or subscribed_only):
            attrs.append("\\Subscribed")
        out.append(r.list_item(attrs, DELIMITER, f.name))
    await s.send(*out)
    await s.ok(cmd.tag, "LIST completed")


async def lsub(s: Session, cmd: c.Lsub) -> None:
    folders = await s.store.folders(_account_id(s))
    names = {f.name for f in folders}
    out = [
        r.list_item(_attributes(f, names), DELIMITER, f.name, lsub=True)
        for f in _matching(folders, cmd.reference, (cmd.pattern,))
        if f.subscribed
    ]
    await s.send(*out)
    await s.ok(cmd.tag, "LSUB completed")


async def namespace(s: Session, cmd: c.Namespace) -> None:
    await s.send(r.namespace([("", DELIMITER)]))
    await s.ok(cmd.tag, "NAMESPACE completed")


async def status(s: Session, cmd: c.Status) -> None:
    folder = await s.store.folder(_account_id(s), cmd.mailbox)
    if folder is None:
        await s.no(cmd.tag, "No such mailbox", r.Code.NONEXISTENT)
        return
    refs = await s.store.messages(folder.id)
    values: dict[str, int] = {}
    for item in cmd.items:
        key = item.upper()
        if key == "MESSAGES":
            values[key] = len(refs)
        elif key == "UIDNEXT":
            values[key] = folder.uidnext
        elif key == "UIDVALIDITY":
            values[key] = folder.uidvalidity
        elif key == "UNSEEN":
            values[key] = sum(1 for m in refs if "\\Seen" not in m.flags)
        elif key == "DELETED":
            values[key] = sum(1 for m in refs if "\\Deleted" in m.flags)
        elif key == "RECENT":
            values[key] = 0
        elif key == "HIGHESTMODSEQ":
            values[key] = folder.highestmodseq
        elif key == "SIZE":
            assert s.keys is not None
            metas = await s.store.read_meta(s.keys, folder.id, [m.uid for m in refs])
            values[key] = sum(int(m.get("size", 0)) for m in metas.values())
        else:
            await s.bad(cmd.tag, f"Unknown STATUS item {item}")
            return
    await s.send(r.status(folder.name, values))
    await s.ok(cmd.tag, "STATUS completed")


async def append(s: Session, cmd: c.Append) -> None:
    folder = await s.store.folder(_account_id(s), cmd.mailbox)
    if folder is None:
        await s.no(cmd.tag, "No such mailbox", r.Code.TRYCREATE)
        return
    limit = s.config.smtp.max_message_size
    if any(len(m.data) > limit for m in cmd.messages):
        await s.no(cmd.tag, "Message too big", r.Code.TOOBIG)
        return
    if any(not m.data for m in cmd.messages):
        await s.bad(cmd.tag, "Empty message")
        return
    assert s.keys is not None
    uids = []
    for m in cmd.messages:
        meta = await asyncio.to_thread(describe, m.data)
        flags = [f for f in m.flags if f.lower() != "\\recent"]
        d = await s.store.append(folder, s.keys.public, m.data, meta, flags, m.date_time)
        uids.append(d.uid)
    if s.selected is not None and s.selected.info.id == folder.id:
        from server.imap.commands.selected import sync

        await sync(s, allow_expunge=False, with_uid=False)
    code = r.Code.appenduid(folder.uidvalidity, SequenceSet.of(*uids))
    await s.ok(cmd.tag, "APPEND completed", code)


async def idle(s: Session, cmd: c.Idle) -> None:
    """RFC 2177: report changes as they happen until the client sends DONE."""
    from server.imap.commands.selected import sync

    events = s.store.events
    folder_id = s.selected.info.id if s.selected is not None else None
    changed = events.subscribe(folder_id) if folder_id is not None else asyncio.Event()
    try:
        await s.send(r.Continuation("idling"))
        await sync(s, allow_expunge=True, with_uid=False)
        s.parser.expect_line()
        deadline = s.config.imap.idle_timeout_seconds
        while True:
            read = s.start_read()
            waiter = asyncio.ensure_future(changed.wait())
            done, _ = await asyncio.wait(
                {read, waiter}, timeout=deadline, return_when=asyncio.FIRST_COMPLETED
            )
            waiter.cancel()
            if not done:
                await s.send(r.UntaggedStatus("BYE", "IDLE timed out"))
                raise ConnectionClosed("idle timeout")
            if changed.is_set():
                changed.clear()
                await sync(s, allow_expunge=True, with_uid=False)
            if read.done():
                await s.read_more()
                event = s.parser.next_event()
                if event is NEED_DATA:
                    continue
                if isinstance(event, ContinuationLine) and event.data.upper() == b"DONE":
                    await s.ok(cmd.tag, "IDLE terminated")
                else:
                    await s.bad(cmd.tag, "Expected DONE")
                return
    finally:
        if folder_id is not None:
            events.unsubscribe(folder_id, changed)


async def subscribe(s: Session, cmd: c.Subscribe) -> None:
    await _subscription(s, cmd.tag, cmd.mailbox, True)


async def unsubscribe(s: Session, cmd: c.Unsubscribe) -> None:
    await _subscription(s, cmd.tag, cmd.mailbox, False)


async def _subscription(s: Session, tag: str, name: str, on: bool) -> None:
    folder = await s.store.folder(_account_id(s), name)
    if folder is None:
        await s.no(tag, "No such mailbox", r.Code.NONEXISTENT)
        return
    await s.store.set_subscribed(folder.id, on)
    await s.ok(tag, ("SUBSCRIBE" if on else "UNSUBSCRIBE") + " completed")
