"""Server responses and their serialisation to bytes (RFC 9051 §7, §9).

Values inside responses follow one mapping (RFC 9051 §4):

=====================  ==================================================================
Python value           wire form
=====================  ==================================================================
``None``               ``NIL``
``int``                number
``str``                quoted string, or a literal when it holds CR, LF, NUL, a quote
                       that cannot be escaped, or 8-bit text without UTF-8 enabled
``bytes``              literal ``{n}`` (message data; sent as a separate chunk, no copy)
:class:`Literal8`      literal8 ``~{n}`` (RFC 3516 BINARY data that may contain NUL)
:class:`Atom`          the atom as is (flags ``\\Seen``, keywords, ``INBOX`` …)
:class:`MailboxName`   a mailbox name, modified UTF-7 or UTF-8 per session
:class:`Raw`           pre-formatted bytes (ENVELOPE, BODYSTRUCTURE from :mod:`.message`)
``SequenceSet``        ``1:3,5``
``list`` / ``tuple``   parenthesised list
=====================  ==================================================================
"""

from __future__ import annotations

import abc
import base64
import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Union

from .errors import LocalProtocolError
from .events import ProtocolErrorEvent
from .mailbox import encode_mailbox
from .sequence import SequenceSet


@dataclass(frozen=True, slots=True)
class Atom:
    value: str


@dataclass(frozen=True, slots=True)
class Raw:
    data: bytes


@dataclass(frozen=True, slots=True)
class Literal8:
    data: bytes


@dataclass(frozen=True, slots=True)
class MailboxName:
    name: str


Value = Union[
    None, int, str, bytes, Atom, Raw, Literal8, MailboxName, SequenceSet, "list[Value]",
    "tuple[Value, ...]",
]  # fmt: skip

NIL = b"NIL"
_QUOTED_MAX = 1024
_COALESCE_BELOW = 4096


class Writer:
    """Collects the chunks of one response; big ``bytes`` are kept as separate chunks."""

    __slots__ = ("chunks", "utf8")

    def __init__(self, *, utf8: bool = False) -> None:
        self.chunks: list[bytes] = []
        self.utf8 = utf8

    def raw(self, data: bytes) -> None:
        self.chunks.append(data)

    def string(self, text: str) -> None:
        # RFC 9051 §4.3: quoted strings carry no CR, LF or NUL; 8-bit only with UTF-8 (rev2 /
        # UTF8=ACCEPT). Anything else goes as a literal.
        data = text.encode("utf-8", "surrogateescape")
        if (
            len(data) <= _QUOTED_MAX
            and b"\r" not in data
            and b"\n" not in data
            and b"\x00" not in data
            and (self.utf8 or data.isascii())
        ):
            if b"\\" in data or b'"' in data:
                data = data.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
            self.chunks.append(b'"' + data + b'"')
        else:
            self.literal(data)

    def literal(self, data: bytes, *, binary: bool = False) -> None:
        prefix = b"~{" if binary else b"{"
        self.chunks.append(prefix + str(len(data)).encode() + b"}\r\n")
        self.chunks.append(data)

    def value(self, value: Value) -> None:
        if value is None:
            self.chunks.append(NIL)
        elif isinstance(value, bool):
            raise LocalProtocolError("booleans have no IMAP form")
        elif isinstance(value, int):
            if value < 0:
                raise LocalProtocolError("IMAP numbers are unsigned")
            self.chunks.append(str(value).encode())
        elif isinstance(value, str):
            self.string(value)
        elif isinstance(value, bytes | bytearray | memoryview):
            self.literal(bytes(value) if not isinstance(value, bytes) else value)
        elif isinstance(value, Atom):
            self.chunks.append(value.value.encode("utf-8"))
        elif isinstance(value, Raw):
            self.chunks.append(value.data)
        elif isinstance(value, Literal8):
            self.literal(value.data, binary=True)
        elif isinstance(value, MailboxName):
            self.string(encode_mailbox(value.name, utf8=self.utf8))
        elif isinstance(value, SequenceSet):
            self.chunks.append(str(value).encode())
        elif isinstance(value, list | tuple):
            self.chunks.append(b"(")
            self.values(value)
            self.chunks.append(b")")
        else:
            raise LocalProtocolError(f"cannot serialise {type(value).__name__}")

    def values(self, values: Iterable[Value]) -> None:
        first = True
        for item in values:
            if not first:
                self.chunks.append(b" ")
            first = False
            self.value(item)

    def getvalue(self) -> bytes:
        return b"".join(self.chunks)


def format_value(value: Value, *, utf8: bool = False) -> bytes:
    w = Writer(utf8=utf8)
    w.value(value)
    return w.getvalue()


