"""Authenticated state (RFC 9051 §6.3): ENABLE (RFC 5161), SELECT/EXAMINE (with CONDSTORE and
QRESYNC, RFC 7162), CREATE (CREATE-SPECIAL-USE, RFC 6154), DELETE, RENAME, SUBSCRIBE,
UNSUBSCRIBE, LIST (LIST-EXTENDED RFC 5258, LIST-STATUS RFC 5819, SPECIAL-USE RFC 6154), LSUB,
NAMESPACE (RFC 2342), STATUS, APPEND (UIDPLUS RFC 4315, MULTIAPPEND RFC 3502), IDLE (RFC 2177)."""

from __future__ import annotations

import asyncio
import contextlib
import re

from server.imap.commands.selected import claim_recent, sync
from server.imap.proto import commands as c
from server.imap.proto import response as r
from server.imap.proto.events import NEED_DATA, ContinuationLine
from server.imap.proto.message import analyze, seven_bit
from server.imap.proto.sequence import SequenceSet
from server.imap.proto.states import State
from server.imap.readonly import is_read_only_folder, refuse_read_only
from server.imap.selected import SelectedFolder, flag_announcement
from server.imap.session import ConnectionClosed, Session
from storage import audit, recent
from storage.mailstore import DELIMITER, FolderError, FolderInfo

LIST_SELECTION = {"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"}
LIST_RETURN = {"SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS"}
#: RFC 5161 / RFC 9051 §6.3.1: what ENABLE can turn on.
ENABLEABLE = ("IMAP4REV2", "UTF8=ACCEPT", "CONDSTORE", "QRESYNC")
#: Messages up to this size are analysed on the loop at APPEND (as delivery does).
INLINE_DESCRIBE = 128 * 1024
SPECIAL_USES = {"\\ALL", "\\ARCHIVE", "\\DRAFTS", "\\FLAGGED", "\\JUNK", "\\SENT", "\\TRASH"}


def _account_id(s: Session) -> int:
    assert s.account is not None
    return s.account.id


async def enable(s: Session, cmd: c.Enable) -> None:
    turned_on = []
    for cap in cmd.capabilities:
        name = cap.upper()
        if name in ENABLEABLE and name not in s.enabled:
            s.enabled.add(name)
            turned_on.append(cap)
    if "UTF8=ACCEPT" in s.enabled or "IMAP4REV2" in s.enabled:
        s.utf8 = True
        s.parser.utf8 = True
    await s.send(r.enabled(turned_on), more=True)
    await s.ok(cmd.tag, "ENABLE completed")


def _special_attr(folder: FolderInfo) -> list[str]:
    return [f"\\{folder.special_use}"] if folder.special_use else []


