"""FETCH and UID FETCH (RFC 9051 §6.4.5, §7.5.2): messages are decrypted here, one at a time,
with the session's unlocked mailbox key; metadata for a batch at once, from the summaries of
:mod:`server.imap.summary` (ENVELOPE, BODYSTRUCTURE and INTERNALDATE formatted once per message
and process). Only ``BODY[part]`` and ``BINARY[part]`` read the whole metadata document."""

from __future__ import annotations

from typing import Any

from server.imap.commands.selected import enable_condstore, sync
from server.imap.proto import commands as c
from server.imap.proto import message as m
from server.imap.proto import response as r
from server.imap.proto.sequence import SequenceSet
from server.imap.readonly import is_read_only_folder
from server.imap.session import ConnectionClosed, Session
from server.imap.summary import Summary
from storage import audit
from storage.mailstore import FolderError, MessageRef

BATCH = 100
_META_ITEMS = {
    "RFC822.SIZE",
    "INTERNALDATE",
    "ENVELOPE",
    "BODY",
    "BODYSTRUCTURE",
    "RFC822",
    "RFC822.HEADER",
    "RFC822.TEXT",
    "BINARY",
    "BINARY.SIZE",
}
_BODY_ITEMS = {"RFC822", "RFC822.HEADER", "RFC822.TEXT", "BINARY", "BINARY.SIZE"}


def _expand(attributes: tuple[c.FetchAttribute, ...]) -> list[c.FetchAttribute]:
    out: list[c.FetchAttribute] = []
    for a in attributes:
        # RFC 9051 §6.4.5 macros.
        if a.name == "ALL":
            out += [
                c.FetchAttribute(n) for n in ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE")
            ]
        elif a.name == "FAST":
            out += [c.FetchAttribute(n) for n in ("FLAGS", "INTERNALDATE", "RFC822.SIZE")]
        elif a.name == "FULL":
            out += [
                c.FetchAttribute(n)
                for n in ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY")
            ]
        else:
            out.append(a)
    return out


def _needs_document(a: c.FetchAttribute) -> bool:
    """Items that need the MIME part offsets of the whole metadata document."""
    if a.name == "BODY" and a.section is not None:
        return bool(a.section.part)
    if a.name in ("BINARY", "BINARY.SIZE"):
        return a.section is not None and bool(a.section.part)
    return False


def _partial(data: bytes, partial: tuple[int, int] | None) -> bytes:
    if partial is None:
        return data
    origin, count = partial
    return data[origin : origin + count]


