"""Scripted IMAP dialogues: the client says exactly what the script says, and each expected
server line is matched against what really came back (RFC 9051 §2.2, §7).

    tc.C("a1 SELECT INBOX")
    tc.S("* 3 EXISTS",
         "* OK [UIDVALIDITY {uidvalidity}] …",
         "a1 OK [READ-WRITE] …")

Expected lines are whole-line patterns:

* ``…`` matches any text; a final `` …`` (space, ellipsis) also matches nothing, so
  ``a1 OK …`` accepts ``a1 OK`` followed by any human-readable text.
* ``{name}`` matches one IMAP token (an atom, a number or a quoted string) and remembers it in
  ``tc.vars[name]``; once remembered, a later ``{name}`` must be the same value. ``{}`` matches a
  token and forgets it. ``{name:REGEX}`` (or ``{:REGEX}``) matches a regular expression.
* ``{42}`` (digits) is IMAP's literal syntax and is matched as written: a response carrying a
  literal is one line here, ``* 1 FETCH (BODY[TEXT] {5}\\r\\nHello)``; :func:`lit` writes one.

``S`` reads responses until every expected line has been seen. Untagged lines may arrive in any
order (RFC 9051 §7: the server may send them in any order) and unexpected untagged lines are
allowed, unless ``absent=`` names lines that must not appear. An expected tagged line ends the
block: when it arrives, the untagged lines still missing are an error.
"""

from __future__ import annotations

import re
import socket
import ssl
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tests.support.dialogue import LineSocket

TIMEOUT = 5.0  # seconds a block of expected lines may take; tests that wait say so

_PLACEHOLDER = re.compile(
    r" …$"  # optional trailing human-readable text
    r"|…"  # any text
    r"|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)?(?::(?P<regex>(?:[^{}\\]|\\.|\{[\d,]*\})+))?\}"
)
# One IMAP token: quoted string, or a run of characters that are not space or brackets.
_RECENT_FLAG = re.compile(r"(?<=\()\\Recent ?| \\Recent(?=[ )])")
_TOKEN = r'"(?:[^"\\]|\\.)*"|[^\s()\[\]]+'


class Server(Protocol):
    imap_port: int
    imap_tls_port: int

    def ssl_context(self) -> ssl.SSLContext: ...


def lit(data: str | bytes) -> str:
    """A synchronizing literal as it appears on the wire: ``{n}\\r\\n`` then the octets."""
    raw = data.encode() if isinstance(data, str) else data
    return f"{{{len(raw)}}}\r\n" + raw.decode("utf-8", "surrogateescape")