def _text(text: str, utf8: bool) -> bytes:
    # RFC 9051 §9: text = 1*(TEXT-CHAR / UTF8-2 / UTF8-3 / UTF8-4); no CR or LF.
    data = text.replace("\r", " ").replace("\n", " ")
    if not utf8:
        return data.encode("ascii", "replace")
    return data.encode("utf-8", "replace")


def format_date_time(when: dt.datetime) -> str:
    """RFC 9051 §9 date-time: ``dd-Mon-yyyy hh:mm:ss +zzzz`` (INTERNALDATE)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    offset = when.utcoffset() or dt.timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    month = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
    return (
        f"{when.day:02d}-{month[when.month - 1]}-{when.year:04d} "
        f"{when.hour:02d}:{when.minute:02d}:{when.second:02d} "
        f"{sign}{minutes // 60:02d}{minutes % 60:02d}"
    )


# --- response codes (RFC 9051 §7.1) -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResponseCode:
    """``[NAME arg arg]``; ``args`` are values, space-separated."""

    name: str
    args: tuple[Value, ...] = ()

    def write(self, w: Writer) -> None:
        w.raw(b"[" + self.name.encode("ascii"))
        for arg in self.args:
            w.raw(b" ")
            w.value(arg)
        w.raw(b"]")


def _flag_atoms(flags: Iterable[str]) -> list[Value]:
    return [Atom(f) for f in flags]


class Code:
    """The response codes, one table for code and tests (RFC 9051 §7.1 and extensions)."""

    ALERT = ResponseCode("ALERT")
    ALREADYEXISTS = ResponseCode("ALREADYEXISTS")
    AUTHENTICATIONFAILED = ResponseCode("AUTHENTICATIONFAILED")
    AUTHORIZATIONFAILED = ResponseCode("AUTHORIZATIONFAILED")
    CANNOT = ResponseCode("CANNOT")
    CLIENTBUG = ResponseCode("CLIENTBUG")
    CLOSED = ResponseCode("CLOSED")  # RFC 7162 §3.2.11
    COMPRESSIONACTIVE = ResponseCode("COMPRESSIONACTIVE")  # RFC 4978 §3
    CONTACTADMIN = ResponseCode("CONTACTADMIN")
    CORRUPTION = ResponseCode("CORRUPTION")
    EXPIRED = ResponseCode("EXPIRED")
    EXPUNGEISSUED = ResponseCode("EXPUNGEISSUED")
    HASCHILDREN = ResponseCode("HASCHILDREN")
    INUSE = ResponseCode("INUSE")
    LIMIT = ResponseCode("LIMIT")
    NOMODSEQ = ResponseCode("NOMODSEQ")  # RFC 7162
    NONEXISTENT = ResponseCode("NONEXISTENT")
    NOPERM = ResponseCode("NOPERM")
    OVERQUOTA = ResponseCode("OVERQUOTA")
    PARSE = ResponseCode("PARSE")
    PRIVACYREQUIRED = ResponseCode("PRIVACYREQUIRED")
    READ_ONLY = ResponseCode("READ-ONLY")
    READ_WRITE = ResponseCode("READ-WRITE")
    SERVERBUG = ResponseCode("SERVERBUG")
    TOOBIG = ResponseCode("TOOBIG")
    TRYCREATE = ResponseCode("TRYCREATE")
    UIDNOTSTICKY = ResponseCode("UIDNOTSTICKY")
    UNAVAILABLE = ResponseCode("UNAVAILABLE")
    UNKNOWN_CTE = ResponseCode("UNKNOWN-CTE")

    @staticmethod
    def uidvalidity(value: int) -> ResponseCode:
        return ResponseCode("UIDVALIDITY", (value,))

    @staticmethod
    def uidnext(value: int) -> ResponseCode:
        return ResponseCode("UIDNEXT", (value,))

    @staticmethod
    def unseen(seq: int) -> ResponseCode:
        """IMAP4rev1 only (RFC 3501 §7.1)."""
        return ResponseCode("UNSEEN", (seq,))

    @staticmethod
    def highestmodseq(value: int) -> ResponseCode:
        return ResponseCode("HIGHESTMODSEQ", (value,))

    @staticmethod
    def permanentflags(flags: Iterable[str]) -> ResponseCode:
        """Include ``\\*`` when clients may create keywords."""
        return ResponseCode("PERMANENTFLAGS", (_flag_atoms(flags),))

    @staticmethod
    def capability(caps: Iterable[str]) -> ResponseCode:
        return ResponseCode("CAPABILITY", tuple(Atom(cap) for cap in caps))

    @staticmethod
    def appenduid(uidvalidity: int, uids: SequenceSet) -> ResponseCode:
        """RFC 4315 §3: ``[APPENDUID 38505 3955]`` (a set for MULTIAPPEND)."""
        return ResponseCode("APPENDUID", (uidvalidity, uids))

    @staticmethod
    def copyuid(uidvalidity: int, source: SequenceSet, dest: SequenceSet) -> ResponseCode:
        """RFC 4315 §3: ``[COPYUID 38505 304,319:320 3956:3958]``."""
        return ResponseCode("COPYUID", (uidvalidity, source, dest))

    @staticmethod
    def modified(uids: SequenceSet) -> ResponseCode:
        """RFC 7162 §3.1.3: STORE UNCHANGEDSINCE failures."""
        return ResponseCode("MODIFIED", (uids,))

    @staticmethod
    def badcharset(charsets: Sequence[str] = ("UTF-8", "US-ASCII")) -> ResponseCode:
        return ResponseCode("BADCHARSET", (list(charsets),))

    @staticmethod
    def appendlimit(limit: int) -> ResponseCode:
        """RFC 7889 ``[APPENDLIMIT n]``."""
        return ResponseCode("APPENDLIMIT", (limit,))


def parse_code(code: str) -> ResponseCode:
    """A code string as carried by :class:`ProtocolErrorEvent` (``"BADCHARSET (UTF-8)"``)."""
    name, _, rest = code.partition(" ")
    return ResponseCode(name, (Raw(rest.encode("ascii")),) if rest else ())


# --- responses ---------------------------------------------------------------------------------


class Response(abc.ABC):
    """A server response; each kind says how it is written."""

    @abc.abstractmethod
    def write(self, w: Writer) -> None:
        """Append this response (without its CRLF) to ``w``."""

    def chunks(self, *, utf8: bool = False) -> list[bytes]:
        """The response as chunks for ``writelines`` (message bodies are not copied)."""
        w = Writer(utf8=utf8)
        self.write(w)
        w.raw(b"\r\n")
        # Coalesce the small pieces; keep big ones (message data) as they are.
        out: list[bytes] = []
        small: list[bytes] = []
        for chunk in w.chunks:
            if len(chunk) < _COALESCE_BELOW:
                small.append(chunk)
            else:
                if small:
                    out.append(b"".join(small))
                    small = []
                out.append(chunk)
        if small:
            out.append(b"".join(small))
        return out

    def to_bytes(self, *, utf8: bool = False) -> bytes:
        return b"".join(self.chunks(utf8=utf8))


def _status_line(w: Writer, status: str, code: ResponseCode | None, text: str) -> None:
    w.raw(status.encode("ascii"))
    if code is not None:
        w.raw(b" ")
        code.write(w)
    # RFC 9051 §9: resp-text = ["[" resp-text-code "]" SP] [text]; we always send some text.
    w.raw(b" " + _text(text or status, w.utf8))


@dataclass(frozen=True, slots=True)
class TaggedResponse(Response):
    """``tag OK|NO|BAD [code] text`` (RFC 9051 §7.1)."""

    tag: str
    status: Literal["OK", "NO", "BAD"]
    text: str
    code: ResponseCode | None = None

    def write(self, w: Writer) -> None:
        w.raw(self.tag.encode("ascii", "replace") + b" ")
        _status_line(w, self.status, self.code, self.text)


@dataclass(frozen=True, slots=True)
class UntaggedStatus(Response):
    """``* OK|NO|BAD|PREAUTH|BYE [code] text``."""

    status: Literal["OK", "NO", "BAD", "PREAUTH", "BYE"]
    text: str
    code: ResponseCode | None = None

    def write(self, w: Writer) -> None:
        w.raw(b"* ")
        _status_line(w, self.status, self.code, self.text)


@dataclass(frozen=True, slots=True)
class Continuation(Response):
    """``+ text``, or ``+ base64`` for a SASL challenge (``data``; ``b""`` gives ``+ ``)."""

    text: str = "Ready"
    data: bytes | None = None

    def write(self, w: Writer) -> None:
        if self.data is not None:
            w.raw(b"+ " + base64.b64encode(self.data))
        else:
            w.raw(b"+ " + _text(self.text, w.utf8))


@dataclass(frozen=True, slots=True)
class UntaggedData(Response):
    """``* item item …``: each item a :data:`Value` (``Atom("EXISTS")``, numbers, lists)."""

    items: tuple[Value, ...]

    def write(self, w: Writer) -> None:
        w.raw(b"* ")
        w.values(self.items)


@dataclass(frozen=True, slots=True)
class FetchResponse(Response):
    """``* seq FETCH (NAME value …)``. Names are written as is (``BODY[1.MIME]<0>``)."""

    seq: int
    items: Sequence[tuple[str, Value]] = field(default_factory=tuple)

    def write(self, w: Writer) -> None:
        w.raw(b"* %d FETCH (" % self.seq)
        first = True
        for name, value in self.items:
            w.raw((b"" if first else b" ") + name.encode("ascii") + b" ")
            first = False
            w.value(value)
        w.raw(b")")


# --- untagged data builders (RFC 9051 §7.2–§7.5) --------------------------------------------


def exists(count: int) -> UntaggedData:
    return UntaggedData((count, Atom("EXISTS")))


def expunge(seq: int) -> UntaggedData:
    return UntaggedData((seq, Atom("EXPUNGE")))


def recent(count: int) -> UntaggedData:
    """IMAP4rev1 only."""
    return UntaggedData((count, Atom("RECENT")))


def vanished(uids: SequenceSet, *, earlier: bool = False) -> UntaggedData:
    """RFC 7162 §3.2.10: ``* VANISHED (EARLIER) 1:3``."""
    items: tuple[Value, ...] = (Atom("VANISHED"),)
    if earlier:
        items += ([Atom("EARLIER")],)
    return UntaggedData((*items, uids))


def flags(flag_names: Iterable[str]) -> UntaggedData:
    return UntaggedData((Atom("FLAGS"), _flag_atoms(flag_names)))


def capability(caps: Iterable[str]) -> UntaggedData:
    return UntaggedData((Atom("CAPABILITY"), *(Atom(cap) for cap in caps)))


def enabled(caps: Iterable[str]) -> UntaggedData:
    return UntaggedData((Atom("ENABLED"), *(Atom(cap) for cap in caps)))


def list_item(
    attributes: Iterable[str],
    delimiter: str | None,
    name: str,
    extended: Sequence[Value] = (),
    *,
    lsub: bool = False,
) -> UntaggedData:
    """``* LIST (\\HasNoChildren) "/" INBOX``; ``extended`` is mbox-list-extended data
    (e.g. ``[ "CHILDINFO", ["SUBSCRIBED"] ]`` or ``["OLDNAME", [MailboxName(old)]]``)."""
    items: tuple[Value, ...] = (
        Atom("LSUB" if lsub else "LIST"),
        _flag_atoms(attributes),
        delimiter,
        MailboxName(name),
    )
    if extended:
        items += (list(extended),)
    return UntaggedData(items)


def status(name: str, values: dict[str, int]) -> UntaggedData:
    """``* STATUS blurdybloop (MESSAGES 231 UIDNEXT 44292)``."""
    flat: list[Value] = []
    for key, val in values.items():
        flat += [Atom(key), val]
    return UntaggedData((Atom("STATUS"), MailboxName(name), flat))


def search(numbers: Iterable[int], *, modseq: int | None = None) -> UntaggedData:
    """IMAP4rev1 ``* SEARCH 2 3 6`` (RFC 7162: ``(MODSEQ n)`` at the end)."""
    items: tuple[Value, ...] = (Atom("SEARCH"), *numbers)
    if modseq is not None:
        items += ([Atom("MODSEQ"), modseq],)
    return UntaggedData(items)


def esearch(tag: str | None, *, uid: bool, results: dict[str, Value]) -> UntaggedData:
    """RFC 9051 §7.3.4 / RFC 4731: ``* ESEARCH (TAG "a1") UID MIN 2 COUNT 5 ALL 2:6``."""
    items: list[Value] = [Atom("ESEARCH")]
    if tag is not None:
        items.append([Atom("TAG"), tag])
    if uid:
        items.append(Atom("UID"))
    for key, val in results.items():
        items += [Atom(key), val]
    return UntaggedData(tuple(items))


NamespaceEntry = tuple[str, str | None]


def namespace(
    personal: Sequence[NamespaceEntry] | None,
    other: Sequence[NamespaceEntry] | None = None,
    shared: Sequence[NamespaceEntry] | None = None,
) -> UntaggedData:
    """RFC 2342: ``* NAMESPACE (("" "/")) NIL NIL``."""

    def group(entries: Sequence[NamespaceEntry] | None) -> Value:
        if not entries:
            return None
        return [[MailboxName(prefix), delim] for prefix, delim in entries]

    return UntaggedData((Atom("NAMESPACE"), group(personal), group(other), group(shared)))


def id_data(params: dict[str, str | None] | None) -> UntaggedData:
    """RFC 2971: ``* ID ("name" "Hygie")``."""
    if not params:
        return UntaggedData((Atom("ID"), None))
    flat: list[Value] = []
    for key, val in params.items():
        flat += [key, val]
    return UntaggedData((Atom("ID"), flat))


def error_response(event: ProtocolErrorEvent) -> Response:
    """The reply to a parser error: tagged when the tag is known, else ``* BAD``."""
    code = parse_code(event.code) if event.code else None
    if event.tag is None:
        return UntaggedStatus("BAD", event.text, code)
    return TaggedResponse(event.tag, event.status, event.text, code)
