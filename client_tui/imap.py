"""A small asyncio IMAP client (RFC 9051 / RFC 3501, IDLE RFC 2177, MOVE RFC 6851, SASL-IR
RFC 4959), with no Textual import: the interface and the tests drive it alike.

It is written for this client rather than borrowed (docs/decisions.md): it needs STARTTLS,
SASL EXTERNAL and the RFC 7628 error exchange of OAUTHBEARER, which aioimaplib does not offer.
Responses are read whole (literals included) and tokenised into nested lists.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import ssl
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime

from client_tui.credentials import Credentials
from client_tui.revocation import RevocationChecker, ServerRevoked, peer_certificate

# A token of a parsed response: an atom or quoted string (str), a literal (bytes), NIL (None),
# or a parenthesised list.
Token = str | bytes | None | list["Token"]

_LITERAL_AT_END = re.compile(rb"\{(\d+)\+?\}\r\n$")
SUMMARY_HEADERS = "DATE FROM TO CC SUBJECT CONTENT-TYPE DISPOSITION-NOTIFICATION-TO MESSAGE-ID"


class ImapError(Exception):
    """The server said NO or BAD, or the connection failed; the message is for the user."""


@dataclass
class Response:
    """One command's result: its tagged status and the untagged responses that came with it."""

    status: str
    text: str
    untagged: list[list[Token]] = field(default_factory=list)


@dataclass(frozen=True)
class Folder:
    name: str
    flags: frozenset[str]
    delimiter: str | None
    messages: int = 0
    unseen: int = 0

    @property
    def special_use(self) -> str | None:
        """``\\Sent``, ``\\Trash`` … (RFC 6154), or ``\\Inbox`` for INBOX."""
        if self.name.upper() == "INBOX":
            return "\\Inbox"
        for flag in self.flags:
            if flag in ("\\Sent", "\\Trash", "\\Drafts", "\\Junk", "\\Archive"):
                return flag
        return None


@dataclass
class MessageSummary:
    """What the message list shows, from one FETCH of envelope-like headers."""

    uid: int
    flags: set[str]
    size: int
    date: datetime | None
    sender: str
    to: str
    subject: str
    has_attachment: bool
    wants_mdn: bool
    has_calendar: bool = False  # a text/calendar part (iMIP, RFC 6047): for the agenda

    @property
    def seen(self) -> bool:
        return "\\Seen" in self.flags

    @property
    def flagged(self) -> bool:
        return "\\Flagged" in self.flags


@dataclass
class SelectedFolder:
    name: str
    exists: int
    uidnext: int
    uidvalidity: int