async def select(s: Session, cmd: c.Select) -> None:
    if s.selected is not None:
        # RFC 9051 §6.3.2: selecting again deselects first; [CLOSED] per RFC 7162 §3.2.11.
        s.selected = None
        s.state = State.AUTHENTICATED
        await s.send(
            r.UntaggedStatus("OK", "Previous mailbox closed", r.Code.CLOSED), more=True
        )
    if cmd.qresync is not None and "QRESYNC" not in s.enabled:
        await s.bad(cmd.tag, "QRESYNC must be enabled first (RFC 7162 §3.2.3)")
        return
    if cmd.condstore:
        s.enabled.add("CONDSTORE")
    s.saved_uids = []  # RFC 5182 §2.1: SELECT resets the saved search result
    snap = await s.store.snapshot(_account_id(s), cmd.mailbox, first_unseen=not s.rev2)
    if snap is None:
        await s.no(cmd.tag, "No such mailbox", r.Code.NONEXISTENT)
        return
    info, uids, first = snap
    # The dossier is written by the filing workflow only: always selected read-only.
    readonly = cmd.readonly or is_read_only_folder(info.name)
    if is_read_only_folder(info.name):
        # Every access to a patient's dossier is in the audit log (design.md §4).
        await audit.record(
            s.store.db, f"account:{_account_id(s)}", "dossier.open", f"folder:{info.id}",
            peer=s.peer,
        )  # fmt: skip
    keywords = sorted(info.keywords.split())
    view = SelectedFolder(info, readonly=readonly, uids=uids, modseq=info.highestmodseq)
    view.know_keywords(keywords)
    flags, permanent = flag_announcement(keywords, readonly)
    responses: list[r.Response] = [flags, r.exists(view.exists)]
    if s.rev2:
        # RFC 9051 §6.3.2: the mailbox's LIST response, with its name as the server spells it.
        responses.append(r.list_item(_special_attr(info), DELIMITER, info.name))
    else:
        # RFC 3501 §6.3.1: how many messages are recent in this session (§2.3.2).
        await claim_recent(s, view, uids)
        responses.append(r.recent(len(view.recent)))
    responses += [
        r.UntaggedStatus("OK", "UIDs valid", r.Code.uidvalidity(info.uidvalidity)),
        r.UntaggedStatus("OK", "Predicted next UID", r.Code.uidnext(info.uidnext)),
        permanent,
    ]
    if s.condstore:
        responses.append(
            r.UntaggedStatus("OK", "Highest", r.Code.highestmodseq(info.highestmodseq))
        )
    if not s.rev2:
        seq = view.seq_of(first) if first is not None else None
        if seq is not None:
            responses.append(r.UntaggedStatus("OK", "First unseen", r.Code.unseen(seq)))
    q = cmd.qresync
    if q is not None and q.uidvalidity == info.uidvalidity:
        # RFC 7162 §3.2.5: what changed since the client's MODSEQ, expunges as VANISHED.
        gone = await s.store.expunged_since(info.id, q.modseq)
        if q.known_uids is not None:
            largest = max(gone, default=0)
            gone = [u for u in gone if q.known_uids.contains(u, largest)]
        if gone:
            responses.append(r.vanished(SequenceSet.of(*gone), earlier=True))
        changed = await s.store.changes(info.id, q.modseq)
        for m in changed.changed:
            seq = view.seq_of(m.uid)
            if seq is not None:
                responses.append(
                    r.FetchResponse(
                        seq,
                        [
                            ("UID", m.uid),
                            ("FLAGS", [r.Atom(f) for f in sorted(m.flags)]),
                            ("MODSEQ", [m.modseq]),
                        ],
                    )
                )
    await s.send(*responses, more=True)
    s.selected = view
    s.state = State.SELECTED
    code = r.Code.READ_ONLY if readonly else r.Code.READ_WRITE
    await s.ok(cmd.tag, f"{cmd.name} completed", code)


_BAD_NAME = re.compile(r"[\x00-\x1f\x7f*%]")


def _valid_name(name: str) -> bool:
    return bool(name) and not _BAD_NAME.search(name) and f"{DELIMITER}{DELIMITER}" not in name


async def create(s: Session, cmd: c.Create) -> None:
    if await refuse_read_only(s, cmd.tag, cmd.mailbox.rstrip(DELIMITER)):
        return
    name = cmd.mailbox.rstrip(DELIMITER)
    if not _valid_name(name) or name.startswith(DELIMITER):
        await s.no(cmd.tag, "Invalid mailbox name", r.Code.CANNOT)
        return
    uses = [u.upper() for u in cmd.special_use]
    if len(uses) > 1 or any(u not in SPECIAL_USES for u in uses):
        await s.no(cmd.tag, "Unsupported special-use attribute", r.ResponseCode("USEATTR"))
        return
    special = uses[0][1:].capitalize() if uses else None
    try:
        await s.store.create_folder(_account_id(s), name, special)
    except FolderError as exc:
        await s.no(cmd.tag, str(exc), r.ResponseCode(exc.code))
        return
    await s.ok(cmd.tag, "CREATE completed")


async def delete(s: Session, cmd: c.Delete) -> None:
    if await refuse_read_only(s, cmd.tag, cmd.mailbox):
        return
    folder = await s.store.folder(_account_id(s), cmd.mailbox)
    try:
        await s.store.delete_folder(_account_id(s), cmd.mailbox)
    except FolderError as exc:
        await s.no(cmd.tag, str(exc), r.ResponseCode(exc.code))
        return
    if folder is not None and s.selected is not None and s.selected.info.id == folder.id:
        s.selected = None
        s.state = State.AUTHENTICATED
    await s.ok(cmd.tag, "DELETE completed")


async def rename(s: Session, cmd: c.Rename) -> None:
    new = cmd.new_name.rstrip(DELIMITER)
    if await refuse_read_only(s, cmd.tag, cmd.mailbox, new):
        return
    if not _valid_name(new):
        await s.no(cmd.tag, "Invalid mailbox name", r.Code.CANNOT)
        return
    try:
        await s.store.rename_folder(_account_id(s), cmd.mailbox, new)
    except FolderError as exc:
        await s.no(cmd.tag, str(exc), r.ResponseCode(exc.code))
        return
    await s.ok(cmd.tag, "RENAME completed")