async def fetch(s: Session, cmd: c.Fetch) -> None:
    view = s.selected
    assert view is not None and s.keys is not None
    attributes = _expand(cmd.attributes)
    if cmd.uid and not any(a.name == "UID" for a in attributes):
        attributes.insert(0, c.FetchAttribute("UID"))
    if cmd.vanished and not (cmd.uid and s.qresync and cmd.changed_since is not None):
        await s.bad(cmd.tag, "VANISHED needs UID FETCH, QRESYNC enabled and CHANGEDSINCE")
        return
    if cmd.changed_since is not None or any(a.name == "MODSEQ" for a in attributes):
        await enable_condstore(s)
    if cmd.changed_since is not None and not any(a.name == "MODSEQ" for a in attributes):
        attributes.append(c.FetchAttribute("MODSEQ"))
    need_meta = any(
        a.name in _META_ITEMS - {"RFC822.SIZE"} or a.section is not None for a in attributes
    )
    need_body = any(
        a.name in _BODY_ITEMS or (a.section is not None and a.name in ("BODY", "BINARY"))
        for a in attributes
    )
    sets_seen = not view.readonly and any(a.sets_seen for a in attributes)
    shows_flags = sets_seen or any(a.name == "FLAGS" for a in attributes)
    if not cmd.uid and not cmd.sequence_set.saved:
        # RFC 9051 §6.4.5: a sequence number past the end is an error, not an empty result.
        if any(
            lo is not None and hi is not None and max(lo, hi) > view.exists
            for lo, hi in cmd.sequence_set.ranges
        ):
            await s.bad(cmd.tag, "Invalid message sequence number")
            return
    targets = s.resolve(cmd.sequence_set, uid=cmd.uid)
    if need_body and targets and is_read_only_folder(view.info.name):
        # MSSanté test case 19: every read of a patient's documents is in the audit log.
        uids = [u for _, u in targets]
        await audit.record(
            s.store.db, f"account:{view.info.account_id}", "dossier.fetch",
            f"folder:{view.info.id}", peer=s.peer, detail={"count": len(uids), "uids": uids[:100]},
        )  # fmt: skip
    if cmd.vanished and cmd.changed_since is not None:
        largest = view.uids[-1] if view.uids else 0
        gone = [
            u
            for u in await s.store.expunged_since(view.info.id, cmd.changed_since)
            if cmd.sequence_set.contains(u, max(largest, u))
        ]
        if gone:
            await s.send(r.vanished(SequenceSet.of(*gone), earlier=True), more=True)
    if sets_seen:
        unseen_refs = await s.store.flags(view.info.id, [u for _, u in targets])
        unseen = [u for u, ref in unseen_refs.items() if "\\Seen" not in ref.flags]
        if unseen:
            for seen in await s.store.store_flags(view.info.id, unseen, ["\\Seen"], "add"):
                view.note_reported(seen.uid, seen.modseq)
    if {a.name for a in attributes} <= _FAST_ITEMS and cmd.changed_since is None and not sets_seen:
        await _fast(s, cmd, attributes, targets)
        return
    whole = [a for a in attributes if _is_whole_body(a)]
    streamable = len(whole) == 1 and sum(1 for a in attributes if _needs_body(a)) == 1
    # Metadata-free fetches (FLAGS, UID, sizes) go in large chunks, one socket write each.
    step = BATCH if need_meta else 2000
    document = any(_needs_document(a) for a in attributes)
    expunged = False  # a message named was expunged by another session before it was read
    for start in range(0, len(targets), step):
        chunk = targets[start : start + step]
        uids = [u for _, u in chunk]
        summaries: dict[int, Summary] = {}
        if need_meta:
            opened = await s.store.open_messages(s.keys, view.info.account_id, view.info.id, uids)
            refs = {u: o.ref for u, o in opened.items()}
            summaries = {u: o.summary for u, o in opened.items()}
        else:
            refs = await s.store.flags(view.info.id, uids)
        metas: dict[int, dict[str, Any]] = {}
        if document:
            metas = await s.store.read_meta(s.keys, view.info.id, uids)
        # RFC 9051 §7.3.5: keywords the client was not told of, before a FETCH shows them.
        responses: list[r.Response] = []
        if shows_flags:
            responses += view.announce(*(ref.flags for ref in refs.values()))
        for seq, uid in chunk:
            ref = refs.get(uid)
            if ref is None:
                expunged = True  # expunged by another session meanwhile
                continue
            if cmd.changed_since is not None and ref.modseq <= cmd.changed_since:
                continue
            summary = summaries.get(uid)
            if streamable and ref.size > STREAM_MIN:
                await s.send(*responses, more=True)
                responses.clear()
                if not await _stream(s, seq, uid, attributes, whole[0], ref, summary, sets_seen):
                    expunged = True
                continue
            try:
                raw = await s.store.read_body(s.keys, view.info.id, uid) if need_body else b""
            except FolderError as exc:
                if exc.code != "NONEXISTENT":
                    raise
                expunged = True  # expunged between the look-up and the body read
                continue
            items = _items(
                s, attributes, uid, ref, summary, metas.get(uid), raw, include_flags=sets_seen
            )
            if items is None:
                await s.send(*responses, more=True)
                await s.no(cmd.tag, "Unknown content-transfer-encoding", r.Code.UNKNOWN_CTE)
                return
            responses.append(r.FetchResponse(seq, items))
            if need_body:  # bodies go out one by one: memory stays bounded
                await s.send(*responses, more=True)
                responses.clear()
        await s.send(*responses, more=True)
    await sync(s, allow_expunge=cmd.uid, with_uid=cmd.uid)
    await _done(s, cmd.tag, expunged)


