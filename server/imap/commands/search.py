"""SEARCH and UID SEARCH (RFC 9051 §6.4.4). Flags, UIDs and sequence numbers are answered from
the session's view; dates and envelope fields from the messages' summaries
(:mod:`server.imap.summary`, no metadata document parsed); other headers and text need the
message decrypted, which happens only for the messages and keys that need it."""

from __future__ import annotations

import datetime as dt

from server.imap.commands.selected import enable_condstore, sync
from server.imap.proto import commands as c
from server.imap.proto import message as m
from server.imap.proto import response as r
from server.imap.proto.sequence import SequenceSet
from server.imap.session import Session
from server.imap.summary import Summary, decode_words
from storage.mailstore import MessageRef

META_BATCH = 500
_FLAG_KEYS = {
    "ANSWERED": ("\\Answered", True),
    "UNANSWERED": ("\\Answered", False),
    "DELETED": ("\\Deleted", True),
    "UNDELETED": ("\\Deleted", False),
    "DRAFT": ("\\Draft", True),
    "UNDRAFT": ("\\Draft", False),
    "FLAGGED": ("\\Flagged", True),
    "UNFLAGGED": ("\\Flagged", False),
    "SEEN": ("\\Seen", True),
    "UNSEEN": ("\\Seen", False),
}
_ADDRESS_HEADERS = {"FROM", "TO", "CC", "BCC", "SUBJECT"}


class _Message:
    """One candidate message; decrypts lazily."""

    def __init__(
        self,
        s: Session,
        seq: int,
        uid: int,
        ref: MessageRef | None,
        summary: Summary | None = None,
    ) -> None:
        self.s = s
        self.seq = seq
        self.uid = uid
        self._summary = summary
        self.flags = ref.flags if ref is not None else frozenset()
        self.modseq = ref.modseq if ref is not None else 0
        self.size = ref.size if ref is not None else 0
        self._raw: bytes | None = None

    async def summary(self) -> Summary | None:
        """``None`` once the message is gone (expunged by another session meanwhile)."""
        if self._summary is None:
            view, keys = self.s.selected, self.s.keys
            assert view is not None and keys is not None
            got = await self.s.store.open_messages(
                keys, view.info.account_id, view.info.id, [self.uid]
            )
            opened = got.get(self.uid)
            self._summary = opened.summary if opened is not None else None
        return self._summary

    async def raw(self) -> bytes:
        if self._raw is None:
            view, keys = self.s.selected, self.s.keys
            assert view is not None and keys is not None
            self._raw = await self.s.store.read_body(keys, view.info.id, self.uid)
        return self._raw

    async def header_length(self) -> int:
        summary = await self.summary()
        return summary.header_length if summary is not None else 0

    async def header(self, name: str) -> str:
        raw = await self.raw()
        block = raw[: await self.header_length() or len(raw)]
        values = [_decoded(f) for n, f in m.split_fields(block) if n == name.lower()]
        return "\n".join(values)


def _decoded(field: bytes) -> str:
    """A header field's value with RFC 2047 encoded words decoded (RFC 9051 §6.4.4 SHOULD)."""
    value = field.split(b":", 1)[1] if b":" in field else field
    return decode_words(value.decode("utf-8", "replace").replace("\r\n", "").strip())


def _needs_meta(node: c.SearchNode) -> bool:
    if isinstance(node, c.SearchAnd):
        return any(_needs_meta(o) for o in node.operands)
    if isinstance(node, c.SearchOr):
        return _needs_meta(node.left) or _needs_meta(node.right)
    if isinstance(node, c.SearchNot):
        return _needs_meta(node.operand)
    return node.key in _META_KEYS


_META_KEYS = {
    "BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE", "HEADER", "BODY", "TEXT",
    *_ADDRESS_HEADERS,
}  # fmt: skip


def _contains(haystack: str | bytes, needle: str) -> bool:
    if isinstance(haystack, bytes):
        haystack = haystack.decode("utf-8", "replace")
    return needle.casefold() in haystack.casefold()