def quote(text: str) -> str:
    """An IMAP quoted string (RFC 9051 §4.3); UTF-8 is allowed under IMAP4rev2."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- response tokenizer ------------------------------------------------------------------------


def tokenize(data: bytes) -> list[Token]:
    """Parse one response (literals inlined as ``{n}\\r\\n<n bytes>``) into tokens."""
    pos = 0
    stack: list[list[Token]] = [[]]
    n = len(data)
    while pos < n:
        c = data[pos : pos + 1]
        if c in (b" ", b"\r", b"\n"):
            pos += 1
        elif c == b"(":
            stack.append([])
            pos += 1
        elif c == b")":
            done = stack.pop() if len(stack) > 1 else []
            stack[-1].append(done)
            pos += 1
        elif c == b'"':
            pos += 1
            out = bytearray()
            while pos < n and data[pos : pos + 1] != b'"':
                if data[pos : pos + 1] == b"\\":
                    pos += 1
                out += data[pos : pos + 1]
                pos += 1
            pos += 1
            stack[-1].append(out.decode("utf-8", "replace"))
        elif c == b"{":
            end = data.index(b"}", pos)
            size = int(data[pos + 1 : end].rstrip(b"+"))
            start = end + 3  # "}\r\n"
            stack[-1].append(bytes(data[start : start + size]))
            pos = start + size
        else:
            # An atom; "BODY[HEADER.FIELDS (A B)]" keeps its bracketed section as one atom.
            start = pos
            depth = 0
            while pos < n:
                ch = data[pos : pos + 1]
                if ch == b"[":
                    depth += 1
                elif ch == b"]":
                    depth -= 1
                elif depth == 0 and ch in (b" ", b"(", b")", b"\r", b"\n"):
                    break
                pos += 1
            atom = data[start:pos].decode("utf-8", "replace")
            stack[-1].append(None if atom.upper() == "NIL" else atom)
    while len(stack) > 1:  # tolerate a missing ")" from a sloppy server
        done = stack.pop()
        stack[-1].append(done)
    return stack[0]


def fetch_items(tokens: list[Token]) -> tuple[int, dict[str, Token]] | None:
    """``* n FETCH (K V …)`` → ``(n, {K: V})`` with upper-case keys, else None."""
    if len(tokens) >= 3 and isinstance(tokens[1], str) and tokens[1].upper() == "FETCH":
        seq = tokens[0]
        items = tokens[2]
        if isinstance(seq, str) and seq.isdigit() and isinstance(items, list):
            pairs = {
                str(items[i]).upper(): items[i + 1]
                for i in range(0, len(items) - 1, 2)
                if isinstance(items[i], str)
            }
            return int(seq), pairs
    return None


def _body_section(items: dict[str, Token]) -> bytes:
    for key, value in items.items():
        if key.startswith("BODY[") or key.startswith("BINARY["):
            if isinstance(value, bytes):
                return value
            if isinstance(value, str):
                return value.encode()
    return b""


def _structure_has_attachment(structure: Token) -> bool:
    """True when a BODYSTRUCTURE part is an attachment (RFC 9051 §7.5.2 body-ext)."""
    if not isinstance(structure, list):
        return False
    if structure and isinstance(structure[0], list):  # multipart: parts then subtype
        return any(_structure_has_attachment(part) for part in structure if isinstance(part, list))
    for element in structure:
        if isinstance(element, list) and element and isinstance(element[0], str):
            if element[0].upper() == "ATTACHMENT":
                return True
    media = structure[0] if structure else None
    subtype = structure[1] if len(structure) > 1 else None
    if isinstance(media, str) and media.upper() == "APPLICATION":
        return True
    params = structure[2] if len(structure) > 2 else None
    if isinstance(params, list) and isinstance(subtype, str):
        names = [str(p).upper() for p in params[::2]]
        if "NAME" in names:
            return True
    return False


def _structure_has_calendar(structure: Token) -> bool:
    """True when a BODYSTRUCTURE holds a ``text/calendar`` part (RFC 9051 §7.5.2)."""
    if not isinstance(structure, list) or not structure:
        return False
    if isinstance(structure[0], list):
        return any(_structure_has_calendar(part) for part in structure if isinstance(part, list))
    media, subtype = structure[0], structure[1] if len(structure) > 1 else None
    return (isinstance(media, str) and isinstance(subtype, str)
            and (media.upper(), subtype.upper()) == ("TEXT", "CALENDAR"))  # fmt: skip


def summary_from_fetch(items: dict[str, Token]) -> MessageSummary | None:
    from email.parser import BytesHeaderParser
    from email.policy import default as default_policy

    uid = items.get("UID")
    if not isinstance(uid, str) or not uid.isdigit():
        return None
    flags_token = items.get("FLAGS")
    flags = {str(f) for f in flags_token} if isinstance(flags_token, list) else set()
    size_token = items.get("RFC822.SIZE")
    size = int(size_token) if isinstance(size_token, str) and size_token.isdigit() else 0
    headers = BytesHeaderParser(policy=default_policy).parsebytes(_body_section(items))
    date: datetime | None = None
    with contextlib.suppress(TypeError, ValueError, IndexError):
        raw_date = headers.get("Date")
        if raw_date:
            date = parsedate_to_datetime(str(raw_date))

    def text(name: str) -> str:
        with contextlib.suppress(Exception):
            value = headers.get(name)
            return " ".join(str(value).split()) if value is not None else ""
        return ""

    return MessageSummary(
        uid=int(uid),
        flags=flags,
        size=size,
        date=date,
        sender=text("From"),
        to=text("To"),
        subject=text("Subject"),
        has_attachment=_structure_has_attachment(items.get("BODYSTRUCTURE")),
        wants_mdn=bool(text("Disposition-Notification-To")),
        has_calendar=_structure_has_calendar(items.get("BODYSTRUCTURE")),
    )


# -- the connection ----------------------------------------------------------------------------


class ImapClient:
    """One authenticated IMAP connection. Commands run one at a time (a lock), except that
    :meth:`idle` holds the connection until new mail or :meth:`stop_idle`."""

    def __init__(self, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self.capabilities: set[str] = set()
        self.selected: SelectedFolder | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._tag = 0
        self._lock = asyncio.Lock()
        self._idle_stop: asyncio.Event | None = None
        self.host = ""
        self.port = 0

    # -- connecting ------------------------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        security: str,
        context: ssl.SSLContext,
        credentials: Credentials,
        timeout: float = 60.0,  # noqa: ASYNC109 - per-read timeout kept by the client
        revocation: RevocationChecker | None = None,
    ) -> ImapClient:
        """Connect (``tls`` = implicit TLS, ``starttls``), check the server certificate's
        revocation when asked, authenticate, and return the client."""
        client = cls(timeout)
        try:
            await client._open(host, port, security, context)
            if revocation is not None and client._writer is not None:
                der = peer_certificate(client._writer.get_extra_info("ssl_object"))
                try:
                    await asyncio.to_thread(revocation.check, der)
                except ServerRevoked as exc:
                    raise ImapError(f"IMAP server {host}:{port}: {exc}") from None
            await client.authenticate(credentials)
        except (TimeoutError, OSError, ssl.SSLError) as exc:
            await client.close()
            raise ImapError(f"cannot reach IMAP server {host}:{port}: {_reason(exc)}") from exc
        except BaseException:
            await client.close()
            raise
        return client

    async def _open(self, host: str, port: int, security: str, context: ssl.SSLContext) -> None:
        self.host, self.port = host, port
        if security == "tls":
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=context), self.timeout
            )
        else:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), self.timeout
            )
        greeting = await self._read_response()
        if not greeting.startswith(b"* OK") and not greeting.startswith(b"* PREAUTH"):
            raise ImapError(f"unexpected IMAP greeting: {greeting[:80]!r}")
        await self.capability()
        if security == "starttls":
            # RFC 9051 §6.2.1: no AUTHENTICATE before the TLS layer; the server says LOGINDISABLED.
            await self.command("STARTTLS")
            assert self._writer is not None
            await self._writer.start_tls(context, server_hostname=host)
            await self.capability()

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 5)

    async def logout(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.command("LOGOUT"), 5)
        await self.close()

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    # -- the wire --------------------------------------------------------------------------------

    async def _read_response(self) -> bytes:
        """One response line, with its literals (RFC 9051 §4.3) inlined."""
        assert self._reader is not None
        out = bytearray()
        while True:
            line = await asyncio.wait_for(self._reader.readuntil(b"\r\n"), self.timeout)
            out += line
            literal = _LITERAL_AT_END.search(line)
            if literal is None:
                return bytes(out)
            out += await asyncio.wait_for(
                self._reader.readexactly(int(literal.group(1))), self.timeout
            )

    def _send(self, data: bytes) -> None:
        if self._writer is None:
            raise ImapError("not connected")
        self._writer.write(data)

    def _next_tag(self) -> str:
        self._tag += 1
        return f"H{self._tag:04d}"

    async def command(
        self,
        line: str,
        *,
        literal: bytes | None = None,
        continuation: Sequence[bytes] = (),
        check: bool = True,
    ) -> Response:
        """Send ``TAG line``, answer continuations (``literal`` data or SASL ``continuation``
        lines, then ``*`` to cancel), and gather the untagged responses until the tagged one."""
        async with self._lock:
            return await self._command(
                line, literal=literal, continuation=continuation, check=check
            )

    async def _command(
        self,
        line: str,
        *,
        literal: bytes | None = None,
        continuation: Sequence[bytes] = (),
        check: bool = True,
    ) -> Response:
        tag = self._next_tag()
        self._send(f"{tag} {line}\r\n".encode())
        assert self._writer is not None
        await self._writer.drain()
        untagged: list[list[Token]] = []
        pending = list(continuation)
        while True:
            try:
                raw = await self._read_response()
            except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
                await self.close()
                raise ImapError(f"connection to the IMAP server lost: {_reason(exc)}") from exc
            if raw.startswith(b"+"):
                if literal is not None:
                    self._send(literal + b"\r\n")
                    literal = None
                elif pending:
                    self._send(pending.pop(0) + b"\r\n")
                else:
                    # RFC 7628 §3.2.3: after an error challenge the client sends a dummy reply.
                    self._send(b"AQ==\r\n" if line.startswith("AUTHENTICATE OAUTH") else b"*\r\n")
                await self._writer.drain()
                continue
            if raw.startswith(b"* "):
                tokens = tokenize(raw[2:])
                untagged.append(tokens)
                self._note_untagged(tokens)
                continue
            head, _, rest = raw.decode("utf-8", "replace").partition(" ")
            if head != tag:
                continue  # a stale tagged reply (e.g. after a timeout); not ours
            status, _, text = rest.strip().partition(" ")
            response = Response(status.upper(), text, untagged)
            if check and response.status != "OK":
                raise ImapError(_server_text(text) or f"{line.split()[0]} failed")
            return response

    def _note_untagged(self, tokens: list[Token]) -> None:
        if tokens and tokens[0] == "CAPABILITY":
            self.capabilities = {str(t).upper() for t in tokens[1:]}
        elif (
            len(tokens) >= 3
            and tokens[0] == "OK"
            and isinstance(tokens[1], str)
            and tokens[1].upper() == "[CAPABILITY"
        ):
            self.capabilities = {str(t).upper().rstrip("]") for t in tokens[1:] if t}
            self.capabilities.discard("[CAPABILITY")
        if (
            self.selected is not None
            and len(tokens) >= 2
            and isinstance(tokens[0], str)
            and tokens[0].isdigit()
            and tokens[1] == "EXISTS"
        ):
            self.selected.exists = int(tokens[0])

    async def capability(self) -> set[str]:
        await self.command("CAPABILITY")
        return self.capabilities

    # -- authentication --------------------------------------------------------------------------

    async def authenticate(self, credentials: Credentials) -> None:
        """PLAIN (RFC 4616), EXTERNAL (RFC 4422 App. A) or OAUTHBEARER (RFC 7628), with SASL-IR
        when the server offers it (RFC 4959)."""
        mechanism, initial = credentials.sasl(self.host, self.port)
        encoded = base64.b64encode(initial).decode() if initial else "="
        if "SASL-IR" in self.capabilities:
            response = await self.command(f"AUTHENTICATE {mechanism} {encoded}", check=False)
        else:
            response = await self.command(
                f"AUTHENTICATE {mechanism}", continuation=[encoded.encode()], check=False
            )
        if response.status != "OK":
            raise ImapError(f"login refused: {_server_text(response.text) or response.status}")
        await self.capability()

    # -- folders ---------------------------------------------------------------------------------

    async def folders(self) -> list[Folder]:
        """Every folder with its message and unseen counts (LIST, then STATUS per folder)."""
        listed = await self.command('LIST "" "*"')
        folders: list[Folder] = []
        for tokens in listed.untagged:
            if len(tokens) >= 4 and tokens[0] == "LIST":
                flags = tokens[1] if isinstance(tokens[1], list) else []
                delimiter = tokens[2] if isinstance(tokens[2], str) else None
                name = tokens[3]
                if isinstance(name, bytes):
                    name = name.decode("utf-8", "replace")
                if not isinstance(name, str):
                    continue
                flag_set = frozenset(str(f) for f in flags)
                if "\\Noselect" in flag_set or "\\NonExistent" in flag_set:
                    folders.append(Folder(name, flag_set, delimiter))
                    continue
                messages, unseen = await self.status(name)
                folders.append(Folder(name, flag_set, delimiter, messages, unseen))
        order = ["\\Inbox", "\\Drafts", "\\Sent", "\\Archive", "\\Junk", "\\Trash"]
        folders.sort(
            key=lambda f: (order.index(f.special_use) if f.special_use in order else 99, f.name)
        )
        return folders

    async def status(self, folder: str) -> tuple[int, int]:
        response = await self.command(f"STATUS {quote(folder)} (MESSAGES UNSEEN)")
        for tokens in response.untagged:
            if tokens and tokens[0] == "STATUS" and len(tokens) >= 3:
                items = tokens[-1]
                if isinstance(items, list):
                    values = {
                        str(items[i]).upper(): int(str(items[i + 1]))
                        for i in range(0, len(items) - 1, 2)
                    }
                    return values.get("MESSAGES", 0), values.get("UNSEEN", 0)
        return 0, 0

    async def select(self, folder: str) -> SelectedFolder:
        self.selected = None
        response = await self.command(f"SELECT {quote(folder)}")
        exists = uidnext = uidvalidity = 0
        for tokens in response.untagged:
            if len(tokens) >= 2 and tokens[1] == "EXISTS" and isinstance(tokens[0], str):
                exists = int(tokens[0])
            if tokens and tokens[0] == "OK" and len(tokens) >= 3 and isinstance(tokens[1], str):
                code = tokens[1].upper()
                value = str(tokens[2]).rstrip("]")
                if code == "[UIDNEXT" and value.isdigit():
                    uidnext = int(value)
                elif code == "[UIDVALIDITY" and value.isdigit():
                    uidvalidity = int(value)
        self.selected = SelectedFolder(folder, exists, uidnext, uidvalidity)
        return self.selected

    # -- messages --------------------------------------------------------------------------------

    async def uids(self) -> list[int]:
        """Every UID of the selected folder, ascending (UID SEARCH ALL)."""
        return await self.search("ALL")

    async def search(self, criteria: str) -> list[int]:
        """``UID SEARCH criteria`` (RFC 9051 §6.4.4): the matching UIDs, ascending."""
        response = await self.command(f"UID SEARCH {criteria}")
        found: list[int] = []
        for tokens in response.untagged:
            if tokens and tokens[0] in ("SEARCH", "ESEARCH"):
                found += [int(t) for t in tokens[1:] if isinstance(t, str) and t.isdigit()]
        return sorted(found)

    async def search_text(self, text: str) -> list[int]:
        """Messages whose headers or body contain ``text`` (server-side SEARCH TEXT)."""
        return await self.search(f"CHARSET UTF-8 TEXT {quote(text)}")

    async def summaries(self, uids: Sequence[int]) -> list[MessageSummary]:
        """Summaries for ``uids`` (one UID FETCH per contiguous run, so a page is one or two
        round trips whatever the folder's size)."""
        if not uids:
            return []
        headers = f"BODY.PEEK[HEADER.FIELDS ({SUMMARY_HEADERS})]"
        items = f"(UID FLAGS RFC822.SIZE BODYSTRUCTURE {headers})"
        response = await self.command(f"UID FETCH {sequence_set(uids)} {items}")
        wanted = set(uids)
        found: dict[int, MessageSummary] = {}
        for tokens in response.untagged:
            parsed = fetch_items(tokens)
            if parsed is None:
                continue
            summary = summary_from_fetch(parsed[1])
            if summary is not None and summary.uid in wanted:
                found[summary.uid] = summary
        return [found[uid] for uid in uids if uid in found]

    async def fetch_message(self, uid: int, *, mark_seen: bool = True) -> bytes:
        """The whole message (``BODY[]``, which sets ``\\Seen``; ``BODY.PEEK[]`` if not)."""
        section = "BODY[]" if mark_seen else "BODY.PEEK[]"
        response = await self.command(f"UID FETCH {uid} (UID FLAGS {section})")
        for tokens in response.untagged:
            parsed = fetch_items(tokens)
            if parsed is not None and str(parsed[1].get("UID")) == str(uid):
                body = _body_section(parsed[1])
                if body:
                    return body
        raise ImapError(f"message {uid} is gone")

    async def store_flags(self, uids: Sequence[int], flags: str, *, add: bool = True) -> None:
        sign = "+" if add else "-"
        await self.command(f"UID STORE {sequence_set(uids)} {sign}FLAGS.SILENT ({flags})")

    async def move(self, uids: Sequence[int], folder: str) -> None:
        """RFC 6851 MOVE, else COPY + \\Deleted + UID EXPUNGE (RFC 4315)."""
        if "MOVE" in self.capabilities:
            await self.command(f"UID MOVE {sequence_set(uids)} {quote(folder)}")
            return
        await self.command(f"UID COPY {sequence_set(uids)} {quote(folder)}")
        await self.store_flags(uids, "\\Deleted")
        await self.command(f"UID EXPUNGE {sequence_set(uids)}")

    async def delete_permanently(self, uids: Sequence[int]) -> None:
        """\\Deleted then UID EXPUNGE of just these messages (RFC 4315 §2.1)."""
        await self.store_flags(uids, "\\Deleted")
        await self.command(f"UID EXPUNGE {sequence_set(uids)}")

    async def append(self, folder: str, message: bytes, flags: str = "\\Seen") -> int | None:
        """Keep a copy (e.g. of a sent message in Sent); a synchronising literal. The new
        message's UID when the server says it (RFC 4315 §3: ``[APPENDUID validity uid]``)."""
        response = await self.command(f"APPEND {quote(folder)} ({flags}) {{{len(message)}}}",
                                      literal=message)  # fmt: skip
        found = _APPENDUID.search(response.text)
        return int(found.group(1)) if found else None

    # -- new mail --------------------------------------------------------------------------------

    async def idle(self, limit: float = 25 * 60) -> AsyncIterator[list[Token]]:
        """IDLE (RFC 2177): yield each untagged response until :meth:`stop_idle` or
        ``limit`` seconds (under the 29-minute limit of §3), then DONE."""
        async with self._lock:
            # Armed before IDLE goes out: a stop asked while the server has not yet answered
            # "+ idling" ends this IDLE at once instead of being lost.
            self._idle_stop = asyncio.Event()
            stop = self._idle_stop
            tag = self._next_tag()
            self._send(f"{tag} IDLE\r\n".encode())
            assert self._writer is not None and self._reader is not None
            await self._writer.drain()
            first = await self._read_response()
            if not first.startswith(b"+"):
                self._idle_stop = None
                raise ImapError(f"IDLE refused: {first.decode(errors='replace').strip()}")
            loop = asyncio.get_running_loop()
            deadline = loop.time() + limit
            done_sent = False
            try:
                while True:
                    if (stop.is_set() or loop.time() > deadline) and not done_sent:
                        self._send(b"DONE\r\n")
                        await self._writer.drain()
                        done_sent = True
                    read = asyncio.ensure_future(self._read_response_untimed())
                    waiter = asyncio.ensure_future(stop.wait())
                    await asyncio.wait(
                        {read, waiter}, timeout=max(0.1, deadline - loop.time()),
                        return_when=asyncio.FIRST_COMPLETED,
                    )  # fmt: skip
                    waiter.cancel()
                    if not read.done():
                        if not done_sent:
                            self._send(b"DONE\r\n")
                            await self._writer.drain()
                            done_sent = True
                        raw = await asyncio.wait_for(read, self.timeout)
                    else:
                        raw = read.result()
                    if raw.startswith(b"* "):
                        tokens = tokenize(raw[2:])
                        self._note_untagged(tokens)
                        yield tokens
                    elif raw.startswith(tag.encode()):
                        return
            finally:
                self._idle_stop = None

    async def _read_response_untimed(self) -> bytes:
        assert self._reader is not None
        out = bytearray()
        while True:
            line = await self._reader.readuntil(b"\r\n")
            out += line
            literal = _LITERAL_AT_END.search(line)
            if literal is None:
                return bytes(out)
            out += await self._reader.readexactly(int(literal.group(1)))

    def stop_idle(self) -> None:
        if self._idle_stop is not None:
            self._idle_stop.set()


_APPENDUID = re.compile(r"\[APPENDUID \d+ (\d+)\]", re.IGNORECASE)


def sequence_set(uids: Sequence[int]) -> str:
    """``[1, 2, 3, 7]`` → ``1:3,7`` (RFC 9051 §9 sequence-set)."""
    ordered = sorted(set(uids))
    runs: list[str] = []
    start = prev = ordered[0]
    for uid in ordered[1:]:
        if uid == prev + 1:
            prev = uid
            continue
        runs.append(f"{start}:{prev}" if start != prev else str(start))
        start = prev = uid
    runs.append(f"{start}:{prev}" if start != prev else str(start))
    return ",".join(runs)


def _server_text(text: str) -> str:
    """The human part of a NO/BAD reply, without the ``[CODE]``."""
    text = text.strip()
    if text.startswith("["):
        text = text.partition("]")[2].strip()
    return text


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate not trusted ({exc.verify_message})"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return str(exc) or type(exc).__name__
