"""Typed, immutable IMAP commands as produced by the parser (RFC 9051 §6, RFC 3501 §6).

Every command carries its ``tag``; ``name`` (a class attribute) is the command word used by the
state table in :mod:`.states`. UID variants are the same class with ``uid=True``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from .sequence import SequenceSet

EMPTY_SET = SequenceSet()


@dataclass(frozen=True, slots=True)
class Command:
    tag: str
    name: ClassVar[str] = ""


# --- Any state (RFC 9051 §6.1) ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Capability(Command):
    name: ClassVar[str] = "CAPABILITY"


@dataclass(frozen=True, slots=True)
class Noop(Command):
    name: ClassVar[str] = "NOOP"


@dataclass(frozen=True, slots=True)
class Logout(Command):
    name: ClassVar[str] = "LOGOUT"


@dataclass(frozen=True, slots=True)
class Compress(Command):
    """RFC 4978 §3: ``mechanism`` as the client spelt it (only DEFLATE exists)."""

    mechanism: str = ""
    name: ClassVar[str] = "COMPRESS"


@dataclass(frozen=True, slots=True)
class Unauthenticate(Command):
    """RFC 8437: back to the not authenticated state, on the same connection."""

    name: ClassVar[str] = "UNAUTHENTICATE"


@dataclass(frozen=True, slots=True)
class Id(Command):
    """RFC 2971: ``params`` is ``None`` for ``ID NIL``."""

    params: tuple[tuple[str, str | None], ...] | None = None
    name: ClassVar[str] = "ID"


# --- Not authenticated state (RFC 9051 §6.2) -------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartTLS(Command):
    name: ClassVar[str] = "STARTTLS"


@dataclass(frozen=True, slots=True)
class Authenticate(Command):
    """``initial_response`` (RFC 4959 SASL-IR) is decoded: ``b""`` for ``=``, ``None`` if absent."""

    mechanism: str = ""
    initial_response: bytes | None = None
    name: ClassVar[str] = "AUTHENTICATE"


@dataclass(frozen=True, slots=True)
class Login(Command):
    username: str = ""
    password: str = field(default="", repr=False)
    name: ClassVar[str] = "LOGIN"


# --- Authenticated state (RFC 9051 §6.3) -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Enable(Command):
    capabilities: tuple[str, ...] = ()
    name: ClassVar[str] = "ENABLE"


@dataclass(frozen=True, slots=True)
class QResyncParams:
    """RFC 7162 §3.2.5: ``QRESYNC (uidvalidity modseq [known-uids [(seq-match-data)]])``."""

    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    known_sequence_set: SequenceSet | None = None
    known_uid_set: SequenceSet | None = None


@dataclass(frozen=True, slots=True)
class Select(Command):
    mailbox: str = ""
    condstore: bool = False
    qresync: QResyncParams | None = None
    name: ClassVar[str] = "SELECT"

    @property
    def readonly(self) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class Examine(Select):
    name: ClassVar[str] = "EXAMINE"

    @property
    def readonly(self) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class Create(Command):
    mailbox: str = ""
    #: RFC 6154 ``CREATE name (USE (\Drafts))``.
    special_use: tuple[str, ...] = ()
    name: ClassVar[str] = "CREATE"


@dataclass(frozen=True, slots=True)
class Delete(Command):
    mailbox: str = ""
    name: ClassVar[str] = "DELETE"


@dataclass(frozen=True, slots=True)
class Rename(Command):
    mailbox: str = ""
    new_name: str = ""
    name: ClassVar[str] = "RENAME"


@dataclass(frozen=True, slots=True)
class Subscribe(Command):
    mailbox: str = ""
    name: ClassVar[str] = "SUBSCRIBE"


@dataclass(frozen=True, slots=True)
class Unsubscribe(Command):
    mailbox: str = ""
    name: ClassVar[str] = "UNSUBSCRIBE"


@dataclass(frozen=True, slots=True)
class List(Command):
    """RFC 9051 §6.3.9 with LIST-EXTENDED (RFC 5258) and LIST-STATUS (RFC 5819).

    ``selection`` and ``return_options`` are upper-case option names (``SUBSCRIBED``,
    ``RECURSIVEMATCH``, ``CHILDREN``, ``SPECIAL-USE``, ``STATUS`` …); ``status_items`` are the
    items asked by ``RETURN (STATUS (...))``.
    """

    reference: str = ""
    patterns: tuple[str, ...] = ()
    selection: tuple[str, ...] = ()
    return_options: tuple[str, ...] = ()
    status_items: tuple[str, ...] = ()
    extended: bool = False
    name: ClassVar[str] = "LIST"


@dataclass(frozen=True, slots=True)
class Lsub(Command):
    """IMAP4rev1 only (RFC 3501 §6.3.9)."""

    reference: str = ""
    pattern: str = ""
    name: ClassVar[str] = "LSUB"


@dataclass(frozen=True, slots=True)
class Namespace(Command):
    name: ClassVar[str] = "NAMESPACE"


@dataclass(frozen=True, slots=True)
class Status(Command):
    mailbox: str = ""
    items: tuple[str, ...] = ()
    name: ClassVar[str] = "STATUS"


@dataclass(frozen=True, slots=True)
class AppendMessage:
    flags: tuple[str, ...] = ()
    date_time: dt.datetime | None = None
    data: bytes = field(default=b"", repr=False)
    #: Sent as ``~{n}`` literal8 (RFC 3516 BINARY): may contain NUL.
    binary: bool = False


@dataclass(frozen=True, slots=True)
class Append(Command):
    """RFC 9051 §6.3.12; several ``messages`` with MULTIAPPEND (RFC 3502)."""

    mailbox: str = ""
    messages: tuple[AppendMessage, ...] = ()
    name: ClassVar[str] = "APPEND"


@dataclass(frozen=True, slots=True)
class Replace(Command):
    """RFC 8508: APPEND ``message`` to ``mailbox`` and expunge the selected message
    ``number`` (a sequence number, or a UID with ``uid``; ``None`` is ``*``)."""

    number: int | None = None
    mailbox: str = ""
    message: AppendMessage = field(default_factory=AppendMessage)
    uid: bool = False
    name: ClassVar[str] = "REPLACE"


@dataclass(frozen=True, slots=True)
class Idle(Command):
    """RFC 2177 / RFC 9051 §6.3.13: after ``+ idling`` call ``parser.expect_line()`` for DONE."""

    name: ClassVar[str] = "IDLE"


@dataclass(frozen=True, slots=True)
class GetQuota(Command):
    root: str = ""
    name: ClassVar[str] = "GETQUOTA"


@dataclass(frozen=True, slots=True)
class GetQuotaRoot(Command):
    mailbox: str = ""
    name: ClassVar[str] = "GETQUOTAROOT"


# --- Selected state (RFC 9051 §6.4) ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Check(Command):
    name: ClassVar[str] = "CHECK"


@dataclass(frozen=True, slots=True)
class Close(Command):
    name: ClassVar[str] = "CLOSE"


@dataclass(frozen=True, slots=True)
class Unselect(Command):
    name: ClassVar[str] = "UNSELECT"


@dataclass(frozen=True, slots=True)
class Expunge(Command):
    """``EXPUNGE``; ``UID EXPUNGE set`` (RFC 4315) has ``uid`` and ``sequence_set``."""

    uid: bool = False
    sequence_set: SequenceSet | None = None
    name: ClassVar[str] = "EXPUNGE"


# RFC 9051 §6.4.4 search keys, as a small tree.
SearchArg = str | int | dt.date | SequenceSet | tuple[str, str]


@dataclass(frozen=True, slots=True)
class SearchKey:
    """One search key: ``key`` upper-case (``ALL``, ``FROM``, ``SINCE``, ``LARGER``, ``HEADER``,
    ``KEYWORD``, ``UID``, ``MODSEQ`` …); ``SEQSET`` for a bare sequence set.

    Arguments: strings (decoded from the CHARSET), ``datetime.date`` for dates, ``int`` for
    sizes and mod-sequences, :class:`SequenceSet`; ``HEADER`` has ``(field, value)``;
    ``MODSEQ`` has ``(entry-name, entry-type)`` then the mod-sequence, or just the mod-sequence.
    """

    key: str
    args: tuple[SearchArg, ...] = ()


@dataclass(frozen=True, slots=True)
class SearchNot:
    operand: SearchNode


@dataclass(frozen=True, slots=True)
class SearchOr:
    left: SearchNode
    right: SearchNode


@dataclass(frozen=True, slots=True)
class SearchAnd:
    """All of ``operands`` (the top-level list and parenthesised groups)."""

    operands: tuple[SearchNode, ...]


SearchNode = SearchKey | SearchNot | SearchOr | SearchAnd
EMPTY_SEARCH = SearchAnd(())


@dataclass(frozen=True, slots=True)
class Search(Command):
    """``return_options`` (RFC 9051 §6.4.4 / RFC 4731 ESEARCH): MIN MAX ALL COUNT SAVE;
    ``None`` when no ``RETURN`` was given (a plain ``* SEARCH`` reply in IMAP4rev1)."""

    criteria: SearchAnd = EMPTY_SEARCH
    charset: str | None = None
    return_options: tuple[str, ...] | None = None
    uid: bool = False
    name: ClassVar[str] = "SEARCH"


@dataclass(frozen=True, slots=True)
class Section:
    """``BODY[1.2.HEADER.FIELDS (FROM)]``: ``part=(1, 2)``, ``text="HEADER.FIELDS"``,
    ``fields=("FROM",)``. ``text`` is one of ``None``, ``HEADER``, ``HEADER.FIELDS``,
    ``HEADER.FIELDS.NOT``, ``TEXT``, ``MIME``."""

    part: tuple[int, ...] = ()
    text: str | None = None
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        spec = ".".join(str(p) for p in self.part)
        if self.text:
            spec = f"{spec}.{self.text}" if spec else self.text
        if self.text and self.text.startswith("HEADER.FIELDS"):
            spec += " (" + " ".join(self.fields) + ")"
        return spec


@dataclass(frozen=True, slots=True)
class FetchAttribute:
    """One fetch item. ``name`` is ``FLAGS``, ``UID``, ``INTERNALDATE``, ``RFC822``,
    ``RFC822.SIZE``, ``RFC822.HEADER``, ``RFC822.TEXT``, ``ENVELOPE``, ``BODY``,
    ``BODYSTRUCTURE``, ``BINARY``, ``BINARY.SIZE``, ``MODSEQ`` …; ``section`` is set for
    ``BODY[...]``/``BINARY[...]``; ``partial`` is ``(origin, count)``."""

    name: str
    section: Section | None = None
    partial: tuple[int, int] | None = None
    peek: bool = False

    def response_name(self) -> str:
        """The item name in the reply: ``BODY[HEADER]<0>`` for ``BODY.PEEK[HEADER]<0.10>``."""
        if self.section is None:
            return self.name
        out = f"{self.name}[{self.section}]"
        if self.partial is not None and self.name != "BINARY.SIZE":
            out += f"<{self.partial[0]}>"
        return out

    @property
    def sets_seen(self) -> bool:
        """RFC 9051 §6.4.5: these set ``\\Seen`` (unless the mailbox is read-only)."""
        return not self.peek and (
            self.name in ("RFC822", "RFC822.TEXT")
            or (self.name in ("BODY", "BINARY") and self.section is not None)
        )


@dataclass(frozen=True, slots=True)
class Fetch(Command):
    sequence_set: SequenceSet = EMPTY_SET
    attributes: tuple[FetchAttribute, ...] = ()
    #: RFC 7162 CONDSTORE ``(CHANGEDSINCE n)``.
    changed_since: int | None = None
    #: RFC 7162 QRESYNC ``(VANISHED)`` — UID FETCH only.
    vanished: bool = False
    uid: bool = False
    name: ClassVar[str] = "FETCH"


@dataclass(frozen=True, slots=True)
class Store(Command):
    sequence_set: SequenceSet = EMPTY_SET
    mode: Literal["replace", "add", "remove"] = "replace"
    silent: bool = False
    flags: tuple[str, ...] = ()
    #: RFC 7162 CONDSTORE ``(UNCHANGEDSINCE n)``.
    unchanged_since: int | None = None
    uid: bool = False
    name: ClassVar[str] = "STORE"


@dataclass(frozen=True, slots=True)
class Copy(Command):
    sequence_set: SequenceSet = EMPTY_SET
    mailbox: str = ""
    uid: bool = False
    name: ClassVar[str] = "COPY"


@dataclass(frozen=True, slots=True)
class Move(Command):
    """RFC 6851."""

    sequence_set: SequenceSet = EMPTY_SET
    mailbox: str = ""
    uid: bool = False
    name: ClassVar[str] = "MOVE"


@dataclass(frozen=True, slots=True)
class SortCriterion:
    key: str
    reverse: bool = False


@dataclass(frozen=True, slots=True)
class Sort(Command):
    """RFC 5256 §3 (``RETURN`` from RFC 5267 ESORT)."""

    criteria: tuple[SortCriterion, ...] = ()
    charset: str = "UTF-8"
    search: SearchAnd = EMPTY_SEARCH
    return_options: tuple[str, ...] | None = None
    uid: bool = False
    name: ClassVar[str] = "SORT"


@dataclass(frozen=True, slots=True)
class Thread(Command):
    """RFC 5256 §3: ``algorithm`` is ``ORDEREDSUBJECT``, ``REFERENCES`` …"""

    algorithm: str = "REFERENCES"
    charset: str = "UTF-8"
    search: SearchAnd = EMPTY_SEARCH
    uid: bool = False
    name: ClassVar[str] = "THREAD"


#: Every command word the parser knows, for early rejection of unknown commands.
COMMAND_NAMES = frozenset(
    {
        "CAPABILITY", "NOOP", "LOGOUT", "ID", "STARTTLS", "AUTHENTICATE", "LOGIN", "ENABLE",
        "SELECT", "EXAMINE", "CREATE", "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE", "LIST",
        "LSUB", "NAMESPACE", "STATUS", "APPEND", "IDLE", "GETQUOTA", "GETQUOTAROOT", "CHECK",
        "CLOSE", "UNSELECT", "EXPUNGE", "SEARCH", "FETCH", "STORE", "COPY", "MOVE", "SORT",
        "THREAD", "UID", "UNAUTHENTICATE", "REPLACE", "COMPRESS",
    }
)  # fmt: skip
