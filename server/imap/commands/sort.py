"""SORT, THREAD and their UID forms (RFC 5256), with DISPLAYFROM/DISPLAYTO (RFC 5957) and
ESORT's RETURN options (RFC 5267 §3). The messages are those SEARCH finds
(:func:`server.imap.commands.search.find`); what they are ordered by comes from their
summaries (:class:`server.imap.summary.SortKeys`), so no message is decrypted for it."""

from __future__ import annotations

from server.imap import ordering
from server.imap.commands.search import find, partial, uses_modseq
from server.imap.commands.selected import enable_condstore, sync
from server.imap.proto import commands as c
from server.imap.proto import response as r
from server.imap.session import Session

#: RFC 5256 §3: the THREAD algorithms this server offers, as advertised (THREAD=…).
THREAD_ALGORITHMS = ("ORDEREDSUBJECT", "REFERENCES")


async def _items(s: Session, cmd: c.Sort | c.Thread) -> tuple[list[ordering.Item], int] | None:
    """The matched messages with what orders them and, when the search used MODSEQ, their
    highest MODSEQ (RFC 7162 §3.1.5; else 0); ``None`` after a NO or BAD was sent."""
    if cmd.charset.upper() not in ("UTF-8", "US-ASCII"):
        await s.no(cmd.tag, "Unsupported charset", r.Code.badcharset())
        return None
    if uses_modseq(cmd.search):
        await enable_condstore(s)
    try:
        found, refs, summaries = await find(s, cmd.search, summaries=True)
    except ValueError as exc:
        await s.bad(cmd.tag, str(exc))
        return None
    items = [
        ordering.Item(seq, uid, refs[uid].size if uid in refs else 0, summaries[uid].sort)
        for seq, uid in found
    ]
    modseq = 0
    if uses_modseq(cmd.search):
        modseq = max((refs[u].modseq for _, u in found if u in refs), default=0)
    return items, modseq


def _ordered_set(numbers: list[int]) -> r.Atom:
    """RFC 5267 §3.2: ALL of an ESORT lists the numbers in sort order, so only ascending
    runs become ranges (``5,1:3,9``)."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and runs[-1][1] == n - 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return r.Atom(",".join(f"{a}:{b}" if a != b else str(a) for a, b in runs))


async def sort(s: Session, cmd: c.Sort) -> None:
    got = await _items(s, cmd)
    if got is None:
        return
    items, highest = got
    ordered = ordering.sort(items, [(k.key, k.reverse) for k in cmd.criteria])
    numbers = [i.uid if cmd.uid else i.seq for i in ordered]
    modseq = highest if uses_modseq(cmd.search) and items else None
    if cmd.return_options is None:
        data: tuple[r.Value, ...] = (r.Atom("SORT"), *numbers)
        if modseq is not None:
            data += ([r.Atom("MODSEQ"), modseq],)
        await s.send(r.UntaggedData(data), more=True)
    else:
        opts = {o.upper() for o in cmd.return_options} or {"ALL"}
        if "SAVE" in opts:
            # RFC 5182 §2.4: SAVE after SORT keeps the matched messages (their order is lost).
            s.saved_uids = sorted(i.uid for i in items)
            opts.discard("SAVE")
        results: dict[str, r.Value] = {}
        # RFC 5267 §3.2: MIN and MAX are the first and last messages in sort order.
        if "MIN" in opts and numbers:
            results["MIN"] = numbers[0]
        if "MAX" in opts and numbers:
            results["MAX"] = numbers[-1]
        if "COUNT" in opts:
            results["COUNT"] = len(numbers)
        if "ALL" in opts and numbers:
            results["ALL"] = _ordered_set(numbers)
        for option in sorted(o for o in opts if o.startswith("PARTIAL ")):
            picked = partial(option, numbers)
            shown = _ordered_set(picked) if picked else None
            results["PARTIAL"] = [r.Atom(option.split(" ", 1)[1]), shown]
        if modseq is not None:
            results["MODSEQ"] = modseq
        if opts:
            await s.send(r.esearch(cmd.tag, uid=cmd.uid, results=results), more=True)
    await sync(s, allow_expunge=cmd.uid, with_uid=cmd.uid)
    await s.ok(cmd.tag, "SORT completed")


async def thread(s: Session, cmd: c.Thread) -> None:
    if cmd.algorithm not in THREAD_ALGORITHMS:
        await s.bad(cmd.tag, f"Unknown threading algorithm {cmd.algorithm}")
        return
    got = await _items(s, cmd)
    if got is None:
        return
    items = got[0]
    if cmd.algorithm == "ORDEREDSUBJECT":
        threads = ordering.ordered_subject(items)
    else:
        threads = ordering.references(items)
    data = ordering.format_threads(threads, (lambda i: i.uid) if cmd.uid else (lambda i: i.seq))
    shown: tuple[r.Value, ...] = (r.Atom("THREAD"), r.Raw(data)) if data else (r.Atom("THREAD"),)
    await s.send(r.UntaggedData(shown), more=True)
    await sync(s, allow_expunge=cmd.uid, with_uid=cmd.uid)
    await s.ok(cmd.tag, "THREAD completed")