async def _matches(node: c.SearchNode, msg: _Message, s: Session, largest: int) -> bool:
    view = s.selected
    assert view is not None
    if isinstance(node, c.SearchAnd):
        for operand in node.operands:
            if not await _matches(operand, msg, s, largest):
                return False
        return True
    if isinstance(node, c.SearchOr):
        return await _matches(node.left, msg, s, largest) or await _matches(
            node.right, msg, s, largest
        )
    if isinstance(node, c.SearchNot):
        return not await _matches(node.operand, msg, s, largest)
    key, args = node.key, node.args
    flags = msg.flags
    if key == "ALL":
        return True
    if key in _FLAG_KEYS:
        flag, present = _FLAG_KEYS[key]
        return (flag in flags) == present
    if key in ("NEW", "RECENT", "OLD"):
        # RFC 3501 §6.4.4 (IMAP4rev1 sessions; an IMAP4rev2 session has no recent message).
        is_recent = msg.uid in view.recent
        if key == "NEW":
            return is_recent and "\\Seen" not in flags
        return is_recent if key == "RECENT" else not is_recent
    if key in ("KEYWORD", "UNKEYWORD"):
        # RFC 9051 §2.3.2: keywords compare case-insensitively.
        present = str(args[0]).casefold() in {f.casefold() for f in flags}
        return present if key == "KEYWORD" else not present
    if key in ("SEQSET", "UID"):
        seqset = args[0]
        assert isinstance(seqset, SequenceSet)
        if seqset.saved:
            return msg.uid in s.saved_uids
        if key == "SEQSET":
            return seqset.contains(msg.seq, view.exists)
        return seqset.contains(msg.uid, largest)
    if key in ("LARGER", "SMALLER"):
        size = msg.size
        limit = int(args[0])  # type: ignore[arg-type]
        return size > limit if key == "LARGER" else size < limit
    if key in ("BEFORE", "ON", "SINCE"):
        summary = await msg.summary()
        if summary is None:
            return False
        return _compare_date(key, summary.internal_day, args[0])
    if key in ("SENTBEFORE", "SENTON", "SENTSINCE"):
        summary = await msg.summary()
        if summary is None or not summary.sent_day:
            return False
        return _compare_date(key[4:], summary.sent_day, args[0])
    if key in _ADDRESS_HEADERS:
        # From the summary of the envelope: no need to decrypt the body (RFC 9051 §6.4.4).
        summary = await msg.summary()
        return summary is not None and _contains(summary.search_text(key), str(args[0]))
    if key == "HEADER":
        field_name, value = args[0] if isinstance(args[0], tuple) else (str(args[0]), str(args[1]))
        text = await msg.header(field_name)
        return bool(text) and _contains(text, value) if value else bool(text)
    if key == "BODY":
        raw = await msg.raw()
        return _contains(raw[await msg.header_length() :], str(args[0]))
    if key == "TEXT":
        return _contains(await msg.raw(), str(args[0]))
    if key == "MODSEQ":
        return msg.modseq >= int(args[-1])  # type: ignore[arg-type]
    raise ValueError(f"unsupported search key {key}")


def _compare_date(kind: str, day: int, arg: object) -> bool:
    """``day`` as :meth:`datetime.date.toordinal`."""
    assert isinstance(arg, dt.date)
    wanted = arg.toordinal()
    if kind == "BEFORE":
        return day < wanted
    if kind == "ON":
        return day == wanted
    return day >= wanted


async def find(
    s: Session, criteria: c.SearchNode, *, summaries: bool = False
) -> tuple[list[tuple[int, int]], dict[int, MessageRef], dict[int, Summary]]:
    """The messages of the selected folder that match ``criteria``, as (sequence number, UID)
    in mailbox order, with every message's flags and, when the search read them or
    ``summaries`` asks for them (SORT, THREAD), the summaries of the matched ones. A
    ``ValueError`` names a search key this server does not know."""
    view = s.selected
    assert view is not None and s.keys is not None
    largest = view.uids[-1] if view.uids else 0
    refs = await s.store.flags(view.info.id)
    prefetch = summaries or _needs_meta(criteria)
    found: list[tuple[int, int]] = []
    kept: dict[int, Summary] = {}
    uids = list(view.uids)
    for start in range(0, len(uids), META_BATCH):
        chunk = uids[start : start + META_BATCH]
        known: dict[int, Summary] = {}
        if prefetch:
            opened = await s.store.open_messages(
                s.keys, view.info.account_id, view.info.id, chunk
            )
            known = {u: o.summary for u, o in opened.items()}
        for i, uid in enumerate(chunk, start):
            msg = _Message(s, i + 1, uid, refs.get(uid), known.get(uid))
            if await _matches(criteria, msg, s, largest):
                found.append((i + 1, uid))
                if summaries and uid in known:
                    kept[uid] = known[uid]
    if summaries:
        # A message expunged by another session meanwhile has no summary: it is not shown.
        found = [(q, u) for q, u in found if u in kept]
    return found, refs, kept