async def _done(s: Session, tag: str, gone: bool) -> None:
    if gone:
        # RFC 9051 §7.1 (EXPUNGEISSUED): the data of the messages still there was sent; the
        # client learns of the expunge at its next command (NOOP).
        await s.no(tag, "Some of the requested messages no longer exist", r.Code.EXPUNGEISSUED)
    else:
        await s.ok(tag, "FETCH completed")


STREAM_MIN = 256 * 1024
_FAST_ITEMS = {"UID", "FLAGS", "MODSEQ", "RFC822.SIZE"}


async def _fast(
    s: Session, cmd: c.Fetch, attributes: list[c.FetchAttribute], targets: list[tuple[int, int]]
) -> None:
    """``FETCH 1:* (UID FLAGS)`` and the like, what clients send to resynchronise a whole
    mailbox: one query, lines formatted directly, 4,000 lines a write."""
    view = s.selected
    assert view is not None
    refs = await s.store.flags(view.info.id, [u for _, u in targets]) if targets else {}
    names = [a.name for a in attributes]
    if "FLAGS" in names:
        announced = view.announce(*{ref.flags for ref in refs.values()})
        if announced:
            await s.send(*announced, more=True)
    recent = view.recent
    lines: list[bytes] = []
    expunged = False
    for seq, uid in targets:
        ref = refs.get(uid)
        if ref is None:
            expunged = True  # expunged by another session meanwhile
            continue
        parts = []
        for name in names:
            if name == "UID":
                parts.append(b"UID %d" % uid)
            elif name == "FLAGS":
                shown = " ".join(sorted(ref.flags))
                if uid in recent:
                    shown = f"{shown} \\Recent" if shown else "\\Recent"
                parts.append(b"FLAGS (" + shown.encode() + b")")
            elif name == "MODSEQ":
                parts.append(b"MODSEQ (%d)" % ref.modseq)
            else:
                parts.append(b"RFC822.SIZE %d" % ref.size)
        lines.append(b"* %d FETCH (" % seq + b" ".join(parts) + b")\r\n")
        if len(lines) >= 4000:
            await s.send_raw(lines, more=True)
            lines = []
    if lines:
        await s.send_raw(lines, more=True)
    await sync(s, allow_expunge=cmd.uid, with_uid=cmd.uid)
    await _done(s, cmd.tag, expunged)


def _is_whole_body(a: c.FetchAttribute) -> bool:
    if a.name == "RFC822":
        return True
    return (
        a.name == "BODY"
        and a.section is not None
        and not a.section.part
        and a.section.text is None
        and a.partial is None
    )


def _needs_body(a: c.FetchAttribute) -> bool:
    return a.name in _BODY_ITEMS or (a.section is not None and a.name in ("BODY", "BINARY"))