def quoted(text: str) -> str:
    """An IMAP quoted string (RFC 9051 §4.3)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class Expectation:
    text: str
    regex: re.Pattern[str]
    names: list[str]

    @property
    def tagged(self) -> bool:
        return not self.text.startswith(("* ", "+"))


@dataclass
class Reply:
    """What one :meth:`Script.S` call read: every line (literals inlined) and their literals."""

    lines: list[str] = field(default_factory=list)
    literals: list[bytes] = field(default_factory=list)
    matches: dict[str, str] = field(default_factory=dict)

    def having(self, pattern: str) -> list[str]:
        """The lines that match ``pattern`` (``…`` and ``{}`` placeholders allowed)."""
        regex = compile_expected(pattern, {})[0]
        return [line for line in self.lines if regex.fullmatch(line)]


_FLAG_LIST = re.compile(
    r"(?<=FLAGS \()[\\$\w -]*(?=\))|(?<=^\* LIST \()[\\$\w -]*(?=\))"
    r"|(?<=^\* LSUB \()[\\$\w -]*(?=\))"
)
_SEARCH = re.compile(r"^\* SEARCH((?: \d+)+)$")
_NAME_AT_END = re.compile(r'^(\* (?:LIST|LSUB) \([^)]*\) (?:"."|NIL) )"([^"\\\s(){%*\]]+)"')
_STATUS_NAME = re.compile(r'^(\* STATUS )"([^"\\\s(){%*\]]+)"')


def canonical(line: str) -> str:
    """Spell what the RFC leaves free one way, in received lines and expectations alike:
    flags and mailbox attributes sorted (sets, RFC 9051 §2.3.2, §7.3.1), ``* SEARCH`` numbers
    sorted, and mailbox names that need no quotes unquoted (astrings, RFC 9051 §4.3)."""
    line = _FLAG_LIST.sub(lambda m: " ".join(sorted(m.group(0).split(), key=str.lower)), line)
    if m := _SEARCH.match(line):
        line = "* SEARCH " + " ".join(sorted(m.group(1).split(), key=int))
    line = _NAME_AT_END.sub(r"\1\2", line)
    return _STATUS_NAME.sub(r"\1\2", line)


def compile_expected(pattern: str, known: dict[str, str]) -> tuple[re.Pattern[str], list[str]]:
    out: list[str] = []
    names: list[str] = []
    pos = 0
    for m in _PLACEHOLDER.finditer(pattern):
        out.append(re.escape(pattern[pos : m.start()]))
        pos = m.end()
        token = m.group(0)
        if token == " …":
            out.append(r"(?: .*)?")
        elif token == "…":
            out.append(r".*?")
        else:
            name, regex = m.group("name"), m.group("regex")
            if name and name in known:
                out.append(re.escape(known[name]))
            elif name and name not in names:
                names.append(name)
                out.append(f"(?P<{name}>{regex or _TOKEN})")
            elif name:  # same new name twice in one line: the second must equal the first
                out.append(f"(?P={name})")
            else:
                out.append(f"(?:{regex or _TOKEN})")
    out.append(re.escape(pattern[pos:]))
    return re.compile("".join(out), re.DOTALL), names


class Script:
    """One IMAP connection in a dialogue test (``tc``, ``tc2`` …)."""

    def __init__(self, conn: LineSocket, name: str = "tc") -> None:
        self.conn = conn
        self.name = name
        #: ``\\Recent`` is gone from IMAP4rev2 (RFC 9051 Appendix E) and optional for a server
        #: that speaks both revisions, so received lines are matched without it (and without
        #: ``* n RECENT``, an untagged line the scripts never require) unless this is set.
        self.keep_recent = False
        self.vars: dict[str, str] = {}
        self.transcript: list[str] = []

    # -- connecting --------------------------------------------------------------------------

    @classmethod
    def connect(
        cls,
        server: Server,
        *,
        starttls_port: bool = False,
        name: str = "tc",
        source: str | None = None,
        timeout: float = TIMEOUT,
    ) -> Script:
        """Connect to the implicit-TLS port (trusting the data directory's root CA), or in
        plaintext to the STARTTLS port, from the loopback address ``source`` if given
        (127.0.0.2 …: a client at another address). The greeting is left for the script."""
        port = server.imap_port if starttls_port else server.imap_tls_port
        sock = socket.create_connection(
            ("127.0.0.1", port), timeout=timeout, source_address=(source, 0) if source else None
        )
        if not starttls_port:
            sock = server.ssl_context().wrap_socket(sock, server_hostname="127.0.0.1")
        return cls(LineSocket(sock, timeout=timeout), name)

    def starttls(self, server: Server) -> None:
        """The TLS handshake after ``OK`` to STARTTLS (nothing may be buffered before it)."""
        self.conn.starttls(server.ssl_context())

    # -- the two verbs -----------------------------------------------------------------------

    def C(self, line: str | bytes) -> None:
        """Send one command line (or the end of one, after a literal); CRLF is added."""
        data = line.encode() if isinstance(line, str) else line
        self.send(data + b"\r\n")

    def send(self, data: bytes) -> None:
        """Send bytes as they are: a literal's octets, a line without its end …"""
        shown = data if len(data) <= 300 else data[:300] + b"..."
        self.transcript.append(f"{self.name} C: {shown!r}")
        self.conn.send(data)

    def S(
        self,
        *expected: str,
        absent: Iterable[str] = (),
        timeout: float = TIMEOUT,
        ordered: bool = False,
    ) -> Reply:
        """Read responses until every ``expected`` line has come (see the module docstring).

        ``ordered``: the expected lines must arrive in the order written.
        ``absent``: patterns no line read here may match.
        """
        pending = [self._expect(text) for text in expected]
        tagged = [e for e in pending if e.tagged]
        assert len(tagged) <= 1 and (not tagged or pending[-1] is tagged[0]), (
            "a block has at most one tagged line, and it comes last"
        )
        forbidden = [compile_expected(p, {})[0] for p in absent]
        reply = Reply()
        deadline = time.monotonic() + timeout
        while pending:
            line, literals = self._line(deadline, pending)
            reply.lines.append(line)
            reply.literals += literals
            for regex in forbidden:
                assert not regex.fullmatch(line), self._fail(f"unexpected line {line!r}", pending)
            candidates = pending[:1] if ordered else pending
            hit = next((e for e in candidates if self._match(e, line, reply)), None)
            if hit is not None:
                pending.remove(hit)
                if hit.names:  # what it captured may be used by the lines still to come
                    pending = [self._expect(e.text) for e in pending]
                continue
            if ordered and any(e.regex.fullmatch(line) for e in pending[1:]):
                raise AssertionError(self._fail(f"out of order: {line!r}", pending))
            if not line.startswith(("* ", "+")):
                raise AssertionError(self._fail(f"got {line!r}", pending))
            if line.startswith("+") and pending and pending[0].text.startswith("+"):
                raise AssertionError(self._fail(f"got {line!r}", pending))
        return reply

    # -- shortcuts for the set-up part of a script --------------------------------------------

    def greeting(self) -> Reply:
        return self.S("* OK …")

    def login(self, user: str, password: str, tag: str = "L1") -> None:
        self.C(f"{tag} LOGIN {quoted(user)} {quoted(password)}")
        self.S(f"{tag} OK …")

    def open(self, user: str, password: str) -> Script:
        """Greeting and LOGIN: the usual first lines, when they are not what the test is about."""
        self.greeting()
        self.login(user, password)
        return self

    def append(
        self, mailbox: str, message: bytes, flags: str = "", date: str = "", tag: str = "P1"
    ) -> None:
        """APPEND with a synchronizing literal (RFC 9051 §6.3.12)."""
        args = " ".join(a for a in (flags and f"({flags})", date and quoted(date)) if a)
        self.C(f"{tag} APPEND {mailbox} {args + ' ' if args else ''}{{{len(message)}}}")
        self.S("+ …")
        self.C(message)
        self.S(f"{tag} OK …")

    def closed(self, within: float = 3.0) -> bool:
        """True when the server closes the connection within ``within`` seconds (the lines it
        says before closing go to the transcript)."""
        deadline = time.monotonic() + within
        while True:
            try:
                self._line(deadline, [])
            except (ConnectionError, ssl.SSLError, OSError):
                return True
            except AssertionError:  # timed out: still open
                return False

    def close(self) -> None:
        self.conn.close()

    # -- reading -------------------------------------------------------------------------------

    def _expect(self, text: str) -> Expectation:
        regex, names = compile_expected(canonical(text), self.vars)
        return Expectation(text, regex, names)

    def _match(self, e: Expectation, line: str, reply: Reply) -> bool:
        m = e.regex.fullmatch(line)
        if not m:
            return False
        for name in e.names:
            self.vars[name] = reply.matches[name] = m.group(name)
        # Later expectations may refer to what this one just captured.
        return True

    def _line(self, deadline: float, pending: Sequence[Expectation]) -> tuple[str, list[bytes]]:
        """One response line with its literals inlined (RFC 9051 §4.3, literal8 of RFC 3516)."""
        literals: list[bytes] = []
        raw = self._readline(deadline, pending)
        while (m := re.search(rb"~?\{(\d+)\}$", raw)) is not None:
            data = self._read_exactly(int(m.group(1)), deadline, pending)
            literals.append(data)
            raw += b"\r\n" + data + self._readline(deadline, pending)
        line = raw.decode("utf-8", "surrogateescape")
        if line.startswith("* "):
            if not self.keep_recent:
                line = _RECENT_FLAG.sub("", line)
            line = canonical(line)
        shown = line if len(line) <= 400 else line[:400] + "..."
        self.transcript.append(f"{self.name} S: {shown!r}")
        return line, literals

    def _wait(self, deadline: float, pending: Sequence[Expectation]) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(self._fail("timed out", pending))
        self.conn.sock.settimeout(remaining)

    def _readline(self, deadline: float, pending: Sequence[Expectation]) -> bytes:
        while (end := self.conn.buffer.find(b"\r\n")) < 0:
            self._fill(deadline, pending)
        line = bytes(self.conn.buffer[:end])
        del self.conn.buffer[: end + 2]
        return line

    def _read_exactly(self, n: int, deadline: float, pending: Sequence[Expectation]) -> bytes:
        while len(self.conn.buffer) < n:
            self._fill(deadline, pending)
        data = bytes(self.conn.buffer[:n])
        del self.conn.buffer[:n]
        return data

    def _fill(self, deadline: float, pending: Sequence[Expectation]) -> None:
        self._wait(deadline, pending)
        try:
            chunk = self.conn.sock.recv(65536)
        except TimeoutError:
            raise AssertionError(self._fail("timed out", pending)) from None
        if not chunk:
            raise ConnectionError(
                self._fail(f"connection closed; unread {bytes(self.conn.buffer)!r}", pending)
            )
        self.conn.buffer += chunk

    def _fail(self, what: str, pending: Sequence[Expectation]) -> str:
        want = "\n".join(f"    S: {e.text}" for e in pending) or "    (nothing)"
        return f"{what}\n  still expected:\n{want}\n  transcript:\n    " + "\n    ".join(
            self.transcript[-25:]
        )


# -- IMAP data as Python values, to compare structures that may be spelled several ways --------

_DATA_TOKEN = re.compile(
    rb'\s*(?:(?P<open>\()|(?P<close>\))|"(?P<quoted>(?:[^"\\]|\\.)*)"'
    rb"|~?\{(?P<lit>\d+)\}\r\n|(?P<atom>[^\s()\"]+))"
)

Value = Any  # None (NIL) | bytes | int | list[Value]


def parse_data(text: str | bytes) -> Value:
    """One IMAP value (RFC 9051 §4): a list, a string (quoted or literal), a number or NIL."""
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    stack: list[list[Value]] = [[]]
    pos = 0
    while pos < len(data):
        if data[pos:].strip() == b"":
            break
        m = _DATA_TOKEN.match(data, pos)
        assert m, f"cannot parse IMAP data at {data[pos : pos + 40]!r}"
        pos = m.end()
        if m.group("open"):
            stack.append([])
        elif m.group("close"):
            done = stack.pop()
            stack[-1].append(done)
        elif m.group("quoted") is not None:
            stack[-1].append(re.sub(rb"\\(.)", rb"\1", m.group("quoted")))
        elif m.group("lit") is not None:
            n = int(m.group("lit"))
            stack[-1].append(data[pos : pos + n])
            pos += n
        else:
            atom = m.group("atom")
            stack[-1].append(
                None if atom.upper() == b"NIL" else int(atom) if atom.isdigit() else atom
            )
    assert len(stack) == 1 and len(stack[0]) == 1, f"not one IMAP value: {data[:80]!r}"
    return stack[0][0]


def normalized(value: Value) -> Value:
    """For structures whose spelling the RFC leaves free (BODYSTRUCTURE): strings compared
    without case, and NILs at the end of a list (absent extension data) dropped."""
    if isinstance(value, list):
        items = [normalized(v) for v in value]
        while items and items[-1] is None:
            items.pop()
        return items
    if isinstance(value, bytes):
        return value.upper()
    return value


def fetch_items(line: str) -> dict[str, Value]:
    """``* 1 FETCH (UID 7 FLAGS (\\Seen))`` → ``{"UID": 7, "FLAGS": [b"\\\\Seen"]}``."""
    m = re.match(r"\* \d+ FETCH (\(.*\))$", line, re.DOTALL)
    assert m, f"not a FETCH response: {line[:100]!r}"
    items = parse_data(m.group(1))
    out: dict[str, Value] = {}
    for key, value in zip(items[::2], items[1::2], strict=True):
        out[key.decode().upper() if isinstance(key, bytes) else str(key)] = value
    return out


def same_structure(got: str | bytes, want: str | bytes) -> bool:
    """Whether two IMAP values are equal once :func:`normalized`."""
    return bool(normalized(parse_data(got)) == normalized(parse_data(want)))


_LIST_LINE = re.compile(
    r'^\* (?:LIST|LSUB) \(([^)]*)\) (?:"(?:[^"\\]|\\.)"|NIL) (.+?)(?: \(.*\))?$'
)


def listed(reply: Reply) -> dict[str, set[str]]:
    """The ``* LIST``/``* LSUB`` lines of a reply: mailbox name → attributes (lower case)."""
    out: dict[str, set[str]] = {}
    for line in reply.lines:
        if m := _LIST_LINE.match(line):
            name = m.group(2)
            if name.startswith('"'):
                name = re.sub(r"\\(.)", r"\1", name[1:-1])
            out[name] = {a.lower() for a in m.group(1).split()}
    return out


def status_items(text: str) -> dict[str, int]:
    """``MESSAGES 3 UIDNEXT 4`` → ``{"MESSAGES": 3, "UIDNEXT": 4}``."""
    words = text.split()
    return {k.upper(): int(v) for k, v in zip(words[::2], words[1::2], strict=True)}


def numbers(sequence_set: str) -> list[int]:
    """``2:4,7`` → ``[2, 3, 4, 7]`` (no ``*``: servers send explicit numbers)."""
    out: list[int] = []
    for part in sequence_set.split(","):
        low, _, high = part.partition(":")
        a, b = int(low), int(high or low)
        out += range(min(a, b), max(a, b) + 1)
    return out
