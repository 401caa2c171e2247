"""Framing: literals, continuation requests, limits, resynchronisation, raw-line mode."""

from __future__ import annotations

from server.imap.proto import (
    CommandParser,
    ContinuationLine,
    ContinuationRequest,
    Limits,
    NeedData,
    ProtocolErrorEvent,
    decode_sasl_response,
)
from server.imap.proto import commands as c
from server.imap.proto.errors import LocalProtocolError

from .conftest import events_of


def test_sync_literal_asks_for_continuation_then_completes() -> None:
    p = CommandParser()
    p.receive_data(b"a1 LOGIN {5}\r\n")
    assert p.next_event() == ContinuationRequest("a1", 5)
    assert isinstance(p.next_event(), NeedData)
    p.receive_data(b"alice {6}\r\n")
    assert p.next_event() == ContinuationRequest("a1", 6)
    p.receive_data(b"s3cr\xc3")
    assert isinstance(p.next_event(), NeedData)
    p.receive_data(b"\xa9\r\n")
    cmd = p.next_event()
    assert cmd == c.Login("a1", "alice", "s3cré")
    assert isinstance(p.next_event(), NeedData)


def test_literal_plus_needs_no_continuation() -> None:
    events = events_of(b"a1 LOGIN {5+}\r\nalice {3+}\r\npwd\r\na2 NOOP\r\n")
    assert events == [c.Login("a1", "alice", "pwd"), c.Noop("a2")]


def test_literal_may_hold_crlf_and_brackets() -> None:
    events = events_of(b"a1 APPEND INBOX {12+}\r\n{3}\r\na2 NOOP\r\na2 NOOP\r\n")
    assert len(events) == 2
    append = events[0]
    assert isinstance(append, c.Append)
    assert append.messages[0].data == b"{3}\r\na2 NOOP"
    assert events[1] == c.Noop("a2")


def test_literal8_in_append() -> None:
    events = events_of(b"a1 APPEND Sent ~{4+}\r\nA\x00B\xff\r\n")
    assert isinstance(events[0], c.Append)
    assert events[0].messages[0] == c.AppendMessage((), None, b"A\x00B\xff", True)


def test_literal8_refused_outside_append() -> None:
    (event,) = events_of(b"a1 LOGIN ~{3+}\r\nabc pwd\r\n")
    assert isinstance(event, ProtocolErrorEvent) and event.tag == "a1"


def test_nul_in_plain_literal_is_refused() -> None:
    (event,) = events_of(b"a1 APPEND INBOX {3+}\r\na\x00b\r\n")
    assert isinstance(event, ProtocolErrorEvent) and event.tag == "a1"


def test_oversized_sync_literal_refused_without_continuation_and_resyncs() -> None:
    p = CommandParser(Limits(max_literal=100))
    p.receive_data(b"a1 APPEND INBOX {101}\r\na2 NOOP\r\n")
    err = p.next_event()
    assert err == ProtocolErrorEvent("Literal too large", "a1", "TOOBIG", "NO", False)
    assert p.next_event() == c.Noop("a2")


def test_huge_literal_length_is_too_big_not_a_crash() -> None:
    (err,) = events_of(b"a1 APPEND INBOX {" + b"9" * 25 + b"}\r\n")
    # 25 digits is not a literal at all: the grammar rejects the command.
    assert isinstance(err, ProtocolErrorEvent) and err.tag == "a1"
    (err,) = events_of(b"a1 APPEND INBOX {99999999999999999999}\r\n")
    assert isinstance(err, ProtocolErrorEvent) and err.code == "TOOBIG"


def test_oversized_nonsync_literal_closes_connection() -> None:
    p = CommandParser(Limits(max_literal=100, max_nonsync_literal=10))
    p.receive_data(b"a1 APPEND INBOX {11+}\r\n0123456789A\r\na2 NOOP\r\n")
    err = p.next_event()
    assert isinstance(err, ProtocolErrorEvent)
    assert (err.tag, err.code, err.status, err.close_connection) == ("a1", "TOOBIG", "BAD", True)
    assert p.closed
    p.receive_data(b"a3 NOOP\r\n")
    assert isinstance(p.next_event(), NeedData)
    assert p.buffered_bytes == 0


def test_max_command_counts_all_literals() -> None:
    limits = Limits(max_literal=100, max_command=150)
    events = events_of(b"a1 APPEND INBOX {60+}\r\n" + b"x" * 60 + b" {80}\r\n", limits)
    assert isinstance(events[-1], ProtocolErrorEvent) and events[-1].code == "TOOBIG"


def test_malformed_literal_is_an_error_and_session_goes_on() -> None:
    events = events_of(b"a1 LOGIN {abc}\r\na2 NOOP\r\n")
    assert isinstance(events[0], ProtocolErrorEvent) and events[0].tag == "a1"
    assert events[1] == c.Noop("a2")


def test_unknown_command_with_sync_literal_refused_before_continuation() -> None:
    events = events_of(b"a1 FROB {5}\r\na2 NOOP\r\n")
    assert events[0] == ProtocolErrorEvent("Unknown command", "a1")
    assert events[1] == c.Noop("a2")


def test_unknown_command_gets_tagged_bad() -> None:
    events = events_of(b"x7 FROBNICATE now\r\nx8 CAPABILITY\r\n")
    assert isinstance(events[0], ProtocolErrorEvent)
    assert (events[0].tag, events[0].status, events[0].text) == ("x7", "BAD", "Unknown command")
    assert events[1] == c.Capability("x8")


