"""FETCH and UID FETCH (RFC 9051 §6.4.5, §7.5.2): messages are decrypted here, one at a time,
with the session's unlocked mailbox key; metadata for a batch at once."""

from __future__ import annotations

import datetime as dt
from typing import Any

from server.imap.proto import commands as c
from server.imap.proto import message as m
from server.imap.proto import response as r
from server.imap.session import Session

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


def _internaldate(meta: dict[str, Any]) -> str:
    when = dt.datetime.fromisoformat(meta["internaldate"])
    return r.format_date_time(when)


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
    need_meta = any(a.name in _META_ITEMS or a.section is not None for a in attributes)
    need_body = any(
        a.name in _BODY_ITEMS or (a.section is not None and a.name in ("BODY", "BINARY"))
        for a in attributes
    )
    sets_seen = not view.readonly and any(a.sets_seen for a in attributes)
    targets = view.resolve(cmd.sequence_set, uid=cmd.uid)
    if cmd.changed_since is not None:
        targets = [(q, u) for q, u in targets if view.modseq.get(u, 0) > cmd.changed_since]
    if not targets and not cmd.uid and cmd.sequence_set.ranges:
        # RFC 9051 §6.4.5: a sequence number past the end is an error, not an empty result.
        if any(lo is not None and lo > view.exists for lo, _ in cmd.sequence_set.ranges):
            await s.bad(cmd.tag, "Invalid message sequence number")
            return
    if sets_seen:
        unseen = [u for _, u in targets if "\\Seen" not in view.flags.get(u, frozenset())]
        if unseen:
            for ref in await s.store.store_flags(view.info.id, unseen, ["\\Seen"], "add"):
                view.flags[ref.uid] = ref.flags
                view.modseq[ref.uid] = ref.modseq
    for start in range(0, len(targets), BATCH):
        chunk = targets[start : start + BATCH]
        metas: dict[int, dict[str, Any]] = {}
        if need_meta:
            metas = await s.store.read_meta(s.keys, view.info.id, [u for _, u in chunk])
        for seq, uid in chunk:
            meta = metas.get(uid)
            if need_meta and meta is None:
                continue  # expunged by another session meanwhile
            raw = await s.store.read_body(s.keys, view.info.id, uid) if need_body else b""
            items = _items(s, attributes, seq, uid, meta, raw, include_flags=sets_seen)
            if items is None:
                await s.no(cmd.tag, "Unknown content-transfer-encoding", r.Code.UNKNOWN_CTE)
                return
            await s.send(r.FetchResponse(seq, items))
    await _after(s, cmd)


async def _after(s: Session, cmd: c.Fetch) -> None:
    from server.imap.commands.selected import sync

    await sync(s, allow_expunge=cmd.uid, with_uid=cmd.uid)
    await s.ok(cmd.tag, "FETCH completed")


def _items(
    s: Session,
    attributes: list[c.FetchAttribute],
    seq: int,
    uid: int,
    meta: dict[str, Any] | None,
    raw: bytes,
    *,
    include_flags: bool,
) -> list[tuple[str, r.Value]] | None:
    view = s.selected
    assert view is not None
    items: list[tuple[str, r.Value]] = []
    names = {a.name for a in attributes}
    for a in attributes:
        name = a.name
        if name == "UID":
            items.append(("UID", uid))
        elif name == "FLAGS":
            items.append(("FLAGS", [r.Atom(f) for f in sorted(view.flags.get(uid, frozenset()))]))
        elif name == "MODSEQ":
            items.append(("MODSEQ", [view.modseq.get(uid, 1)]))
        elif meta is None:
            continue
        elif name == "RFC822.SIZE":
            items.append((name, int(meta["size"])))
        elif name == "INTERNALDATE":
            items.append((name, _internaldate(meta)))
        elif name == "ENVELOPE":
            items.append((name, r.Raw(m.format_envelope(meta, utf8=s.utf8))))
        elif name == "BODYSTRUCTURE" or (name == "BODY" and a.section is None):
            extensible = name == "BODYSTRUCTURE"
            items.append((name, r.Raw(m.format_bodystructure(meta, extensible, utf8=s.utf8))))
        elif name == "RFC822":
            items.append((name, raw))
        elif name == "RFC822.HEADER":
            items.append((name, raw[: meta["header_length"]]))
        elif name == "RFC822.TEXT":
            items.append((name, raw[meta["header_length"] :]))
        elif name == "BODY" and a.section is not None:
            data = m.section_bytes(raw, meta, a.section)
            items.append((a.response_name(), _partial(data, a.partial)))
        elif name in ("BINARY", "BINARY.SIZE"):
            part = a.section.part if a.section is not None else ()
            decoded = m.binary_bytes(raw, meta, part)
            if decoded is None:
                return None
            if name == "BINARY.SIZE":
                items.append((a.response_name(), len(decoded)))
            else:
                items.append((a.response_name(), r.Literal8(_partial(decoded, a.partial))))
    if include_flags and "FLAGS" not in names:
        # RFC 9051 §6.4.5: report the \Seen we just set.
        items.append(("FLAGS", [r.Atom(f) for f in sorted(view.flags.get(uid, frozenset()))]))
    return items