async def _stream(
    s: Session,
    seq: int,
    uid: int,
    attributes: list[c.FetchAttribute],
    body: c.FetchAttribute,
    ref: MessageRef,
    summary: Summary | None,
    include_flags: bool,
) -> bool:
    """RFC 9051 §7.5.2 FETCH response whose message literal is sent as it is decrypted, one
    64 KiB block at a time, so a large message never sits whole in memory. ``False`` (and
    nothing sent) if the message was expunged before its first block was read."""
    view, keys = s.selected, s.keys
    assert view is not None and keys is not None
    # The first block before the literal's length goes out: until then, an expunge by another
    # session is still an answer (EXPUNGEISSUED), not a broken stream.
    pieces = s.store.stream_body(keys, view.info.id, uid)
    try:
        first = await anext(pieces)
    except FolderError as exc:
        if exc.code != "NONEXISTENT":
            raise
        return False
    at = attributes.index(body)
    before = _items(s, attributes[:at], uid, ref, summary, None, b"", include_flags=False) or []
    after = _items(s, attributes[at + 1 :], uid, ref, summary, None, b"", include_flags=False)
    after = after or []
    if include_flags and not any(a.name == "FLAGS" for a in attributes):
        after.append(("FLAGS", view.flags_of(uid, ref.flags)))
    w = r.Writer(utf8=s.utf8)
    w.raw(b"* %d FETCH (" % seq)
    for name, value in before:
        w.raw(name.encode("ascii") + b" ")
        w.value(value)
        w.raw(b" ")
    w.raw(body.response_name().encode("ascii") + b" {%d}\r\n" % ref.size)
    await s.send_raw(w.chunks, more=True)
    sent = len(first)
    await s.send_raw([first], more=True)
    async for piece in pieces:
        sent += len(piece)
        await s.send_raw([piece], more=True)
    if sent != ref.size:
        # The literal's length is already on the wire: the stream cannot be repaired.
        raise ConnectionClosed("stored size does not match the message")
    tail = r.Writer(utf8=s.utf8)
    for name, value in after:
        tail.raw(b" " + name.encode("ascii") + b" ")
        tail.value(value)
    tail.raw(b")\r\n")
    await s.send_raw(tail.chunks, more=True)
    return True


def _items(
    s: Session,
    attributes: list[c.FetchAttribute],
    uid: int,
    ref: MessageRef,
    summary: Summary | None,
    document: dict[str, Any] | None,
    raw: bytes,
    *,
    include_flags: bool,
) -> list[tuple[str, r.Value]] | None:
    """The items of one FETCH response; ``document`` is the whole metadata, read only when an
    item names a MIME part."""
    items: list[tuple[str, r.Value]] = []
    names = {a.name for a in attributes}
    utf8 = s.utf8
    view = s.selected
    assert view is not None
    for a in attributes:
        name = a.name
        if name == "UID":
            items.append(("UID", uid))
        elif name == "FLAGS":
            items.append(("FLAGS", view.flags_of(uid, ref.flags)))
        elif name == "MODSEQ":
            items.append(("MODSEQ", [ref.modseq]))
        elif name == "RFC822.SIZE":
            items.append((name, ref.size))
        elif summary is None:
            continue
        elif name == "INTERNALDATE":
            items.append((name, r.Raw(summary.internaldate)))
        elif name == "ENVELOPE":
            items.append((name, r.Raw(summary.envelope_utf8 if utf8 else summary.envelope)))
        elif name == "BODYSTRUCTURE":
            data = summary.bodystructure_utf8 if utf8 else summary.bodystructure
            items.append((name, r.Raw(data)))
        elif name == "BODY" and a.section is None:
            items.append((name, r.Raw(summary.body_utf8 if utf8 else summary.body)))
        elif name == "RFC822":
            items.append((name, raw))
        elif name == "RFC822.HEADER":
            items.append((name, raw[: summary.header_length]))
        elif name == "RFC822.TEXT":
            items.append((name, raw[summary.header_length :]))
        elif name == "BODY" and a.section is not None:
            if a.section.part and document is None:
                continue  # expunged between the two reads
            info = document or {"header_length": summary.header_length}
            data = m.section_bytes(raw, info, a.section)
            items.append((a.response_name(), _partial(data, a.partial)))
        elif name in ("BINARY", "BINARY.SIZE"):
            part = a.section.part if a.section is not None else ()
            if part and document is None:
                continue
            decoded = m.binary_bytes(raw, document, part) if part and document else raw
            if decoded is None:
                return None
            if name == "BINARY.SIZE":
                items.append((a.response_name(), len(decoded)))
            else:
                items.append((a.response_name(), r.Literal8(_partial(decoded, a.partial))))
    if include_flags and "FLAGS" not in names:
        # RFC 9051 §6.4.5: report the \\Seen we just set.
        items.append(("FLAGS", view.flags_of(uid, ref.flags)))
    return items
