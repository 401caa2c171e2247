"""Response formatting, and round trips through the parser where the grammar allows."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from server.imap.proto import (
    Code,
    Continuation,
    FetchResponse,
    ProtocolErrorEvent,
    SequenceSet,
    TaggedResponse,
    UntaggedStatus,
    error_response,
)
from server.imap.proto import commands as c
from server.imap.proto import response as r
from server.imap.proto.mailbox import decode_modified_utf7, encode_modified_utf7
from server.imap.proto.response import Atom, Literal8, MailboxName, format_value

from .conftest import events_of


def test_tagged_with_codes() -> None:
    assert TaggedResponse("a1", "OK", "SELECT completed", Code.READ_WRITE).to_bytes() == (
        b"a1 OK [READ-WRITE] SELECT completed\r\n"
    )
    assert TaggedResponse("a", "OK", "x", Code.uidvalidity(3857529045)).to_bytes() == (
        b"a OK [UIDVALIDITY 3857529045] x\r\n"
    )
    assert TaggedResponse(
        "a", "OK", "x", Code.appenduid(38505, SequenceSet.of(3955))
    ).to_bytes() == (b"a OK [APPENDUID 38505 3955] x\r\n")
    code = Code.copyuid(38505, SequenceSet.of(304, 319, 320), SequenceSet.of(3956, 3957, 3958))
    assert TaggedResponse("a", "OK", "Done", code).to_bytes() == (
        b"a OK [COPYUID 38505 304,319:320 3956:3958] Done\r\n"
    )
    perm = Code.permanentflags(["\\Deleted", "\\Seen", "\\*"])
    assert UntaggedStatus("OK", "Limited", perm).to_bytes() == (
        b"* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited\r\n"
    )
    assert UntaggedStatus("OK", "ready", Code.capability(["IMAP4rev2", "IDLE"])).to_bytes() == (
        b"* OK [CAPABILITY IMAP4rev2 IDLE] ready\r\n"
    )
    for code, text in [
        (Code.TRYCREATE, b"TRYCREATE"),
        (Code.TOOBIG, b"TOOBIG"),
        (Code.ALERT, b"ALERT"),
        (Code.AUTHENTICATIONFAILED, b"AUTHENTICATIONFAILED"),
        (Code.PRIVACYREQUIRED, b"PRIVACYREQUIRED"),
        (Code.CLOSED, b"CLOSED"),
        (Code.highestmodseq(9), b"HIGHESTMODSEQ 9"),
        (Code.NONEXISTENT, b"NONEXISTENT"),
        (Code.ALREADYEXISTS, b"ALREADYEXISTS"),
        (Code.CANNOT, b"CANNOT"),
        (Code.LIMIT, b"LIMIT"),
        (Code.UNAVAILABLE, b"UNAVAILABLE"),
        (Code.uidnext(4), b"UIDNEXT 4"),
    ]:
        assert TaggedResponse("t", "NO", "x", code).to_bytes() == b"t NO [" + text + b"] x\r\n"


def test_text_cannot_break_the_line() -> None:
    assert TaggedResponse("a", "NO", "evil\r\n* OK injected").to_bytes() == (
        b"a NO evil  * OK injected\r\n"
    )


def test_continuation() -> None:
    assert Continuation("idling").to_bytes() == b"+ idling\r\n"
    assert Continuation(data=b"challenge").to_bytes() == b"+ Y2hhbGxlbmdl\r\n"
    assert Continuation(data=b"").to_bytes() == b"+ \r\n"


def test_untagged_data() -> None:
    assert r.exists(23).to_bytes() == b"* 23 EXISTS\r\n"
    assert r.expunge(3).to_bytes() == b"* 3 EXPUNGE\r\n"
    assert r.vanished(SequenceSet.of(1, 2, 3), earlier=True).to_bytes() == (
        b"* VANISHED (EARLIER) 1:3\r\n"
    )
    assert r.flags(["\\Answered", "$Junk"]).to_bytes() == b"* FLAGS (\\Answered $Junk)\r\n"
    assert r.list_item(["\\HasNoChildren"], "/", "INBOX").to_bytes() == (
        b'* LIST (\\HasNoChildren) "/" "INBOX"\r\n'
    )
    assert r.list_item(
        ["\\Subscribed"], "/", "Été", [("CHILDINFO"), ["SUBSCRIBED"]]
    ).to_bytes() == (b'* LIST (\\Subscribed) "/" "&AMk-t&AOk-" ("CHILDINFO" ("SUBSCRIBED"))\r\n')
    assert r.list_item([], None, "Été").to_bytes(utf8=True) == '* LIST () NIL "Été"\r\n'.encode()
    assert r.status("blurdybloop", {"MESSAGES": 231, "UIDNEXT": 44292}).to_bytes() == (
        b'* STATUS "blurdybloop" (MESSAGES 231 UIDNEXT 44292)\r\n'
    )
    assert r.search([2, 3, 6]).to_bytes() == b"* SEARCH 2 3 6\r\n"
    assert r.search([], modseq=5).to_bytes() == b"* SEARCH (MODSEQ 5)\r\n"
    assert r.esearch(
        "a1", uid=True, results={"MIN": 2, "ALL": SequenceSet.of(2, 3, 4)}
    ).to_bytes() == (b'* ESEARCH (TAG "a1") UID MIN 2 ALL 2:4\r\n')
    assert r.enabled(["CONDSTORE"]).to_bytes() == b"* ENABLED CONDSTORE\r\n"
    assert (
        r.capability(["IMAP4rev2", "AUTH=PLAIN"]).to_bytes()
        == b"* CAPABILITY IMAP4rev2 AUTH=PLAIN\r\n"
    )
    assert r.namespace([("", "/")]).to_bytes() == b'* NAMESPACE (("" "/")) NIL NIL\r\n'
    assert r.id_data({"name": "Hygie"}).to_bytes() == b'* ID ("name" "Hygie")\r\n'


def test_fetch_response_keeps_body_as_its_own_chunk() -> None:
    body = b"x" * 100_000
    resp = FetchResponse(12, [("UID", 7), ("FLAGS", [Atom("\\Seen")]), ("BODY[]", body)])
    chunks = resp.chunks()
    assert any(chunk is body for chunk in chunks)
    assert (
        b"".join(chunks)
        == b"* 12 FETCH (UID 7 FLAGS (\\Seen) BODY[] {100000}\r\n" + body + b")\r\n"
    )
    binary = FetchResponse(1, [("BINARY[1]", Literal8(b"\x00\x01"))]).to_bytes()
    assert binary == b"* 1 FETCH (BINARY[1] ~{2}\r\n\x00\x01)\r\n"


def test_quoting_rules() -> None:
    assert format_value(None) == b"NIL"
    assert format_value("plain") == b'"plain"'
    assert format_value('say "hi" \\') == b'"say \\"hi\\" \\\\"'
    assert format_value("two\r\nlines") == b"{10}\r\ntwo\r\nlines"
    assert format_value("nul\x00") == b"{4}\r\nnul\x00"
    assert format_value("été") == "{5}\r\nété".encode()
    assert format_value("été", utf8=True) == '"été"'.encode()
    assert format_value([1, [None, "a"], Atom("\\Seen")]) == b'(1 (NIL "a") \\Seen)'
    assert format_value(MailboxName("Tom&Jerry")) == b'"Tom&-Jerry"'


def test_date_time_round_trip(parse: object) -> None:
    when = dt.datetime(2024, 3, 9, 8, 7, 6, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30)))
    text = r.format_date_time(when)
    assert text == "09-Mar-2024 08:07:06 +0530"
    (cmd,) = events_of(b'a APPEND x "' + text.encode() + b'" {1+}\r\nA\r\n')
    assert isinstance(cmd, c.Append) and cmd.messages[0].date_time == when


def test_error_response() -> None:
    assert error_response(ProtocolErrorEvent("Unknown command", "a1")).to_bytes() == (
        b"a1 BAD Unknown command\r\n"
    )
    assert error_response(
        ProtocolErrorEvent("Literal too large", "a1", "TOOBIG", "NO")
    ).to_bytes() == (b"a1 NO [TOOBIG] Literal too large\r\n")
    assert error_response(ProtocolErrorEvent("Missing tag")).to_bytes() == b"* BAD Missing tag\r\n"
    bad_charset = ProtocolErrorEvent("x", "a", "BADCHARSET (UTF-8 US-ASCII)", "NO")
    assert error_response(bad_charset).to_bytes() == b"a NO [BADCHARSET (UTF-8 US-ASCII)] x\r\n"


# --- round trips ---------------------------------------------------------------------------

seq_numbers = st.one_of(st.none(), st.integers(1, 2**32 - 1))


@settings(max_examples=200, deadline=500)
@given(st.lists(st.tuples(seq_numbers, seq_numbers), min_size=1, max_size=20))
def test_sequence_set_round_trip(ranges: list[tuple[int | None, int | None]]) -> None:
    seqset = SequenceSet(tuple(ranges))
    (cmd,) = events_of(b"a FETCH " + str(seqset).encode() + b" FLAGS\r\n")
    assert isinstance(cmd, c.Fetch)
    assert str(cmd.sequence_set) == str(seqset)
    assert cmd.sequence_set.resolve(50) == seqset.resolve(50)


def test_sequence_set_resolution() -> None:
    s = SequenceSet(((5, None), (2, 2), (4, 3)))
    assert s.resolve(7) == [(2, 7)]
    assert list(SequenceSet(((3, 1),)).iter(10)) == [1, 2, 3]
    assert SequenceSet.of(1, 2, 3, 7, 9, 10).ranges == ((1, 3), (7, 7), (9, 10))
    assert not SequenceSet(((None, None),)).contains(1, 0)


flag_names = st.one_of(
    st.sampled_from(["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"]),
    st.from_regex(r"\$?[A-Za-z][A-Za-z0-9_.\-]{0,15}", fullmatch=True),
)


@settings(max_examples=200, deadline=500)
@given(st.lists(flag_names, max_size=10))
def test_flag_list_round_trip(flags: list[str]) -> None:
    wire = r.flags(flags).to_bytes()[len(b"* FLAGS ") : -2]
    (cmd,) = events_of(b"a STORE 1 FLAGS " + wire + b"\r\n")
    assert isinstance(cmd, c.Store) and list(cmd.flags) == flags


@settings(max_examples=300, deadline=500)
@given(
    st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r\n"), max_size=30
    )
)
def test_mailbox_name_round_trip(name: str) -> None:
    encoded = encode_modified_utf7(name)
    assert encoded.isascii()
    assert decode_modified_utf7(encoded) == name
    for utf8 in (False, True):
        wire = format_value(MailboxName(name), utf8=utf8)
        (cmd,) = events_of(b"a SELECT " + wire + b"\r\n", utf8=utf8)
        assert isinstance(cmd, c.Select)
        expected = "INBOX" if name.upper() == "INBOX" else name
        assert cmd.mailbox == expected


def test_modified_utf7_known_values() -> None:
    assert encode_modified_utf7("~peter/mail/台北/日本語") == "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
    assert decode_modified_utf7("&Jjo-!") == "☺!"
    assert encode_modified_utf7("&") == "&-"
