"""IMAP command grammar (RFC 9051 §9, RFC 3501 §9 and extensions), one method per rule.

The grammar runs over a *complete* command as framed by :mod:`.parser`: its lines (CRLF
removed) and the literals that follow every line but the last. It is a recursive-descent
parser over bytes with linear-time, non-backtracking regular expressions for tokens; recursion
and item counts are bounded by :class:`~.limits.Limits`.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import datetime as dt
import re
from collections.abc import Callable
from typing import Literal

from . import commands as c
from .errors import RemoteProtocolError
from .limits import Limits
from .mailbox import decode_mailbox
from .sequence import SequenceSet


def _class(chars: bytes) -> bytes:
    return b"[" + b"".join(re.escape(bytes([ch])) for ch in chars) + b"]"


# RFC 9051 §9: CHAR = %x01-7F; CTL = %x00-1F / %x7F
#   atom-specials = "(" / ")" / "{" / SP / CTL / list-wildcards / quoted-specials / resp-specials
#   list-wildcards = "%" / "*"; quoted-specials = DQUOTE / "\"; resp-specials = "]"
#   ATOM-CHAR = <any CHAR except atom-specials>
_ATOM_CHARS = bytes(ch for ch in range(0x21, 0x7F) if ch not in b'(){%*"\\]')
# RFC 9051 §9: ASTRING-CHAR = ATOM-CHAR / resp-specials
_ASTRING_CHARS = _ATOM_CHARS + b"]"
# RFC 9051 §9: list-char = ATOM-CHAR / list-wildcards / resp-specials
_LIST_CHARS = _ATOM_CHARS + b"%*]"
# RFC 9051 §9: tag = 1*<any ASTRING-CHAR except "+">
_TAG_CHARS = bytes(ch for ch in _ASTRING_CHARS if ch != ord("+"))

ATOM_RE = re.compile(_class(_ATOM_CHARS) + b"+")
ASTRING_RE = re.compile(_class(_ASTRING_CHARS) + b"+")
LIST_RE = re.compile(_class(_LIST_CHARS) + b"+")
TAG_RE = re.compile(_class(_TAG_CHARS) + b"+")
# RFC 9051 §9: quoted = DQUOTE *QUOTED-CHAR DQUOTE
#   QUOTED-CHAR = <any TEXT-CHAR except quoted-specials> / "\" quoted-specials / UTF8-2..4
# The two alternatives cannot match the same input, so there is no backtracking.
QUOTED_RE = re.compile(rb'"([^"\\\r\n\x00]*(?:\\["\\][^"\\\r\n\x00]*)*)"')
_UNESCAPE_RE = re.compile(rb'\\(["\\])')
# RFC 9051 §9: literal = "{" number64 ["+"] "}" CRLF *CHAR8 ; RFC 3516: literal8 = "~{" ...
LITERAL_RE = re.compile(rb"(~?)\{([0-9]{1,20})(\+?)\}")
NUMBER_RE = re.compile(rb"[0-9]+")
# RFC 9051 §9: sequence-set = (seq-number / seq-range) ["," sequence-set]
_SEQ_ITEM = rb"(?:[0-9]+|\*)(?::(?:[0-9]+|\*))?"
SEQSET_RE = re.compile(_SEQ_ITEM + rb"(?:," + _SEQ_ITEM + rb")*")
_FETCH_NAME_RE = re.compile(rb"[A-Za-z0-9.]+")
_SECTION_PART_RE = re.compile(rb"[0-9]+(?:\.[0-9]+)*")
_SECTION_TEXT_RE = re.compile(rb"[A-Za-z.]+")
# RFC 9051 §9: date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE
_DATE_TIME_RE = re.compile(
    rb'"([ 0-9][0-9])-([A-Za-z]{3})-([0-9]{4}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{4})"'
)
# RFC 9051 §9: date-text = date-day "-" date-month "-" date-year; date-day = 1*2DIGIT
_DATE_RE = re.compile(rb"([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})")
_BASE64_RE = re.compile(rb"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")

MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
    )
}
MAX_NUMBER = 2**32 - 1  # RFC 9051 §9: number = 1*DIGIT ; unsigned 32-bit integer
MAX_NUMBER64 = 2**63 - 1  # RFC 9051 §9: number64 ; unsigned 63-bit integer

# RFC 9051 §2.3.2: system flags, matched case-insensitively and echoed in canonical case.
SYSTEM_FLAGS = {f.upper(): f for f in ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")}
STATUS_ITEMS = frozenset(
    {
        "MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "DELETED", "SIZE", "RECENT",
        "HIGHESTMODSEQ", "APPENDLIMIT",
    }
)  # fmt: skip
SEARCH_RETURN_OPTIONS = frozenset({"MIN", "MAX", "ALL", "COUNT", "SAVE"})
_PARTIAL_RE = re.compile(rb"(-?)([0-9]{1,10}):(-?)([0-9]{1,10})(?![0-9:])")
SORT_KEYS = frozenset(
    {"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"}
)
_SEARCH_NOARG = frozenset(
    {
        "ALL", "ANSWERED", "DELETED", "FLAGGED", "SEEN", "UNANSWERED", "UNDELETED",
        "UNFLAGGED", "UNSEEN", "DRAFT", "UNDRAFT", "NEW", "OLD", "RECENT",
    }
)  # fmt: skip
_SEARCH_STRING = frozenset({"BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO"})
_SEARCH_DATE = frozenset({"BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE"})
_FETCH_SIMPLE = frozenset(
    {
        "ENVELOPE", "FLAGS", "INTERNALDATE", "RFC822", "RFC822.HEADER", "RFC822.SIZE",
        "RFC822.TEXT", "BODY", "BODYSTRUCTURE", "UID", "MODSEQ",
    }
)  # fmt: skip
# RFC 9051 §6.4.5: the macros.
_FETCH_MACROS = {
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}


class Grammar:
    """Parses one framed command. Not reused across commands."""

    __slots__ = ("depth", "index", "items", "limits", "line", "lines", "literals", "pos", "utf8")

    def __init__(
        self, lines: list[bytes], literals: list[bytes], limits: Limits, *, utf8: bool
    ) -> None:
        self.lines = lines
        self.literals = literals
        self.limits = limits
        self.utf8 = utf8
        self.index = 0
        self.line = lines[0]
        self.pos = 0
        self.items = 0
        self.depth = 0

    # --- entry point ---------------------------------------------------------------------------

    # RFC 9051 §9: command = tag SP (command-any / command-auth / command-nonauth /
    #                              command-select) CRLF
    def command(self) -> c.Command:
        m = TAG_RE.match(self.line)
        if m is None or m.end() >= len(self.line) or self.line[m.end()] != 0x20:
            raise RemoteProtocolError("Missing or invalid tag")
        tag = m.group().decode("ascii")
        self.pos = m.end() + 1
        try:
            name = self.atom().upper()
            if name == "UID":
                self.sp()
                name = self.atom().upper()
                handler = _UID_COMMANDS.get(name)
                if handler is None:
                    raise RemoteProtocolError(f"Unknown UID command {name[:32]}")
                command = handler(self, tag, True)
            else:
                handler = _COMMANDS.get(name)
                if handler is None:
                    raise RemoteProtocolError("Unknown command")
                command = handler(self, tag, False)
            self.end()
        except RemoteProtocolError as err:
            err.tag = tag
            raise
        return command

    # --- tokens --------------------------------------------------------------------------------

    def error(self, text: str) -> RemoteProtocolError:
        return RemoteProtocolError(f"{text} (at byte {self.pos})")

    def peek(self) -> int:
        return self.line[self.pos] if self.pos < len(self.line) else -1

    def at_end(self) -> bool:
        return self.pos >= len(self.line) and self.index == len(self.lines) - 1

    def end(self) -> None:
        if not self.at_end():
            raise self.error("Unexpected characters after command")

    def sp(self) -> None:
        if self.peek() != 0x20:
            raise self.error("Expected a space")
        self.pos += 1

    def expect(self, char: bytes) -> None:
        if self.line.startswith(char, self.pos):
            self.pos += len(char)
        else:
            raise self.error(f"Expected {char.decode()}")

    def try_char(self, char: int) -> bool:
        if self.peek() == char:
            self.pos += 1
            return True
        return False

    def count(self, n: int = 1) -> None:
        self.items += n
        if self.items > self.limits.max_items:
            raise RemoteProtocolError("Too many items in command", code="LIMIT")

    def enter(self) -> None:
        self.depth += 1
        if self.depth > self.limits.max_depth:
            raise RemoteProtocolError("Too deeply nested", code="LIMIT")

    def leave(self) -> None:
        self.depth -= 1

    def atom(self) -> str:
        m = ATOM_RE.match(self.line, self.pos)
        if m is None:
            raise self.error("Expected an atom")
        self.pos = m.end()
        return m.group().decode("ascii")

    def keyword(self, *choices: str) -> str:
        word = self.atom().upper()
        if word not in choices:
            raise self.error(f"Expected one of {', '.join(choices)}")
        return word

    def literal(self) -> tuple[bytes, bool]:
        """(data, is-literal8). The literal marker must end the current line."""
        m = LITERAL_RE.match(self.line, self.pos)
        if m is None:
            raise self.error("Invalid literal")
        if m.end() != len(self.line) or self.index + 1 >= len(self.lines):
            raise self.error("Literal must end the line")
        data = self.literals[self.index]
        binary = bool(m.group(1))
        if not binary and b"\x00" in data:
            raise RemoteProtocolError("NUL in literal; use literal8 (~{n})")
        self.index += 1
        self.line = self.lines[self.index]
        self.pos = 0
        return data, binary

    def at_literal(self) -> bool:
        ch = self.peek()
        return ch == 0x7B or (ch == 0x7E and self.line.startswith(b"{", self.pos + 1))

    def _plain_literal(self) -> bytes:
        if self.peek() == 0x7E:
            raise self.error("literal8 is not allowed here")
        return self.literal()[0]

    def quoted(self) -> bytes:
        m = QUOTED_RE.match(self.line, self.pos)
        if m is None:
            raise self.error("Invalid quoted string")
        self.pos = m.end()
        raw = m.group(1)
        return _UNESCAPE_RE.sub(rb"\1", raw) if b"\\" in raw else raw

    # RFC 9051 §9: string = quoted / literal
    def string(self) -> bytes:
        ch = self.peek()
        if ch == 0x22:
            return self.quoted()
        if self.at_literal():
            return self._plain_literal()
        raise self.error("Expected a string")

    # RFC 9051 §9: astring = 1*ASTRING-CHAR / string
    def astring(self) -> bytes:
        ch = self.peek()
        if ch == 0x22:
            return self.quoted()
        if self.at_literal():
            return self._plain_literal()
        m = ASTRING_RE.match(self.line, self.pos)
        if m is None:
            raise self.error("Expected an astring")
        self.pos = m.end()
        return m.group()

    def astring_text(self) -> str:
        return self.astring().decode("utf-8", "surrogateescape")

    # RFC 9051 §9: nstring = string / nil
    def nstring(self) -> bytes | None:
        if self.line.startswith(b"NIL", self.pos) or self.line.startswith(b"nil", self.pos):
            m = ATOM_RE.match(self.line, self.pos)
            if m is not None and m.group().upper() == b"NIL":
                self.pos = m.end()
                return None
        return self.string()

    # RFC 9051 §9: number = 1*DIGIT ; number64 ; nz-number = digit-nz *DIGIT
    def number(self, *, nonzero: bool = False, maximum: int = MAX_NUMBER) -> int:
        m = NUMBER_RE.match(self.line, self.pos)
        if m is None or m.end() - m.start() > 20:
            raise self.error("Expected a number")
        self.pos = m.end()
        value = int(m.group())
        if value > maximum or (nonzero and value == 0):
            raise self.error("Number out of range")
        return value

    # RFC 9051 §9: mailbox = "INBOX" / astring
    def mailbox(self) -> str:
        return decode_mailbox(self.astring(), utf8=self.utf8)

    # RFC 9051 §9: list-mailbox = 1*list-char / string
    def list_mailbox(self) -> str:
        if self.peek() == 0x22 or self.at_literal():
            raw = self.string()
        else:
            m = LIST_RE.match(self.line, self.pos)
            if m is None:
                raise self.error("Expected a mailbox pattern")
            self.pos = m.end()
            raw = m.group()
        return decode_mailbox(raw, utf8=self.utf8)

    def paren_list(self, item: Callable[[], str]) -> tuple[str, ...]:
        """``"(" [item *(SP item)] ")"``."""
        self.expect(b"(")
        out: list[str] = []
        if not self.try_char(0x29):
            while True:
                self.count()
                out.append(item())
                if self.try_char(0x29):
                    break
                self.sp()
        return tuple(out)

    # RFC 9051 §9: sequence-set = (seq-number / seq-range) ["," sequence-set]
    #   seq-range = seq-number ":" seq-number ; seq-number = nz-number / "*"
    #   sequence-set =/ seq-last-command ; seq-last-command = "$"   (RFC 5182)
    def sequence_set(self, *, allow_saved: bool = True) -> SequenceSet:
        if self.peek() == 0x24:
            if not allow_saved:
                raise self.error("$ is not allowed here")
            self.pos += 1
            return SequenceSet(saved=True)
        m = SEQSET_RE.match(self.line, self.pos)
        if m is None:
            raise self.error("Expected a sequence set")
        text = m.group()
        self.count(text.count(b",") + 1)
        self.pos = m.end()
        ranges: list[tuple[int | None, int | None]] = []
        for item in text.split(b","):
            lo, sep, hi = item.partition(b":")
            a = _seq_number(lo)
            ranges.append((a, _seq_number(hi) if sep else a))
        return SequenceSet(tuple(ranges))

    # RFC 9051 §9: flag = "\Answered" / "\Flagged" / "\Deleted" / "\Seen" / "\Draft" /
    #                     flag-keyword / flag-extension ; flag-extension = "\" atom
    #              flag-keyword = "$MDNSent" / "$Forwarded" / "$Junk" / "$NotJunk" /
    #                             "$Phishing" / atom
    def flag(self) -> str:
        if self.try_char(0x5C):
            name = "\\" + self.atom()
            canonical = SYSTEM_FLAGS.get(name.upper())
            if canonical is None:
                if name.upper() == "\\RECENT":
                    raise self.error("\\Recent cannot be set")
                return name
            return canonical
        return self.atom()

    # RFC 9051 §9: flag-list = "(" [flag *(SP flag)] ")"
    def flag_list(self) -> tuple[str, ...]:
        return self.paren_list(self.flag)

    # RFC 9051 §9: date = date-text / DQUOTE date-text DQUOTE
    def date(self) -> dt.date:
        quoted = self.try_char(0x22)
        m = _DATE_RE.match(self.line, self.pos)
        if m is None:
            raise self.error("Expected a date (d-Mon-yyyy)")
        self.pos = m.end()
        if quoted:
            self.expect(b'"')
        month = MONTHS.get(m.group(2).decode("ascii").upper())
        try:
            if month is None:
                raise ValueError
            return dt.date(int(m.group(3)), month, int(m.group(1)))
        except ValueError:
            raise self.error("Invalid date") from None

    def date_time(self) -> dt.datetime:
        m = _DATE_TIME_RE.match(self.line, self.pos)
        if m is None:
            raise self.error("Invalid date-time")
        self.pos = m.end()
        day, mon, year, hh, mm, ss, sign, zone = m.groups()
        month = MONTHS.get(mon.decode("ascii").upper())
        try:
            if month is None:
                raise ValueError
            minutes = int(zone[:2]) * 60 + int(zone[2:])
            offset = dt.timedelta(minutes=-minutes if sign == b"-" else minutes)
            return dt.datetime(
                int(year), month, int(day.strip() or b"0"), int(hh), int(mm), int(ss),
                tzinfo=dt.timezone(offset),
            )  # fmt: skip
        except ValueError:
            raise self.error("Invalid date-time") from None

    # --- any state -----------------------------------------------------------------------------

    # RFC 2971 §4: id = "ID" SP id-params-list
    #   id-params-list = "(" *(string SP nstring) ")" / nil
    def cmd_id(self, tag: str, uid: bool) -> c.Command:
        self.sp()
        if self.peek() != 0x28:
            if self.atom().upper() != "NIL":
                raise self.error("Expected a parameter list or NIL")
            return c.Id(tag, None)
        self.pos += 1
        params: list[tuple[str, str | None]] = []
        while not self.try_char(0x29):
            if params:
                self.sp()
            self.count()
            key = self.string().decode("utf-8", "replace")
            self.sp()
            value = self.nstring()
            params.append((key, None if value is None else value.decode("utf-8", "replace")))
        return c.Id(tag, tuple(params))

    # --- not authenticated ---------------------------------------------------------------------

    # RFC 9051 §9: authenticate = "AUTHENTICATE" SP auth-type [SP initial-resp]
    #   initial-resp = (base64 / "=")          (RFC 4959 SASL-IR)
    def cmd_authenticate(self, tag: str, uid: bool) -> c.Command:
        self.sp()
        mechanism = self.atom().upper()
        initial: bytes | None = None
        if self.try_char(0x20):
            rest = self.line[self.pos :]
            self.pos = len(self.line)
            # RFC 4959 §3: an empty initial response is sent as "=", never as nothing.
            initial = decode_sasl_response(rest) if rest else None
            if initial is None:
                raise self.error("Invalid initial response")
        return c.Authenticate(tag, mechanism, initial)

    # RFC 9051 §9: login = "LOGIN" SP userid SP password ; userid = astring ; password = astring
    def cmd_login(self, tag: str, uid: bool) -> c.Command:
        self.sp()
        user = self.astring_text()
        self.sp()
        password = self.astring_text()
        return c.Login(tag, user, password)

    # --- authenticated -------------------------------------------------------------------------

    # RFC 5161 §4: enable = "ENABLE" 1*(SP capability)
    def cmd_enable(self, tag: str, uid: bool) -> c.Command:
        caps: list[str] = []
        while True:
            self.sp()
            self.count()
            caps.append(self.atom().upper())
            if self.at_end():
                return c.Enable(tag, tuple(caps))

    # RFC 9051 §9: select = "SELECT" SP mailbox [select-params]
    #   select-params = SP "(" select-param *(SP select-param) ")"
    # RFC 7162 §7: select-param =/ "CONDSTORE" / "QRESYNC" SP "(" uidvalidity SP
    #   mod-sequence-value [SP known-uids] [SP seq-match-data] ")"
    #   seq-match-data = "(" known-sequence-set SP known-uid-set ")"
    def cmd_select(self, tag: str, uid: bool, cls: type[c.Select] = c.Select) -> c.Command:
        self.sp()
        mailbox = self.mailbox()
        condstore = False
        qresync: c.QResyncParams | None = None
        if self.try_char(0x20):
            self.expect(b"(")
            while True:
                self.count()
                word = self.keyword("CONDSTORE", "QRESYNC")
                if word == "CONDSTORE":
                    condstore = True
                else:
                    self.sp()
                    qresync = self.qresync_params()
                if self.try_char(0x29):
                    break
                self.sp()
        return cls(tag, mailbox, condstore, qresync)

    def cmd_examine(self, tag: str, uid: bool) -> c.Command:
        return self.cmd_select(tag, uid, c.Examine)

    def qresync_params(self) -> c.QResyncParams:
        self.expect(b"(")
        uidvalidity = self.number(nonzero=True)
        self.sp()
        modseq = self.number(nonzero=True, maximum=MAX_NUMBER64)
        known: SequenceSet | None = None
        seq_set: SequenceSet | None = None
        uid_set: SequenceSet | None = None
        if self.try_char(0x20):
            if self.peek() != 0x28:
                known = self.sequence_set(allow_saved=False)
                if self.try_char(0x20):
                    self.expect(b"(")
                    seq_set, uid_set = self._seq_match()
            else:
                self.pos += 1
                seq_set, uid_set = self._seq_match()
        self.expect(b")")
        return c.QResyncParams(uidvalidity, modseq, known, seq_set, uid_set)

    def _seq_match(self) -> tuple[SequenceSet, SequenceSet]:
        seq_set = self.sequence_set(allow_saved=False)
        self.sp()
        uid_set = self.sequence_set(allow_saved=False)
        self.expect(b")")
        return seq_set, uid_set

    # RFC 9051 §9: create = "CREATE" SP mailbox
    # RFC 6154 §6: create-param =/ "USE" SP "(" [use-attr *(SP use-attr)] ")"
    def cmd_create(self, tag: str, uid: bool) -> c.Command:
        self.sp()
        mailbox = self.mailbox()
        use: tuple[str, ...] = ()
        if self.try_char(0x20):
            self.expect(b"(")
            self.keyword("USE")
            self.sp()
            use = self.paren_list(self.flag)
            self.expect(b")")
        return c.Create(tag, mailbox, use)

    def cmd_mailbox(self, tag: str, cls: type[c.Command]) -> c.Command:
        self.sp()
        return cls(tag, self.mailbox())  # type: ignore[call-arg]

    # RFC 9051 §9: rename = "RENAME" SP mailbox SP mailbox
    def cmd_rename(self, tag: str, uid: bool) -> c.Command:
        self.sp()
        old = self.mailbox()
        self.sp()
        return c.Rename(tag, old, self.mailbox())

    # RFC 5258 §6: list = "LIST" [SP list-select-opts] SP mailbox SP mbox-or-pat
    #                     [SP list-return-opts]
    #   list-select-opts = "(" [list-select-option *(SP list-select-option)] ")"
    #   mbox-or-pat = list-mailbox / patterns
    #   patterns = "(" list-mailbox *(SP list-mailbox) ")"
    #   list-return-opts = "RETURN" SP "(" [return-option *(SP return-option)] ")"
    # RFC 5819 §6: return-option =/ "STATUS" SP "(" status-att *(SP status-att) ")"
    def cmd_list(self, tag: str, uid: bool) -> c.Command:
        self.sp()
        extended = False
        selection: tuple[str, ...] = ()
        if self.peek() == 0x28:
            extended = True
            selection = self.paren_list(lambda: self.atom().upper())
            self.sp()
        reference = self.mailbox()
        self.sp()
        if self.peek() == 0x28:
            extended = True
            self.pos += 1
            pats = [self.list_mailbox()]
            while not self.try_char(0x29):
                self.sp()
                self.count()
                pats.append(self.list_mailbox())
            patterns = tuple(pats)
        else:
            patterns = (self.list_mailbox(),)
        returns: list[str] = []
        status: tuple[str, ...] = ()
        if self.try_char(0x20):
            extended = True
            self.keyword("RETURN")
            self.sp()
            self.expect(b"(")
            while not self.try_char(0x29):
                if returns:
                    self.sp()
                self.count()
                option = self.atom().upper()
                if option == "STATUS":
                    self.sp()
                    status = self.status_atts()
                returns.append(option)
        return c.List(tag, reference, patterns, selection, tuple(returns), status, extended)

    # RFC 3501 §9: lsub = "LSUB" SP mailbox SP list-mailbox
    def cmd_lsub(self, tag: str, uid: bool) -> c.Command:
        self.sp()
        reference = self.mailbox()
        self.sp()
        return c.Lsub(tag, reference, self.list_mailbox())

    # RFC 9051 §9: status-att = "MESSAGES" / "UIDNEXT" / "UIDVALIDITY" / "UNSEEN" /
    #   "DELETED" / "SIZE" ; RFC 3501 "RECENT" ; RFC 7162 "HIGHESTMODSEQ" ; RFC 7889 "APPENDLIMIT"
    def status_att(self) -> str:
        word = self.atom().upper()
        if word not in STATUS_ITEMS:
            raise self.error("Unknown status item")
        return word

    def status_atts(self) -> tuple[str, ...]:
        items = self.paren_list(self.status_att)
        if not items:
            raise self.error("Empty status item list")
        return items

    # RFC 9051 §9: status = "STATUS" SP mailbox SP "(" status-att *(SP status-att) ")"
    def cmd_status(self, tag: str, uid: bool) -> c.Command:
        self.sp()
        mailbox = self.mailbox()
        self.sp()
        return c.Status(tag, mailbox, self.status_atts())

    # RFC 3502 §6: append = "APPEND" SP mailbox 1*append-message
    #   append-message = append-opts SP append-data
    #   append-opts = [SP flag-list] [SP date-time]
    #   append-data = literal / literal8         (RFC 3516)
    def cmd_append(self, tag: str, uid: bool) -> c.Command:
        self.sp()
        mailbox = self.mailbox()
        messages: list[c.AppendMessage] = []
        while True:
            self.count()
            self.sp()
            messages.append(self._append_message())
            if self.at_end():
                return c.Append(tag, mailbox, tuple(messages))

    # RFC 9051 §9: [flag-list SP] [date-time SP] literal (append-message, one of them)
    def _append_message(self) -> c.AppendMessage:
        flags: tuple[str, ...] = ()
        when: dt.datetime | None = None
        if self.peek() == 0x28:
            flags = self.flag_list()
            self.sp()
        if self.peek() == 0x22:
            when = self.date_time()
            self.sp()
        if not self.at_literal():
            raise self.error("Expected the message literal")
        data, binary = self.literal()
        return c.AppendMessage(flags, when, data, binary)

    # RFC 4978 §4: command-auth =/ compress; compress = "COMPRESS" SP algorithm
    def cmd_compress(self, tag: str, uid: bool) -> c.Command:
        self.sp()
        return c.Compress(tag, self.atom())

    # RFC 8508 §6: replace = "REPLACE" SP seq-number SP mailbox SP [flag-list SP]
    #   [date-time SP] append-data; uid-replace = "UID" SP replace
    def cmd_replace(self, tag: str, uid: bool) -> c.Command:
        self.sp()
        if self.peek() == 0x2A:  # "*"
            self.pos += 1
            number: int | None = None
        else:
            number = self.number(nonzero=True)
        self.sp()
        mailbox = self.mailbox()
        self.sp()
        message = self._append_message()
        return c.Replace(tag, number, mailbox, message, uid)

    # RFC 9051 §9: getquota = "GETQUOTA" SP quota-root-name (RFC 9208)
    def cmd_getquota(self, tag: str, uid: bool) -> c.Command:
        self.sp()
        return c.GetQuota(tag, self.astring_text())

    # --- selected ------------------------------------------------------------------------------

    def cmd_expunge(self, tag: str, uid: bool) -> c.Command:
        # RFC 4315 §4: uid-expunge = "EXPUNGE" SP sequence-set
        if uid:
            self.sp()
            return c.Expunge(tag, True, self.sequence_set())
        return c.Expunge(tag)

    # RFC 9051 §9: search = "SEARCH" [search-return-opts] SP search-program
    #   search-return-opts = SP "RETURN" SP "(" [search-return-opt *(SP search-return-opt)] ")"
    #   search-program = ["CHARSET" SP charset SP] search-key *(SP search-key)
    def cmd_search(self, tag: str, uid: bool) -> c.Command:
        self.sp()
        returns: tuple[str, ...] | None = None
        if self._peek_word(b"RETURN "):
            self.pos += 7
            returns = self.paren_list(self._search_return_opt)
            self.sp()
        charset, criteria = self.search_program(optional_charset=True)
        return c.Search(tag, criteria, charset, returns, uid)

    def _search_return_opt(self) -> str:
        word = self.atom().upper()
        if word == "PARTIAL":
            # RFC 9394 §4: "PARTIAL" SP partial-range; partial-range = partial-range-first
            #   / partial-range-last; first = nz-number ":" nz-number; last = "-" nz-number
            #   ":" "-" nz-number. Kept as "PARTIAL a:b", the range as the client wrote it.
            self.sp()
            m = _PARTIAL_RE.match(self.line, self.pos)
            if m is None:
                raise self.error("Expected a partial range")
            self.pos = m.end()
            low, high = int(m.group(2)), int(m.group(4))
            if m.group(1) != m.group(3) or low == 0 or high == 0 or max(low, high) > MAX_NUMBER:
                raise self.error("Partial range out of range")
            return "PARTIAL " + m.group().decode()
        if word not in SEARCH_RETURN_OPTIONS:
            raise self.error("Unknown search return option")
        return word

    def _peek_word(self, word: bytes) -> bool:
        return self.line[self.pos : self.pos + len(word)].upper() == word

    def search_program(self, *, optional_charset: bool) -> tuple[str | None, c.SearchAnd]:
        charset: str | None = None
        if not optional_charset or self._peek_word(b"CHARSET "):
            if optional_charset:
                self.pos += 8
            charset = self.charset()
            self.sp()
        keys = [self.search_key(charset)]
        while self.try_char(0x20):
            keys.append(self.search_key(charset))
        return charset, c.SearchAnd(tuple(keys))

    # RFC 9051 §9: charset = atom / quoted
    def charset(self) -> str:
        raw = self.quoted() if self.peek() == 0x22 else self.atom().encode("ascii")
        name = raw.decode("ascii", "replace").upper()
        try:
            codecs.lookup(name)
        except LookupError:
            raise RemoteProtocolError(
                "Unsupported charset", code="BADCHARSET (UTF-8 US-ASCII)", status="NO"
            ) from None
        return name

    def search_string(self, charset: str | None) -> str:
        raw = self.astring()
        try:
            return raw.decode(charset or "utf-8")
        except (UnicodeDecodeError, LookupError):
            raise self.error("Search string not in the given charset") from None

    # RFC 9051 §9 (with RFC 3501, RFC 5032, RFC 7162 additions):
    #   search-key = "ALL" / "ANSWERED" / "BCC" SP astring / "BEFORE" SP date /
    #     "BODY" SP astring / "CC" SP astring / "DELETED" / "FLAGGED" / "FROM" SP astring /
    #     "KEYWORD" SP flag-keyword / "ON" SP date / "SEEN" / "SINCE" SP date /
    #     "SUBJECT" SP astring / "TEXT" SP astring / "TO" SP astring / "UNANSWERED" /
    #     "UNDELETED" / "UNFLAGGED" / "UNKEYWORD" SP flag-keyword / "UNSEEN" / "DRAFT" /
    #     "HEADER" SP header-fld-name SP astring / "LARGER" SP number64 / "NOT" SP search-key /
    #     "OR" SP search-key SP search-key / "SENTBEFORE" SP date / "SENTON" SP date /
    #     "SENTSINCE" SP date / "SMALLER" SP number64 / "UID" SP sequence-set / "UNDRAFT" /
    #     sequence-set / "(" search-key *(SP search-key) ")"
    #   RFC 3501: "NEW" / "OLD" / "RECENT" ; RFC 5032: "OLDER" / "YOUNGER" SP nz-number
    #   RFC 7162: search-modsequence = "MODSEQ" [search-modseq-ext] SP mod-sequence-valzer
    #     search-modseq-ext = SP entry-name SP entry-type-req
    def search_key(self, charset: str | None) -> c.SearchNode:
        self.count()
        ch = self.peek()
        if ch == 0x28:
            self.pos += 1
            self.enter()
            keys = [self.search_key(charset)]
            while self.try_char(0x20):
                keys.append(self.search_key(charset))
            self.expect(b")")
            self.leave()
            return c.SearchAnd(tuple(keys))
        if 0x30 <= ch <= 0x39 or ch == 0x2A or ch == 0x24:
            return c.SearchKey("SEQSET", (self.sequence_set(),))
        word = self.atom().upper()
        if word in _SEARCH_NOARG:
            return c.SearchKey(word)
        self.sp()
        if word in _SEARCH_STRING:
            return c.SearchKey(word, (self.search_string(charset),))
        if word in _SEARCH_DATE:
            return c.SearchKey(word, (self.date(),))
        if word in ("LARGER", "SMALLER"):
            return c.SearchKey(word, (self.number(maximum=MAX_NUMBER64),))
        if word in ("OLDER", "YOUNGER"):
            return c.SearchKey(word, (self.number(nonzero=True),))
        if word in ("KEYWORD", "UNKEYWORD"):
            return c.SearchKey(word, (self.atom(),))
        if word == "HEADER":
            name = self.astring().decode("ascii", "replace")
            self.sp()
            return c.SearchKey(word, ((name, self.search_string(charset)),))
        if word == "UID":
            return c.SearchKey(word, (self.sequence_set(),))
        if word in ("NOT", "OR"):
            if self.depth >= self.limits.max_search_depth:
                raise RemoteProtocolError("Search program too deeply nested", code="LIMIT")
            self.depth += 1
            first = self.search_key(charset)
            if word == "NOT":
                self.depth -= 1
                return c.SearchNot(first)
            self.sp()
            second = self.search_key(charset)
            self.depth -= 1
            return c.SearchOr(first, second)
        if word == "MODSEQ":
            if self.peek() == 0x22:
                entry = self.quoted().decode("utf-8", "replace")
                self.sp()
                kind = self.keyword("PRIV", "SHARED", "ALL").lower()
                self.sp()
                value = self.number(maximum=MAX_NUMBER64)
                return c.SearchKey(word, ((entry, kind), value))
            return c.SearchKey(word, (self.number(maximum=MAX_NUMBER64),))
        raise self.error("Unknown search key")

    # RFC 9051 §9: fetch = "FETCH" SP sequence-set SP ("ALL" / "FULL" / "FAST" /
    #                      fetch-att / "(" fetch-att *(SP fetch-att) ")") [fetch-modifiers]
    # RFC 7162 §7: fetch-modifiers = SP "(" fetch-modifier *(SP fetch-modifier) ")"
    #   fetch-modifier = chgsince-fetch-mod / "VANISHED" (RFC 7162 §7, UID FETCH only)
    #   chgsince-fetch-mod = "CHANGEDSINCE" SP mod-sequence-value
    def cmd_fetch(self, tag: str, uid: bool) -> c.Command:
        self.sp()
        seqset = self.sequence_set()
        self.sp()
        atts: list[c.FetchAttribute] = []
        if self.try_char(0x28):
            while True:
                self.count()
                atts.append(self.fetch_att())
                if self.try_char(0x29):
                    break
                self.sp()
        else:
            m = _FETCH_NAME_RE.match(self.line, self.pos)
            macro = _FETCH_MACROS.get(m.group().upper().decode()) if m else None
            if m is not None and macro is not None and self.line[m.end() : m.end() + 1] != b"[":
                self.pos = m.end()
                atts.extend(c.FetchAttribute(name) for name in macro)
            else:
                atts.append(self.fetch_att())
        changed_since: int | None = None
        vanished = False
        if self.try_char(0x20):
            self.expect(b"(")
            while True:
                self.count()
                word = self.keyword("CHANGEDSINCE", "VANISHED")
                if word == "CHANGEDSINCE":
                    self.sp()
                    changed_since = self.number(nonzero=True, maximum=MAX_NUMBER64)
                else:
                    vanished = True
                if self.try_char(0x29):
                    break
                self.sp()
            if vanished and (not uid or changed_since is None):
                raise self.error("VANISHED needs UID FETCH and CHANGEDSINCE")
        return c.Fetch(tag, seqset, tuple(atts), changed_since, vanished, uid)

    # RFC 9051 §9: fetch-att = "ENVELOPE" / "FLAGS" / "INTERNALDATE" /
    #     "RFC822" [".HEADER" / ".SIZE" / ".TEXT"] / "BODY" ["STRUCTURE"] / "UID" /
    #     "BODY" section [partial] / "BODY.PEEK" section [partial] /
    #     "BINARY" [".PEEK"] section-binary [partial] / "BINARY.SIZE" section-binary
    #   RFC 7162: fetch-att =/ "MODSEQ"
    #   partial = "<" number64 "." nz-number64 ">"
    def fetch_att(self) -> c.FetchAttribute:
        m = _FETCH_NAME_RE.match(self.line, self.pos)
        if m is None:
            raise self.error("Expected a fetch item")
        self.pos = m.end()
        name = m.group().decode("ascii").upper()
        if self.peek() != 0x5B:
            if name in _FETCH_SIMPLE:
                return c.FetchAttribute(name)
            raise self.error("Unknown fetch item")
        peek = name.endswith(".PEEK")
        base = name[:-5] if peek else name
        if base == "BODY":
            section = self.section()
        elif base in ("BINARY", "BINARY.SIZE") and not (peek and base == "BINARY.SIZE"):
            section = self.section_binary()
        else:
            raise self.error("Unknown fetch item")
        partial: tuple[int, int] | None = None
        if base != "BINARY.SIZE" and self.try_char(0x3C):
            origin = self.number(maximum=MAX_NUMBER64)
            self.expect(b".")
            length = self.number(nonzero=True, maximum=MAX_NUMBER64)
            self.expect(b">")
            partial = (origin, length)
        return c.FetchAttribute(base, section, partial, peek)

    # RFC 9051 §9: section = "[" [section-spec] "]"
    #   section-spec = section-msgtext / (section-part ["." section-text])
    #   section-msgtext = "HEADER" / "HEADER.FIELDS" [".NOT"] SP header-list / "TEXT"
    #   section-part = nz-number *("." nz-number)
    #   section-text = section-msgtext / "MIME"
    #   header-list = "(" header-fld-name *(SP header-fld-name) ")"
    def section(self) -> c.Section:
        self.expect(b"[")
        part = self._section_part()
        text: str | None = None
        fields: tuple[str, ...] = ()
        if part and self.peek() == 0x2E:
            self.pos += 1
            text = self._section_text(allow_mime=True)
        elif not part and self.peek() != 0x5D:
            text = self._section_text(allow_mime=False)
        if text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
            self.sp()
            fields = self.paren_list(self._header_field_name)
            if not fields:
                raise self.error("Empty header list")
        self.expect(b"]")
        return c.Section(part, text, fields)

    def _header_field_name(self) -> str:
        # RFC 9051 §9: header-fld-name = astring
        return self.astring().decode("ascii", "replace").upper()

    def _section_part(self) -> tuple[int, ...]:
        m = _SECTION_PART_RE.match(self.line, self.pos)
        if m is None:
            return ()
        self.pos = m.end()
        numbers = m.group().split(b".")
        self.count(len(numbers))
        if any(len(n) > 10 or int(n) == 0 or int(n) > MAX_NUMBER for n in numbers):
            raise self.error("Invalid section part")
        return tuple(int(n) for n in numbers)

    def _section_text(self, *, allow_mime: bool) -> str:
        m = _SECTION_TEXT_RE.match(self.line, self.pos)
        word = m.group().decode("ascii").upper() if m else ""
        allowed = {"HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT"}
        if allow_mime:
            allowed.add("MIME")
        if m is None or word not in allowed:
            raise self.error("Invalid section")
        self.pos = m.end()
        return word

    # RFC 3516 §4: section-binary = "[" [section-part] "]"
    def section_binary(self) -> c.Section:
        self.expect(b"[")
        part = self._section_part()
        self.expect(b"]")
        return c.Section(part)

    # RFC 9051 §9: store = "STORE" SP sequence-set [store-modifiers] SP store-att-flags
    #   store-att-flags = (["+" / "-"] "FLAGS" [".SILENT"]) SP (flag-list / (flag *(SP flag)))
    # RFC 7162 §7: store-modifier =/ "UNCHANGEDSINCE" SP mod-sequence-valzer
    def cmd_store(self, tag: str, uid: bool) -> c.Command:
        self.sp()
        seqset = self.sequence_set()
        self.sp()
        unchanged: int | None = None
        if self.try_char(0x28):
            self.keyword("UNCHANGEDSINCE")
            self.sp()
            unchanged = self.number(maximum=MAX_NUMBER64)
            self.expect(b")")
            self.sp()
        mode: Literal["replace", "add", "remove"] = "replace"
        if self.try_char(0x2B):
            mode = "add"
        elif self.try_char(0x2D):
            mode = "remove"
        word = self.keyword("FLAGS", "FLAGS.SILENT")
        self.sp()
        if self.peek() == 0x28:
            flags = self.flag_list()
        else:
            items = [self.flag()]
            while self.try_char(0x20):
                self.count()
                items.append(self.flag())
            flags = tuple(items)
        return c.Store(tag, seqset, mode, word == "FLAGS.SILENT", flags, unchanged, uid)

    # RFC 9051 §9: copy = "COPY" SP sequence-set SP mailbox ; RFC 6851: move = "MOVE" ...
    def cmd_copy(self, tag: str, uid: bool, cls: type[c.Copy | c.Move] = c.Copy) -> c.Command:
        self.sp()
        seqset = self.sequence_set()
        self.sp()
        return cls(tag, seqset, self.mailbox(), uid)

    def cmd_move(self, tag: str, uid: bool) -> c.Command:
        return self.cmd_copy(tag, uid, c.Move)

    # RFC 5256 §5: sort = ["UID" SP] "SORT" SP sort-criteria SP search-criteria
    #   sort-criteria = "(" sort-criterion *(SP sort-criterion) ")"
    #   sort-criterion = ["REVERSE" SP] sort-key
    #   search-criteria = charset 1*(SP search-key)
    # RFC 5267 §3.2: sort =/ ... "SORT" SP sort-return-opts SP sort-criteria ...
    def cmd_sort(self, tag: str, uid: bool) -> c.Command:
        self.sp()
        returns: tuple[str, ...] | None = None
        if self._peek_word(b"RETURN "):
            self.pos += 7
            returns = self.paren_list(self._search_return_opt)
            self.sp()
        self.expect(b"(")
        criteria: list[c.SortCriterion] = []
        while True:
            self.count()
            word = self.atom().upper()
            reverse = word == "REVERSE"
            if reverse:
                self.sp()
                word = self.atom().upper()
            if word not in SORT_KEYS:
                raise self.error("Unknown sort key")
            criteria.append(c.SortCriterion(word, reverse))
            if self.try_char(0x29):
                break
            self.sp()
        self.sp()
        charset, program = self.search_program(optional_charset=False)
        return c.Sort(tag, tuple(criteria), charset or "UTF-8", program, returns, uid)

    # RFC 5256 §5: thread = ["UID" SP] "THREAD" SP thread-alg SP search-criteria
    def cmd_thread(self, tag: str, uid: bool) -> c.Command:
        self.sp()
        algorithm = self.atom().upper()
        self.sp()
        charset, program = self.search_program(optional_charset=False)
        return c.Thread(tag, algorithm, charset or "UTF-8", program, uid)


def _seq_number(raw: bytes) -> int | None:
    if raw == b"*":
        return None
    if len(raw) > 10:
        raise RemoteProtocolError("Sequence number out of range")
    value = int(raw)
    if value == 0 or value > MAX_NUMBER:
        raise RemoteProtocolError("Sequence number out of range")
    return value


# RFC 9051 §9: base64 = *(4base64-char) [base64-terminal]; RFC 4959: "=" is an empty response.
def decode_sasl_response(line: bytes) -> bytes | None:
    """A client's SASL response line → bytes, ``b""`` for ``=`` or an empty line (the empty
    response, RFC 4422 §5: base64 of nothing is nothing); ``None`` if not base64.

    For AUTHENTICATE continuation lines check ``line == b"*"`` (cancel, RFC 9051 §6.2.2)
    before calling this.
    """
    if line in (b"=", b""):
        return b""
    if _BASE64_RE.fullmatch(line) is None:
        return None
    try:
        return base64.b64decode(line, validate=True)
    except binascii.Error:
        return None


_Handler = Callable[[Grammar, str, bool], c.Command]


def _simple(cls: type[c.Command]) -> _Handler:
    def handler(g: Grammar, tag: str, uid: bool) -> c.Command:
        return cls(tag)

    return handler


def _one_mailbox(cls: type[c.Command]) -> _Handler:
    def handler(g: Grammar, tag: str, uid: bool) -> c.Command:
        return g.cmd_mailbox(tag, cls)

    return handler


_COMMANDS: dict[str, _Handler] = {
    "CAPABILITY": _simple(c.Capability),
    "NOOP": _simple(c.Noop),
    "LOGOUT": _simple(c.Logout),
    "STARTTLS": _simple(c.StartTLS),
    "NAMESPACE": _simple(c.Namespace),
    "IDLE": _simple(c.Idle),
    "CHECK": _simple(c.Check),
    "CLOSE": _simple(c.Close),
    "UNSELECT": _simple(c.Unselect),
    "UNAUTHENTICATE": _simple(c.Unauthenticate),
    "COMPRESS": Grammar.cmd_compress,
    "ID": Grammar.cmd_id,
    "AUTHENTICATE": Grammar.cmd_authenticate,
    "LOGIN": Grammar.cmd_login,
    "ENABLE": Grammar.cmd_enable,
    "SELECT": Grammar.cmd_select,
    "EXAMINE": Grammar.cmd_examine,
    "CREATE": Grammar.cmd_create,
    "DELETE": _one_mailbox(c.Delete),
    "SUBSCRIBE": _one_mailbox(c.Subscribe),
    "UNSUBSCRIBE": _one_mailbox(c.Unsubscribe),
    "GETQUOTAROOT": _one_mailbox(c.GetQuotaRoot),
    "GETQUOTA": Grammar.cmd_getquota,
    "RENAME": Grammar.cmd_rename,
    "LIST": Grammar.cmd_list,
    "LSUB": Grammar.cmd_lsub,
    "STATUS": Grammar.cmd_status,
    "APPEND": Grammar.cmd_append,
    "EXPUNGE": Grammar.cmd_expunge,
    "SEARCH": Grammar.cmd_search,
    "FETCH": Grammar.cmd_fetch,
    "STORE": Grammar.cmd_store,
    "COPY": Grammar.cmd_copy,
    "MOVE": Grammar.cmd_move,
    "SORT": Grammar.cmd_sort,
    "THREAD": Grammar.cmd_thread,
    "REPLACE": Grammar.cmd_replace,
}
# RFC 9051 §9: uid = "UID" SP (copy / move / fetch / search / store / uid-expunge)
#   RFC 5256: / sort / thread
_UID_COMMANDS: dict[str, _Handler] = {
    name: _COMMANDS[name]
    for name in (
        "COPY", "MOVE", "FETCH", "SEARCH", "STORE", "EXPUNGE", "SORT", "THREAD", "REPLACE",
    )
}


def parse_command(
    lines: list[bytes], literals: list[bytes], limits: Limits, *, utf8: bool = False
) -> c.Command:
    """Parse one framed command; raises :class:`RemoteProtocolError` (with ``tag`` when read)."""
    return Grammar(lines, literals, limits, utf8=utf8).command()
