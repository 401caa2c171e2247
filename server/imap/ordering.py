"""SORT and THREAD orders (RFC 5256, RFC 5957), sans-I/O.

Messages are given as :class:`Item`: their sequence number, UID, size and the
:class:`~server.imap.summary.SortKeys` their summary holds (text keys already in the
``i;unicode-casemap`` collation of RFC 5051, so they compare as strings). :func:`sort`
returns the items in SORT order; :func:`ordered_subject` and :func:`references` return
THREAD trees (:class:`Node`), which :func:`format_threads` writes as the THREAD response
(RFC 5256 §4).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import count

from server.imap.summary import SortKeys


@dataclass(frozen=True, slots=True)
class Item:
    seq: int
    uid: int
    size: int
    keys: SortKeys


SortValue = int | str
_KEYS: dict[str, Callable[[Item], SortValue]] = {
    # RFC 5256 §3: ARRIVAL is the INTERNALDATE, DATE the sent date (the INTERNALDATE when
    # the Date: field is missing or unreadable), both in UTC.
    "ARRIVAL": lambda i: i.keys.arrival,
    "DATE": lambda i: i.keys.sent,
    "SIZE": lambda i: i.size,
    "SUBJECT": lambda i: i.keys.subject,
    "FROM": lambda i: i.keys.from_,
    "TO": lambda i: i.keys.to,
    "CC": lambda i: i.keys.cc,
    # RFC 5957 §3
    "DISPLAYFROM": lambda i: i.keys.display_from,
    "DISPLAYTO": lambda i: i.keys.display_to,
}


def sort(items: Sequence[Item], criteria: Sequence[tuple[str, bool]]) -> list[Item]:
    """``items`` ordered by ``criteria`` (key name, reversed), the first key first; messages
    equal on every key stay in mailbox order (RFC 5256 §3: "the message sequence number is
    used"), whatever REVERSE says."""
    out = sorted(items, key=lambda i: i.seq)
    # Python's sort is stable, also with reverse=True: sorting by the last key first and
    # the first key last gives the order of the whole key list.
    for name, reverse in reversed(criteria):
        out.sort(key=_KEYS[name], reverse=reverse)
    return out


@dataclass(eq=False)
class Node:
    """A message in a thread tree; ``item`` ``None`` for a dummy (a message referred to
    but not among the searched ones, RFC 5256 §3 REFERENCES)."""

    item: Item | None
    children: list[Node] = field(default_factory=list)
    parent: Node | None = None

    def messages(self) -> Iterator[Item]:
        if self.item is not None:
            yield self.item
        for child in self.children:
            yield from child.messages()


def _date_key(node: Node) -> tuple[int, int]:
    """The sent date of a node, a dummy taking its first child's; ties in mailbox order."""
    while node.item is None and node.children:
        node = node.children[0]
    if node.item is None:
        return (0, 0)
    return (node.item.keys.sent, node.item.seq)


def ordered_subject(items: Sequence[Item]) -> list[Node]:
    """THREAD=ORDEREDSUBJECT (RFC 5256 §3): messages sorted by base subject, then sent date;
    a thread per base subject, its first message the parent of all the others, the threads
    in the order of their first messages' sent dates."""
    ordered = sorted(items, key=lambda i: (i.keys.subject, i.keys.sent, i.seq))
    threads: list[Node] = []
    current: Node | None = None
    for item in ordered:
        if current is not None and current.item is not None:
            if current.item.keys.subject == item.keys.subject:
                current.children.append(Node(item, parent=current))
                continue
        current = Node(item)
        threads.append(current)
    threads.sort(key=_date_key)
    return threads


def _is_ancestor(candidate: Node, node: Node) -> bool:
    """Whether ``candidate`` is ``node`` or one of its ancestors."""
    seen: Node | None = node
    while seen is not None:
        if seen is candidate:
            return True
        seen = seen.parent
    return False


def _link(parent: Node, child: Node) -> None:
    if child.parent is not None:
        child.parent.children.remove(child)
    child.parent = parent
    parent.children.append(child)


def references(items: Sequence[Item]) -> list[Node]:
    """THREAD=REFERENCES (RFC 5256 §3), steps 1 to 6."""
    table: dict[str, Node] = {}
    unique = count()
    containers: list[Node] = []
    for item in sorted(items, key=lambda i: i.seq):
        # (1)(A) A message without a Message-ID, or with one already seen, gets its own.
        ident = item.keys.message_id
        found = table.get(ident) if ident else None
        if found is not None and found.item is None:
            found.item = item
            node = found
        else:
            node = Node(item)
            table[ident if ident and found is None else f"\x00{next(unique)}"] = node
        containers.append(node)
        # (1)(B) Link the references in order, each the parent of the next, unless one
        # already has a parent or the link would make a loop.
        previous: Node | None = None
        for ref in item.keys.parents:
            ref_node = table.get(ref)
            if ref_node is None:
                ref_node = table[ref] = Node(None)
            if (
                previous is not None
                and ref_node.parent is None
                and not _is_ancestor(ref_node, previous)
            ):
                _link(previous, ref_node)
            previous = ref_node
        # (1)(C) The last reference is the message's parent (a truncated References may
        # have linked it elsewhere before); no reference: a root. Never a loop.
        if previous is not None and not _is_ancestor(node, previous):
            _link(previous, node)
        elif previous is None and node.parent is not None:
            node.parent.children.remove(node)
            node.parent = None
    # (2) The root set; (3) the table is no longer needed.
    roots = [n for n in table.values() if n.parent is None]
    # (4) Prune dummies.
    roots = _prune(roots, top=True)
    for root in roots:
        root.parent = None
    _sort_siblings(roots)
    roots = _gather_subjects(roots)
    # (6) Siblings by sent date, depth first.
    _sort_siblings(roots)
    return roots


def _prune(nodes: list[Node], *, top: bool) -> list[Node]:
    """RFC 5256 §3 step 4: a dummy without children goes; a dummy's children take its place,
    except at the top with more than one child."""
    out: list[Node] = []
    pending = list(nodes)
    while pending:
        node = pending.pop(0)
        node.children = _prune(node.children, top=False)
        for child in node.children:
            child.parent = node
        if node.item is None:
            if not node.children:
                continue
            if not top or len(node.children) == 1:
                promoted = node.children
                for child in promoted:
                    child.parent = node.parent
                node.children = []
                pending[:0] = promoted
                continue
        out.append(node)
    return out


def _subject_of(node: Node) -> tuple[str, bool]:
    holder = node if node.item is not None else node.children[0]
    assert holder.item is not None
    return holder.item.keys.subject, holder.item.keys.reply


def _gather_subjects(roots: list[Node]) -> list[Node]:
    """RFC 5256 §3 step 5: threads of the same base subject are put together."""
    table: dict[str, Node] = {}
    # (B) The message each base subject is gathered under.
    for node in roots:
        subject, reply = _subject_of(node)
        if not subject:
            continue
        held = table.get(subject)
        if held is None:
            table[subject] = node
        elif held.item is not None:
            held_reply = _subject_of(held)[1]
            if node.item is None or (held_reply and not reply):
                table[subject] = node
    # (C) The others join it.
    for node in roots:
        subject, reply = _subject_of(node)
        held = table.get(subject) if subject else None
        if held is None or held is node:
            continue
        if held.item is None and node.item is None:
            for child in node.children:
                child.parent = held
            held.children += node.children
            node.children = []
        elif held.item is None or (reply and not _subject_of(held)[1]):
            node.parent = held
            held.children.append(node)
        else:
            dummy = Node(None)
            for member in (held, node):
                member.parent = dummy
                dummy.children.append(member)
            table[subject] = dummy
    # The new root set: the top of each former root's tree, once; emptied dummies go.
    out: list[Node] = []
    seen: set[int] = set()
    for node in roots:
        top = node
        while top.parent is not None:
            top = top.parent
        if (top.item is None and not top.children) or id(top) in seen:
            continue
        seen.add(id(top))
        out.append(top)
    return out


def _sort_siblings(nodes: list[Node]) -> None:
    for node in nodes:
        _sort_siblings(node.children)
    nodes.sort(key=_date_key)


def format_threads(threads: Sequence[Node], number: Callable[[Item], int]) -> bytes:
    """The THREAD response's data (RFC 5256 §4): ``(3 6 (4 23)(44 7 96))``, a chain of
    only children written in a row, siblings each in parentheses, dummies not shown."""
    return b"".join(b"(" + _thread(t, number).encode() + b")" for t in threads)


def _thread(node: Node, number: Callable[[Item], int]) -> str:
    parts: list[str] = []
    current = node
    while True:
        if current.item is not None:
            parts.append(str(number(current.item)))
        if len(current.children) == 1:
            current = current.children[0]
            continue
        if current.children:
            parts.append("".join(f"({_thread(c, number)})" for c in current.children))
        break
    return " ".join(parts)
