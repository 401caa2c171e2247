"""Property tests: any input gives commands, NeedData, continuations or protocol errors —
never another exception, never unbounded buffering, always in bounded time."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.imap.proto import (
    Command,
    CommandParser,
    ContinuationLine,
    ContinuationRequest,
    Limits,
    NeedData,
    ProtocolErrorEvent,
)

LIMITS = Limits(
    max_line=256, max_literal=512, max_nonsync_literal=128, max_command=2048, max_items=100
)
ALLOWED = (Command, ContinuationRequest, ContinuationLine, ProtocolErrorEvent)

VALID = [
    b"a1 CAPABILITY\r\n",
    b"a2 LOGIN {5}\r\nalice {3+}\r\npwd\r\n",
    b"a3 UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)]<0.100>)\r\n",
    b'a4 APPEND INBOX (\\Seen) "05-Jul-1994 02:04:05 -0700" {5+}\r\nhello\r\n',
    b"a5 SEARCH RETURN (COUNT) OR (SEEN FROM x) NOT 1:3 SINCE 1-Jan-2020\r\n",
    b'a6 LIST (SUBSCRIBED) "" ("*" %) RETURN (STATUS (MESSAGES))\r\n',
    b"a7 STORE 1 +FLAGS.SILENT (\\Deleted)\r\n",
    b"a8 SELECT INBOX (QRESYNC (1 2 1:9 (1,5 10,50)))\r\n",
    b"a9 IDLE\r\n",
    b"b1 AUTHENTICATE PLAIN =\r\n",
]

TOKENS = st.sampled_from(
    [b" ", b"(", b")", b"{", b"}", b"{3}\r\n", b"{2+}\r\n", b"~{1}\r\n", b"\r\n", b"\n", b'"',
     b"\\", b"[", b"]", b"<", b">", b"*", b"%", b"$", b"1:*", b"UID", b"FETCH", b"SEARCH",
     b"NOT", b"OR", b"a1", b"BODY[", b"HEADER.FIELDS", b"{99999}\r\n", b"{9+}\r\n", b"x" * 300]
)  # fmt: skip


def drain(parser: CommandParser, *, expect_lines: bool = False) -> list[object]:
    out: list[object] = []
    for _ in range(10_000):
        event = parser.next_event()
        if isinstance(event, NeedData):
            # Bounded: an unfinished line plus the command being assembled.
            assert parser.buffered_bytes <= LIMITS.max_line + 2 + LIMITS.max_command
            return out
        assert isinstance(event, ALLOWED), event
        if expect_lines and isinstance(event, Command):
            parser.expect_line()
        out.append(event)
    raise AssertionError("next_event() did not reach NeedData")


@settings(max_examples=400, deadline=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=400), max_size=8), st.booleans())
def test_arbitrary_bytes(chunks: list[bytes], expect_lines: bool) -> None:
    parser = CommandParser(LIMITS)
    for chunk in chunks:
        parser.receive_data(chunk)
        drain(parser, expect_lines=expect_lines)


@settings(max_examples=400, deadline=500)
@given(st.lists(TOKENS, max_size=40), st.integers(min_value=1, max_value=50))
def test_token_soup(tokens: list[bytes], step: int) -> None:
    data = b"t1 " + b"".join(tokens) + b"\r\n"
    parser = CommandParser(LIMITS)
    for i in range(0, len(data), step):
        parser.receive_data(data[i : i + step])
        drain(parser)


@settings(max_examples=200, deadline=500)
@given(st.data())
def test_fragmented_valid_commands_parse_the_same(data: st.DataObject) -> None:
    stream = b"".join(VALID)
    whole = [e for e in _events(stream, [len(stream)]) if not isinstance(e, ContinuationRequest)]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=20)))
    pieces = [b - a for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    fragmented = [e for e in _events(stream, pieces) if not isinstance(e, ContinuationRequest)]
    assert fragmented == whole
    assert len(whole) == len(VALID)
    assert all(isinstance(e, Command) for e in whole)


def _events(stream: bytes, sizes: list[int]) -> list[object]:
    parser = CommandParser(LIMITS)
    out: list[object] = []
    pos = 0
    for size in sizes:
        parser.receive_data(stream[pos : pos + size])
        pos += size
        out += drain(parser)
    return out


@settings(max_examples=200, deadline=500)
@given(st.sampled_from(VALID), st.integers(0, 200), st.binary(min_size=1, max_size=3))
def test_mutated_valid_commands(command: bytes, at: int, junk: bytes) -> None:
    at = min(at, len(command))
    parser = CommandParser(LIMITS)
    parser.receive_data(command[:at] + junk + command[at:] + b"\r\nz9 NOOP\r\n")
    events = drain(parser)
    assert events  # something came out: a command or an error, and the stream went on