def _pattern(reference: str, pattern: str) -> re.Pattern[str]:
    """RFC 9051 §6.3.9: ``*`` matches anything, ``%`` anything but the hierarchy delimiter."""
    full = reference + pattern if reference and not pattern.startswith(DELIMITER) else pattern
    if full[:5].upper() == "INBOX" and full[5:6] in ("", DELIMITER, "*", "%"):
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


def _has_children(folder: FolderInfo, names: set[str]) -> bool:
    prefix = folder.name + DELIMITER
    return any(n.startswith(prefix) for n in names)


async def list_(s: Session, cmd: c.List) -> None:
    if not cmd.extended and len(cmd.patterns) == 1 and cmd.patterns[0] == "":
        # RFC 9051 §6.3.9: an empty pattern asks for the delimiter and the root.
        await s.send(r.list_item(["\\Noselect"], DELIMITER, ""), more=True)
        await s.ok(cmd.tag, "LIST completed")
        return
    selection = {o.upper() for o in cmd.selection}
    returns = {o.upper() for o in cmd.return_options}
    unknown = (selection - LIST_SELECTION) | (returns - LIST_RETURN)
    if unknown:
        await s.bad(cmd.tag, f"Unknown LIST option {sorted(unknown)[0]} (RFC 5258 §3)")
        return
    if "RECURSIVEMATCH" in selection and selection <= {"RECURSIVEMATCH", "REMOTE"}:
        await s.bad(cmd.tag, "RECURSIVEMATCH needs another selection option (RFC 5258 §3.1)")
        return
    folders = await s.store.folders(_account_id(s))
    names = {f.name for f in folders}
    regexes = [_pattern(cmd.reference, p) for p in cmd.patterns if p != ""]
    subscribed_sel = "SUBSCRIBED" in selection
    special_sel = "SPECIAL-USE" in selection
    out: list[r.Response] = []
    subscribed = await s.store.subscriptions(_account_id(s)) if subscribed_sel else set()
    # RFC 5258 §3.5: CHILDINFO tells of a subscribed descendant the patterns do not return.
    hidden = sorted(n for n in subscribed if not any(rx.match(n) for rx in regexes))
    if subscribed_sel and not special_sel:
        # RFC 5258 §3.1: subscribed names that no longer exist are listed as \NonExistent.
        for name in sorted(subscribed - names):
            if any(rx.match(name) for rx in regexes):
                out.append(r.list_item(["\\NonExistent", "\\Subscribed"], DELIMITER, name))
    for f in folders:
        if not any(rx.match(f.name) for rx in regexes):
            continue
        selected_by_options = (not subscribed_sel or f.subscribed) and (
            not special_sel or f.special_use is not None
        )
        childinfo = False
        if not selected_by_options and "RECURSIVEMATCH" in selection and subscribed_sel:
            prefix = f.name + DELIMITER
            childinfo = any(n.startswith(prefix) for n in hidden)
        if not selected_by_options and not childinfo:
            continue
        attrs = ["\\HasChildren" if _has_children(f, names) else "\\HasNoChildren"]
        attrs += _special_attr(f)
        if f.subscribed and (subscribed_sel or "SUBSCRIBED" in returns):
            attrs.append("\\Subscribed")
        extended: list[r.Value] = []
        if childinfo:
            extended = ["CHILDINFO", ["SUBSCRIBED"]]
        out.append(r.list_item(attrs, DELIMITER, f.name, extended))
        if cmd.status_items and selected_by_options:
            found = await s.store.status(_account_id(s), f.name)
            if found is not None:
                counts = found[1]
                if any(i.upper() == "RECENT" for i in cmd.status_items):
                    counts = {**counts, "RECENT": await recent.count(s.store.db, f.id)}
                values = _status_values(s, found[0], counts, cmd.status_items)
                if isinstance(values, dict):
                    out.append(r.status(f.name, values))
    await s.send(*out, more=True)
    await s.ok(cmd.tag, "LIST completed")


