"""Properties of SORT and THREAD (RFC 5256): a thread tree is a partition of the matched
messages, no dummy is left without two children or at a leaf, and SORT's order agrees with
the i;unicode-casemap collation (RFC 5051), mailbox order breaking ties."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from server.imap import ordering
from server.imap.proto import collation as col
from server.imap.summary import SortKeys

IDS = ["a", "b", "c", "d", "e", "f"]
SUBJECTS = ["Plan", "Re: Plan", "Fwd: plan (fwd)", "[x] Other", "Re: other", "", "Été", "ÉTÉ"]
NAMES = ["alice", "Bob", "émile", "Émile", "zoé", "", "ǅ", "ß"]


@st.composite
def items(draw: st.DrawFn) -> list[ordering.Item]:
    count = draw(st.integers(0, 12))
    out = []
    for seq in range(1, count + 1):
        base, reply = col.base_subject(draw(st.sampled_from(SUBJECTS)))
        keys = SortKeys(
            arrival=draw(st.integers(0, 5)),
            sent=draw(st.integers(0, 5)),
            subject=col.casemap(base),
            reply=reply,
            from_=col.casemap(draw(st.sampled_from(NAMES))),
            to=col.casemap(draw(st.sampled_from(NAMES))),
            cc="",
            display_from=col.casemap(draw(st.sampled_from(NAMES))),
            display_to="",
            # Duplicates and missing identifiers are part of what REFERENCES must survive.
            message_id=draw(st.sampled_from(["", *IDS])),
            parents=tuple(draw(st.lists(st.sampled_from(IDS), max_size=4))),
        )
        out.append(ordering.Item(seq, 100 + seq, draw(st.integers(0, 3)), keys))
    return out


def _check_tree(threads: list[ordering.Node], matched: list[ordering.Item]) -> None:
    shown = [i.seq for t in threads for i in t.messages()]
    assert sorted(shown) == [i.seq for i in matched]  # each message exactly once

    def walk(node: ordering.Node, top: bool) -> None:
        if node.item is None:
            # A dummy stays only at the top, holding at least two children (step 4).
            assert top and len(node.children) >= 2
        for child in node.children:
            walk(child, False)

    for t in threads:
        walk(t, True)


@settings(max_examples=300, deadline=None)
@given(items())
def test_references_partitions_the_messages(matched: list[ordering.Item]) -> None:
    _check_tree(ordering.references(matched), matched)


@settings(max_examples=200, deadline=None)
@given(items())
def test_orderedsubject_partitions_by_base_subject(matched: list[ordering.Item]) -> None:
    threads = ordering.ordered_subject(matched)
    _check_tree(threads, matched)
    for t in threads:
        assert t.item is not None
        assert all(c.item is not None and not c.children for c in t.children)
        assert {i.keys.subject for i in t.messages()} == {t.item.keys.subject}
    assert len({t.item.keys.subject for t in threads if t.item}) == len(threads)


KEYS = st.lists(
    st.tuples(
        st.sampled_from(["ARRIVAL", "DATE", "SIZE", "SUBJECT", "FROM", "TO", "DISPLAYFROM"]),
        st.booleans(),
    ),
    min_size=1,
    max_size=3,
)


@settings(max_examples=300, deadline=None)
@given(items(), KEYS)
def test_sort_agrees_with_the_collation(
    matched: list[ordering.Item], criteria: list[tuple[str, bool]]
) -> None:
    ordered = ordering.sort(matched, criteria)
    assert sorted(i.seq for i in ordered) == [i.seq for i in matched]

    def value(item: ordering.Item, key: str) -> int | str:
        k = item.keys
        return {
            "ARRIVAL": k.arrival, "DATE": k.sent, "SIZE": item.size, "SUBJECT": k.subject,
            "FROM": k.from_, "TO": k.to, "DISPLAYFROM": k.display_from,
        }[key]  # fmt: skip

    for a, b in pairwise(ordered):
        for key, reverse in criteria:
            va, vb = value(a, key), value(b, key)
            if va != vb:
                assert (va > vb) if reverse else (va < vb)  # type: ignore[operator]
                break
        else:
            assert a.seq < b.seq  # all keys equal: mailbox order (RFC 5256 §3)


def test_casemap_compares_case_and_accent_forms_alike() -> None:
    # RFC 5051 §2: titlecase then NFKD; "é" and "É" are equal, "e" sorts before "é".
    assert col.casemap("été") == col.casemap("ÉTÉ") == col.casemap("E\u0301te\u0301")
    assert col.casemap("eta") < col.casemap("été")
    assert col.casemap("ǆ") == col.casemap("ǅ")  # a titlecase digraph
    assert col.casemap("straße") != col.casemap("STRASSE")  # no full case folding


def test_references_on_the_rfc_example_shape() -> None:
    def item(seq: int, ident: str, parents: tuple[str, ...], subject: str) -> ordering.Item:
        base, reply = col.base_subject(subject)
        keys = SortKeys(0, seq, col.casemap(base), reply, "", "", "", "", "", ident, parents)
        return ordering.Item(seq, seq, 0, keys)

    matched = [
        item(1, "a", (), "Plan"),
        item(2, "b", ("a",), "Re: Plan"),
        item(3, "c", ("a", "b"), "Re: Plan"),
        item(4, "d", ("b",), "Re: Plan"),
        item(5, "e", (), "Re: Plan"),
        item(6, "f", ("x",), "Other"),
    ]
    data = ordering.format_threads(ordering.references(matched), lambda i: i.seq)
    # 5 has no link but the subject of 1, and is a reply: a child of 1 (§3 step 5).
    assert data == b"(1 (2 (3)(4))(5))(6)"