async def search(s: Session, cmd: c.Search) -> None:
    view = s.selected
    assert view is not None
    if cmd.charset is not None and cmd.charset.upper() not in ("UTF-8", "US-ASCII"):
        await s.no(cmd.tag, "Unsupported charset", r.Code.badcharset())
        return
    if uses_modseq(cmd.criteria):
        await enable_condstore(s)
    try:
        found, refs, _ = await find(s, cmd.criteria)
    except ValueError as exc:
        await s.bad(cmd.tag, str(exc))
        return
    numbers = [u if cmd.uid else q for q, u in found]
    opts = None if cmd.return_options is None else {o.upper() for o in cmd.return_options}
    if opts is not None and "SAVE" in opts:
        # RFC 5182: remember the result as UIDs, so expunges do not change it.
        s.saved_uids = [u for _, u in found]
        opts.discard("SAVE")
        if not opts:
            opts = None if cmd.return_options == ("SAVE",) else {"ALL"}
            if opts is None:
                await _done(s, cmd)
                return
    if opts is None and not s.rev2:
        modseq = None
        if uses_modseq(cmd.criteria) and found:
            modseq = max(refs[u].modseq for _, u in found if u in refs)
        await s.send(r.search(numbers, modseq=modseq), more=True)
    else:
        opts = opts or {"ALL"}
        results: dict[str, r.Value] = {}
        if "MIN" in opts and numbers:
            results["MIN"] = min(numbers)
        if "MAX" in opts and numbers:
            results["MAX"] = max(numbers)
        if "COUNT" in opts:
            results["COUNT"] = len(numbers)
        if "ALL" in opts and numbers:
            results["ALL"] = SequenceSet.of(*numbers)
        for option in sorted(o for o in opts if o.startswith("PARTIAL ")):
            picked = partial(option, numbers)
            shown = SequenceSet.of(*picked) if picked else None
            results["PARTIAL"] = [r.Atom(option.split(" ", 1)[1]), shown]
        if uses_modseq(cmd.criteria) and found:
            results["MODSEQ"] = _result_modseq(opts, found, refs)
        await s.send(r.esearch(cmd.tag, uid=cmd.uid, results=results), more=True)
    await _done(s, cmd)


def partial(option: str, numbers: list[int]) -> list[int]:
    """RFC 9394 §3.1: the results at the positions ``PARTIAL a:b`` names, counted from 1 in
    result order, or from the end with ``-a:-b``; a range may be written backwards."""
    first, last = option.split(" ", 1)[1].split(":")
    low, high = sorted((abs(int(first)), abs(int(last))))
    if first.startswith("-"):
        end = len(numbers) - low + 1
        return numbers[max(0, len(numbers) - high) : max(0, end)]
    return numbers[low - 1 : high]


def _result_modseq(
    opts: set[str], found: list[tuple[int, int]], refs: dict[int, MessageRef]
) -> int:
    """RFC 7162 §3.1.5 with RFC 4731: the highest MODSEQ of the messages the result returns;
    with only MIN and/or MAX, of those messages alone."""
    if opts & {"ALL", "COUNT"} or not opts & {"MIN", "MAX"}:
        returned = found
    else:
        returned = [found[0]] if "MIN" in opts else []
        if "MAX" in opts:
            returned.append(found[-1])
    return max((refs[u].modseq for _, u in returned if u in refs), default=0)


def uses_modseq(node: c.SearchNode) -> bool:
    if isinstance(node, c.SearchAnd):
        return any(uses_modseq(o) for o in node.operands)
    if isinstance(node, c.SearchOr):
        return uses_modseq(node.left) or uses_modseq(node.right)
    if isinstance(node, c.SearchNot):
        return uses_modseq(node.operand)
    return node.key == "MODSEQ"


async def _done(s: Session, cmd: c.Search) -> None:
    await sync(s, allow_expunge=cmd.uid, with_uid=cmd.uid)
    await s.ok(cmd.tag, "SEARCH completed")