async def lsub(s: Session, cmd: c.Lsub) -> None:
    folders = await s.store.folders(_account_id(s))
    names = {f.name for f in folders}
    rx = _pattern(cmd.reference, cmd.pattern)
    subscribed = await s.store.subscriptions(_account_id(s))
    out = [
        r.list_item([] if name in names else ["\\Noselect"], DELIMITER, name, lsub=True)
        for name in sorted(subscribed)
        if rx.match(name)
    ]
    # RFC 3501 §6.3.9: with "%", an unsubscribed parent of a subscribed name that the
    # pattern hides is listed as \\Noselect.
    parents = {
        DELIMITER.join(name.split(DELIMITER)[:i])
        for name in subscribed
        if not rx.match(name)
        for i in range(1, name.count(DELIMITER) + 1)
    }
    out += [
        r.list_item(["\\Noselect"], DELIMITER, p, lsub=True)
        for p in sorted(parents - subscribed)
        if rx.match(p)
    ]
    await s.send(*out, more=True)
    await s.ok(cmd.tag, "LSUB completed")


async def namespace(s: Session, cmd: c.Namespace) -> None:
    await s.send(r.namespace([("", DELIMITER)]), more=True)
    await s.ok(cmd.tag, "NAMESPACE completed")


def _status_values(
    s: Session, folder: FolderInfo, counts: dict[str, int], items: tuple[str, ...]
) -> dict[str, int] | str:
    values: dict[str, int] = {}
    for item in items:
        key = item.upper()
        if key in ("MESSAGES", "UNSEEN", "DELETED", "SIZE"):
            values[key] = counts[key]
        elif key == "UIDNEXT":
            values[key] = folder.uidnext
        elif key == "UIDVALIDITY":
            values[key] = folder.uidvalidity
        elif key == "RECENT":
            values[key] = counts.get("RECENT", 0)
        elif key == "HIGHESTMODSEQ":
            values[key] = folder.highestmodseq
        elif key == "APPENDLIMIT":
            values[key] = s.config.smtp.max_message_size
        else:
            return f"Unknown STATUS item {item}"
    return values


async def status(s: Session, cmd: c.Status) -> None:
    found = await s.store.status(_account_id(s), cmd.mailbox)
    if found is None:
        await s.no(cmd.tag, "No such mailbox", r.Code.NONEXISTENT)
        return
    folder, counts = found
    if any(i.upper() == "RECENT" for i in cmd.items):
        counts = {**counts, "RECENT": await recent.count(s.store.db, folder.id)}
    values = _status_values(s, folder, counts, cmd.items)
    if isinstance(values, str):
        await s.bad(cmd.tag, values)
        return
    await s.send(r.status(folder.name, values), more=True)
    await s.ok(cmd.tag, "STATUS completed")


async def _store_appended(s: Session, folder: FolderInfo, m: c.AppendMessage) -> int:
    """Store one message of APPEND or REPLACE; its UID."""
    assert s.keys is not None
    flags = []
    for flag in m.flags:
        if flag.startswith("\\"):
            if flag.lower() == "\\recent":
                continue
            flag = "\\" + flag[1:].capitalize()
        flags.append(flag)
    data = m.data
    if m.binary:
        # RFC 3516 §4.4: binary parts are stored base64-encoded (BODY[n] stays 7-bit).
        data = seven_bit(data)
    if len(data) <= INLINE_DESCRIBE:
        meta = analyze(data)  # well under a millisecond: cheaper than a thread hop
    else:
        meta = await asyncio.to_thread(analyze, data)
    d = await s.store.append(folder, s.keys.public, data, meta, flags, m.date_time, keys=s.keys)
    return d.uid


async def _remove(s: Session, folder_id: int, uids: list[int]) -> None:
    """Expunge exactly ``uids`` (flagged \\Deleted first: expunge takes only those)."""
    await s.store.store_flags(folder_id, uids, ["\\Deleted"], "add")
    await s.store.expunge(folder_id, uids)


