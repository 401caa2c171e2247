"""Incremental command framing: bytes in, events out (sans-I/O, after h11).

:class:`CommandParser` cuts the byte stream into commands — lines plus the literals they
announce — under hard :class:`~.limits.Limits`, asks for continuations for synchronizing
literals, and hands each complete command to :mod:`.grammar`.

Usage by the session::

    parser = CommandParser(Limits())
    parser.receive_data(chunk)
    while not isinstance(event := parser.next_event(), NeedData):
        match event:
            case ContinuationRequest():   send(b"+ Ready for literal data\\r\\n")
            case ProtocolErrorEvent():    send(error_response(event)); maybe close
            case ContinuationLine():      # only after parser.expect_line()
            case Command():               dispatch(event)

Call ``next_event`` until it returns :data:`NEED_DATA` after every ``receive_data``; the
parser then holds at most ``max_line`` bytes of an unfinished line plus the command being
assembled (at most ``max_command`` bytes).
"""

from __future__ import annotations

from enum import Enum, auto

from .commands import COMMAND_NAMES, Command
from .errors import LocalProtocolError, RemoteProtocolError
from .events import (
    NEED_DATA,
    ContinuationLine,
    ContinuationRequest,
    NeedData,
    ProtocolErrorEvent,
)
from .grammar import ATOM_RE, TAG_RE, parse_command
from .limits import Limits

Event = Command | NeedData | ContinuationRequest | ContinuationLine | ProtocolErrorEvent

_COMPACT_AT = 64 * 1024


class _State(Enum):
    LINE = auto()  # reading command text up to LF
    LITERAL = auto()  # reading the bytes of a literal
    DISCARD_LINE = auto()  # skipping the rest of an over-long line
    CLOSED = auto()  # fatal error reported: everything is discarded


def _literal_at_end(line: bytes) -> tuple[int, bool] | None:
    """RFC 9051 §9 / RFC 7888: does ``line`` end with ``{n}``, ``{n+}`` or ``~{n}``?

    Returns (size, synchronizing); size -1 if too large to represent. ``{abc}`` is no literal:
    the grammar reports it.
    """
    if not line.endswith(b"}"):
        return None
    start = line.rfind(b"{", max(0, len(line) - 24))
    if start < 0:
        return None
    digits = line[start + 1 : -1]
    sync = True
    if digits.endswith(b"+"):
        digits = digits[:-1]
        sync = False
    if not digits or not digits.isdigit():
        return None
    return (int(digits) if len(digits) <= 20 else -1), sync