def test_untagged_garbage_gets_untagged_bad() -> None:
    events = events_of(b"\r\n(((\r\n+ NOOP\r\n")
    assert all(isinstance(e, ProtocolErrorEvent) and e.tag is None for e in events)
    assert len(events) == 3


def test_line_too_long_rejected_early_then_resyncs() -> None:
    p = CommandParser(Limits(max_line=100))
    p.receive_data(b"a1 LOGIN " + b"x" * 200)
    err = p.next_event()
    assert isinstance(err, ProtocolErrorEvent) and err.tag == "a1" and err.code == "TOOBIG"
    assert isinstance(p.next_event(), NeedData)
    assert p.buffered_bytes == 0
    p.receive_data(b"y" * 10_000)
    assert isinstance(p.next_event(), NeedData)
    assert p.buffered_bytes == 0
    p.receive_data(b"zz\r\na2 NOOP\r\n")
    assert p.next_event() == c.Noop("a2")


def test_line_at_limit_is_accepted() -> None:
    line = b"a1 LOGIN " + b"u" * 40 + b" " + b"p" * 50
    assert len(line) == 100
    (cmd,) = events_of(line + b"\r\n", Limits(max_line=100))
    assert isinstance(cmd, c.Login)


def test_bare_lf_accepted() -> None:
    assert events_of(b"a1 NOOP\na2 LOGOUT\n") == [c.Noop("a1"), c.Logout("a2")]


def test_byte_by_byte_feeding() -> None:
    p = CommandParser()
    data = b"a1 LOGIN {5}\r\nalice pw\r\na2 UID FETCH 1:* FLAGS\r\n"
    events = []
    for i in range(len(data)):
        p.receive_data(data[i : i + 1])
        while not isinstance(e := p.next_event(), NeedData):
            events.append(e)
    assert events[0] == ContinuationRequest("a1", 5)
    assert events[1] == c.Login("a1", "alice", "pw")
    assert isinstance(events[2], c.Fetch) and events[2].uid


def test_expect_line_for_authenticate() -> None:
    p = CommandParser()
    p.receive_data(b"a1 AUTHENTICATE PLAIN\r\n")
    assert p.next_event() == c.Authenticate("a1", "PLAIN", None)
    p.expect_line()
    p.receive_data(b"AGFsaWNlAHB3\r\n*\r\na2 NOOP\r\n")
    line = p.next_event()
    assert line == ContinuationLine(b"AGFsaWNlAHB3")
    assert decode_sasl_response(line.data) == b"\x00alice\x00pw"
    p.expect_line()
    assert p.next_event() == ContinuationLine(b"*")
    assert p.next_event() == c.Noop("a2")


def test_expect_line_for_idle_done() -> None:
    p = CommandParser()
    p.receive_data(b"a1 IDLE\r\n")
    assert p.next_event() == c.Idle("a1")
    p.expect_line()
    assert isinstance(p.next_event(), NeedData)
    p.receive_data(b"DO")
    assert isinstance(p.next_event(), NeedData)
    p.receive_data(b"NE\r\n")
    assert p.next_event() == ContinuationLine(b"DONE")


def test_expect_line_too_long() -> None:
    p = CommandParser(Limits(max_line=10))
    p.expect_line()
    p.receive_data(b"A" * 50 + b"\r\na1 NOOP\r\n")
    err = p.next_event()
    assert isinstance(err, ProtocolErrorEvent) and err.tag is None
    assert p.next_event() == c.Noop("a1")


def test_expect_line_mid_command_is_our_bug() -> None:
    p = CommandParser()
    p.receive_data(b"a1 LOGIN {3}\r\n")
    p.next_event()
    try:
        p.expect_line()
    except LocalProtocolError:
        pass
    else:
        raise AssertionError("expect_line() mid-literal must raise")


def test_sasl_response_decoding() -> None:
    assert decode_sasl_response(b"=") == b""
    assert decode_sasl_response(b"dGVzdA==") == b"test"
    assert decode_sasl_response(b"not base64!") is None
    assert decode_sasl_response(b"abc") is None


def test_item_limit() -> None:
    limits = Limits(max_items=50)
    seq = b",".join(str(i).encode() for i in range(1, 60))
    (err,) = events_of(b"a1 FETCH " + seq + b" FLAGS\r\n", limits)
    assert isinstance(err, ProtocolErrorEvent) and err.code == "LIMIT" and err.tag == "a1"


def test_search_depth_limit() -> None:
    (err,) = events_of(b"a1 SEARCH " + b"NOT " * 100 + b"SEEN\r\n")
    assert isinstance(err, ProtocolErrorEvent) and err.code == "LIMIT"
    (err,) = events_of(b"a1 SEARCH " + b"(" * 40 + b"SEEN" + b")" * 40 + b"\r\n")
    assert isinstance(err, ProtocolErrorEvent) and err.code == "LIMIT"


def test_large_literal_is_not_copied_per_chunk() -> None:
    p = CommandParser()
    size = 8 * 1024 * 1024
    p.receive_data(b"a1 APPEND INBOX {%d}\r\n" % size)
    assert isinstance(p.next_event(), ContinuationRequest)
    chunk = b"x" * 65536
    for _ in range(size // len(chunk)):
        p.receive_data(chunk)
    p.receive_data(b"\r\n")
    cmd = p.next_event()
    assert isinstance(cmd, c.Append) and len(cmd.messages[0].data) == size