async def replace(s: Session, cmd: c.Replace) -> None:
    """RFC 8508 §3: the new message is appended to the mailbox named (APPENDUID in an
    untagged OK), then the replaced one is expunged from the selected mailbox (its EXPUNGE
    or VANISHED), then the tagged OK. It is a selected-state command but lives here, beside
    APPEND, whose checks it shares."""
    view = s.selected
    assert view is not None and s.account is not None
    if view.readonly:
        # §3.3: the replaced message could not be expunged.
        await s.no(cmd.tag, "Mailbox is read-only", r.Code.READ_ONLY)
        return
    if cmd.uid:
        old = cmd.number if cmd.number is not None else (view.uids[-1] if view.uids else 0)
        if view.seq_of(old) is None:
            await s.no(cmd.tag, "No such message", r.Code.NONEXISTENT)
            return
    else:
        seq = cmd.number if cmd.number is not None else view.exists
        if not 1 <= seq <= view.exists:
            await s.bad(cmd.tag, "No such message sequence number")
            return
        old = view.uids[seq - 1]
    folder = await s.store.folder(s.account.id, cmd.mailbox)
    if folder is None:
        await s.no(cmd.tag, "No such mailbox", r.Code.TRYCREATE)
        return
    if await refuse_read_only(s, cmd.tag, folder.name):
        return
    m = cmd.message
    if len(m.data) > s.config.smtp.max_message_size:
        await s.no(cmd.tag, "Message too big", r.Code.TOOBIG)
        return
    if not m.data:
        await s.bad(cmd.tag, "Empty message")
        return
    new = await _store_appended(s, folder, m)
    code = r.Code.appenduid(folder.uidvalidity, SequenceSet.of(new))
    await s.send(r.UntaggedStatus("OK", "Replacement stored", code), more=True)
    await _remove(s, view.info.id, [old])
    await sync(s, allow_expunge=True, with_uid=cmd.uid)
    await s.ok(cmd.tag, "REPLACE completed")


async def append(s: Session, cmd: c.Append) -> None:
    folder = await s.store.folder(_account_id(s), cmd.mailbox)
    if folder is None:
        await s.no(cmd.tag, "No such mailbox", r.Code.TRYCREATE)
        return
    if await refuse_read_only(s, cmd.tag, folder.name):
        return
    limit = s.config.smtp.max_message_size
    if any(len(m.data) > limit for m in cmd.messages):
        await s.no(cmd.tag, "Message too big", r.Code.TOOBIG)
        return
    if any(not m.data for m in cmd.messages):
        await s.bad(cmd.tag, "Empty message")
        return
    uids: list[int] = []
    for m in cmd.messages:
        try:
            uids.append(await _store_appended(s, folder, m))
        except Exception:
            # RFC 3502 §6.3.11: a MULTIAPPEND that fails appends none of its messages.
            if uids:
                with contextlib.suppress(FolderError):
                    await _remove(s, folder.id, uids)
            raise
    if s.selected is not None and s.selected.info.id == folder.id:
        await sync(s, allow_expunge=False, with_uid=False)
    code = r.Code.appenduid(folder.uidvalidity, SequenceSet.of(*uids))
    await s.ok(cmd.tag, "APPEND completed", code)


async def compress(s: Session, cmd: c.Compress) -> None:
    """RFC 4978 §3: DEFLATE from the byte after the tagged OK, in both directions."""
    if cmd.mechanism.upper() != "DEFLATE":
        await s.bad(cmd.tag, "Unknown compression mechanism")
        return
    if s.compressed:
        await s.no(cmd.tag, "DEFLATE is already active", r.Code.COMPRESSIONACTIVE)
        return
    await s.ok(cmd.tag, "DEFLATE active")
    s.start_compression()


async def unauthenticate(s: Session, cmd: c.Unauthenticate) -> None:
    """RFC 8437 §2: the connection goes back to the not authenticated state, keeping its TLS
    layer; nothing of the session stays: the selected mailbox (closed without an expunge),
    the mailbox keys, ENABLEd extensions and a saved search result."""
    s.selected = None
    s.saved_uids = []
    s.enabled.clear()
    s.utf8 = False
    s.parser.utf8 = False
    s.keys = None
    s.account = None
    s.state = State.NOT_AUTHENTICATED
    await s.ok(cmd.tag, "UNAUTHENTICATE completed")


async def idle(s: Session, cmd: c.Idle) -> None:
    """RFC 2177: report changes as they happen until the client sends DONE."""
    events = s.store.events
    folder_id = s.selected.info.id if s.selected is not None else None
    changed = events.subscribe(folder_id) if folder_id is not None else asyncio.Event()
    try:
        await s.send(r.Continuation("idling"))
        await sync(s, allow_expunge=True, with_uid=False)
        await s.flush()
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
                await s.flush()  # the client is idling: tell it now
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
    # RFC 9051 §6.3.7: a name may be subscribed whether or not the mailbox exists.
    if on and await s.store.folder(_account_id(s), name) is None:
        await s.no(tag, "No such mailbox", r.Code.NONEXISTENT)
        return
    await s.store.set_subscribed(_account_id(s), name, on)
    await s.ok(tag, ("SUBSCRIBE" if on else "UNSUBSCRIBE") + " completed")