class CommandParser:
    """Incremental IMAP command parser.

    ``utf8`` selects how mailbox names are decoded: modified UTF-7 (IMAP4rev1) or UTF-8
    (IMAP4rev2 / ``ENABLE UTF8=ACCEPT``); the session may change it at any time.
    """

    def __init__(self, limits: Limits | None = None, *, utf8: bool = False) -> None:
        self.limits = limits or Limits()
        self.utf8 = utf8
        self._buf = bytearray()
        self._pos = 0
        self._state = _State.LINE
        self._expect_line = False
        self._lines: list[bytes] = []
        self._literals: list[bytes] = []
        self._size = 0
        self._tag: str | None = None
        self._literal = bytearray()
        self._need = 0

    # --- public API ----------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the client. ``b""`` (end of stream) is ignored: the session closes."""
        if self._state is _State.CLOSED or not data:
            return
        if self._state is _State.LITERAL and self._pos >= len(self._buf):
            # Fast path for message bodies: straight into the literal, one copy.
            take = min(self._need, len(data))
            self._literal += data[:take] if take < len(data) else data
            self._need -= take
            data = data[take:]
            if not data:
                return
        self._buf += data

    def expect_line(self) -> None:
        """Return the next line as a :class:`ContinuationLine` instead of parsing a command.

        For the client's AUTHENTICATE responses (base64, ``=`` or ``*`` to cancel; decode with
        :func:`~.grammar.decode_sasl_response`) and for ``DONE`` ending IDLE. One line per call;
        call it again for the next SASL step. Lines longer than ``max_line`` give a
        :class:`ProtocolErrorEvent` (without tag) instead.
        """
        if self._lines or self._state is _State.LITERAL:
            raise LocalProtocolError("expect_line() in the middle of a command")
        self._expect_line = True

    @property
    def buffered_bytes(self) -> int:
        """Bytes held: unread input plus the command being assembled."""
        return len(self._buf) - self._pos + self._size + len(self._literal)

    @property
    def closed(self) -> bool:
        """A fatal error was reported; the session must close the connection."""
        return self._state is _State.CLOSED

    def next_event(self) -> Event:
        """The next event; :data:`NEED_DATA` when more input is needed. Never raises on input."""
        while True:
            state = self._state
            if state is _State.CLOSED:
                return NEED_DATA
            if state is _State.LITERAL:
                if self._need:
                    available = len(self._buf) - self._pos
                    if not available:
                        return NEED_DATA
                    take = min(self._need, available)
                    self._literal += self._buf[self._pos : self._pos + take]
                    self._pos += take
                    self._need -= take
                    self._compact()
                    if self._need:
                        return NEED_DATA
                self._literals.append(bytes(self._literal))
                self._size += len(self._literal)
                self._literal = bytearray()
                self._state = _State.LINE
                continue
            line = self._read_line()
            if line is None:
                return NEED_DATA
            if isinstance(line, ProtocolErrorEvent):
                return line
            if self._expect_line:
                self._expect_line = False
                return ContinuationLine(line)
            event = self._on_line(line)
            if event is not None:
                return event

    # --- framing -------------------------------------------------------------------------------

    def _compact(self) -> None:
        if self._pos >= len(self._buf):
            self._buf.clear()
            self._pos = 0
        elif self._pos > _COMPACT_AT:
            del self._buf[: self._pos]
            self._pos = 0

    def _read_line(self) -> bytes | ProtocolErrorEvent | None:
        max_line = self.limits.max_line
        buf = self._buf
        if self._state is _State.DISCARD_LINE:
            idx = buf.find(b"\n", self._pos)
            if idx < 0:
                buf.clear()
                self._pos = 0
                return None
            self._pos = idx + 1
            self._compact()
            self._state = _State.LINE
        # Search no further than the limit (plus CR LF): over-long lines are refused early.
        idx = buf.find(b"\n", self._pos, self._pos + max_line + 2)
        if idx < 0:
            if len(buf) - self._pos <= max_line + 1:
                return None
            head = bytes(buf[self._pos : self._pos + 64])
            # No LF in the first max_line + 2 bytes: drop them, and the rest up to the next LF.
            self._pos += max_line + 2
            self._compact()
            self._state = _State.DISCARD_LINE
            return self._line_too_long(head)
        end = idx - 1 if idx > self._pos and buf[idx - 1] == 0x0D else idx
        line = bytes(buf[self._pos : end])
        self._pos = idx + 1
        self._compact()
        if len(line) > max_line:
            return self._line_too_long(line[:64])
        return line

    def _line_too_long(self, head: bytes) -> ProtocolErrorEvent:
        if self._expect_line:
            self._expect_line = False
            return ProtocolErrorEvent("Line too long", code="TOOBIG")
        tag = self._tag if self._lines else _sniff_tag(head)
        self._reset()
        return ProtocolErrorEvent("Line too long", tag, "TOOBIG")

    def _on_line(self, line: bytes) -> Event | None:
        first = not self._lines
        if first:
            self._tag = _sniff_tag(line)
        self._lines.append(line)
        self._size += len(line)
        limits = self.limits
        if self._size > limits.max_command:
            return self._reject("Command too long", "TOOBIG", "BAD")
        literal = _literal_at_end(line)
        if literal is None:
            return self._complete()
        size, sync = literal
        if sync and first and not _known_command(line):
            # RFC 9051 §7.5: refuse before the client sends the literal.
            return self._reject("Unknown command", None, "BAD")
        too_big = (
            size < 0
            or size > (limits.max_literal if sync else limits.max_nonsync_literal)
            or self._size + size > limits.max_command
        )
        if too_big and sync:
            # RFC 9051 §7.1 TOOBIG: refuse instead of "+"; the client will not send the bytes.
            return self._reject("Literal too large", "TOOBIG", "NO")
        if too_big:
            # RFC 7888 §4: the bytes are on their way; we cannot resynchronise.
            event = ProtocolErrorEvent(
                "Non-synchronizing literal too large", self._tag, "TOOBIG", "BAD", True
            )
            self._close()
            return event
        self._state = _State.LITERAL
        self._need = size
        self._literal = bytearray()
        if sync:
            return ContinuationRequest(self._tag or "", size)
        return None

    def _complete(self) -> Event:
        lines, literals = self._lines, self._literals
        tag = self._tag
        self._reset()
        try:
            return parse_command(lines, literals, self.limits, utf8=self.utf8)
        except RemoteProtocolError as err:
            if err.tag is None:
                err.tag = tag
            return ProtocolErrorEvent.from_error(err)
        except RecursionError:  # pragma: no cover - bounded by Limits; last line of defence
            return ProtocolErrorEvent("Command too complex", tag, "LIMIT")

    def _reject(self, text: str, code: str | None, status: str) -> ProtocolErrorEvent:
        tag = self._tag
        self._reset()
        return ProtocolErrorEvent(text, tag, code, "NO" if status == "NO" else "BAD")

    def _reset(self) -> None:
        self._lines = []
        self._literals = []
        self._size = 0
        self._tag = None
        self._literal = bytearray()
        self._need = 0
        if self._state is _State.LITERAL:
            self._state = _State.LINE

    def _close(self) -> None:
        self._reset()
        self._state = _State.CLOSED
        self._buf = bytearray()
        self._pos = 0


def _sniff_tag(line: bytes) -> str | None:
    m = TAG_RE.match(line)
    if m is None or line[m.end() : m.end() + 1] != b" ":
        return None
    return m.group().decode("ascii")


def _known_command(line: bytes) -> bool:
    m = TAG_RE.match(line)
    if m is None:
        return False
    word = ATOM_RE.match(line, m.end() + 1)
    return word is not None and word.group().decode("ascii").upper() in COMMAND_NAMES
