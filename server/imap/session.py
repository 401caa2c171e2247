"""The asyncio adapter around the sans-I/O core: one :class:`Session` per IMAP connection.

It reads bytes into :class:`~server.imap.proto.parser.CommandParser`, hands each command to
the handler table in :mod:`server.imap.commands`, and writes the responses the handlers build
with :mod:`server.imap.proto.response`. It owns the connection state of RFC 9051 §3.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import zlib
from typing import TYPE_CHECKING, Any

import structlog

from server.imap.proto import response as r
from server.imap.proto.commands import Command
from server.imap.proto.events import (
    NEED_DATA,
    ContinuationLine,
    ContinuationRequest,
    ProtocolErrorEvent,
)
from server.imap.proto.limits import Limits
from server.imap.proto.parser import CommandParser
from server.imap.proto.sequence import SequenceSet
from server.imap.proto.states import State
from server.imap.selected import SelectedFolder
from storage.accounts import AccountInfo
from storage.crypto import MailboxKeyPair

if TYPE_CHECKING:
    from server.imap.server import ImapServer

log = structlog.get_logger("hygie.imap")
READ_SIZE = 256 * 1024
#: Untagged responses held back (``more=True``) are written once they reach this size, else
#: with the tagged reply: one TLS record and one socket write per command, not one per line.
FLUSH_AT = 64 * 1024


class ConnectionClosed(Exception):
    """The client went away (or must be disconnected)."""


class Session:
    def __init__(
        self,
        server: ImapServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        implicit_tls: bool,
    ) -> None:
        self.server = server
        self.config = server.config
        self.store = server.store
        self.reader = reader
        self.writer = writer
        self.tls = implicit_tls
        self.state = State.NOT_AUTHENTICATED
        self.account: AccountInfo | None = None
        self.keys: MailboxKeyPair | None = None
        self.selected: SelectedFolder | None = None
        self.utf8 = False
        #: Extensions the client turned on (RFC 5161 ENABLE, or implicitly for CONDSTORE).
        self.enabled: set[str] = set()
        # RFC 7889: no literal above APPENDLIMIT is accepted (nor asked for with "+").
        literal = min(self.config.imap.max_literal_size, self.config.smtp.max_message_size)
        self.limits = Limits(max_literal=literal, max_nonsync_literal=literal)
        self.parser = CommandParser(self.limits)
        peer = writer.get_extra_info("peername")
        self.peer = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        self._read_task: asyncio.Task[bytes] | None = None
        #: RFC 5182 SEARCHRES: the UIDs saved by ``SEARCH RETURN (SAVE)``, referred to as ``$``.
        self.saved_uids: list[int] = []
        self._out: list[bytes] = []
        self._out_size = 0
        #: RFC 4978 COMPRESS=DEFLATE, once the client asked for it: raw deflate both ways.
        self._deflate: Any = None
        self._inflate: Any = None

    def resolve(self, sequence_set: SequenceSet, *, uid: bool) -> list[tuple[int, int]]:
        """(seq, uid) pairs of the selected folder that ``sequence_set`` names (``$`` too)."""
        view = self.selected
        assert view is not None
        if sequence_set.saved:
            pairs = ((view.seq_of(u), u) for u in self.saved_uids)
            return sorted((q, u) for q, u in pairs if q is not None)
        return view.resolve(sequence_set, uid=uid)

    @property
    def inactivity_limit(self) -> float:
        if self.state is State.NOT_AUTHENTICATED:
            return float(self.config.imap.login_timeout_seconds)
        return float(self.config.imap.idle_timeout_seconds)

    @property
    def condstore(self) -> bool:
        return "CONDSTORE" in self.enabled or "QRESYNC" in self.enabled

    @property
    def qresync(self) -> bool:
        return "QRESYNC" in self.enabled

    @property
    def rev2(self) -> bool:
        return "IMAP4REV2" in self.enabled

    # -- I/O -------------------------------------------------------------------------------

    async def send(self, *responses: r.Response, more: bool = False) -> None:
        """Write ``responses``; with ``more``, the command has more to say before its tagged
        reply (or the client does not wait for them), and they may wait for it."""
        chunks: list[bytes] = []
        for resp in responses:
            chunks += resp.chunks(utf8=self.utf8)
        await self.send_raw(chunks, more=more)

    async def send_raw(self, chunks: list[bytes], *, more: bool = False) -> None:
        self._out += chunks
        self._out_size += sum(map(len, chunks))
        if not more or self._out_size >= FLUSH_AT:
            await self.flush()

    async def flush(self) -> None:
        if self._out:
            out, self._out, self._out_size = self._out, [], 0
            data = b"".join(out)
            if self._deflate is not None:
                # A sync flush ends every write, so the client can read what it was sent.
                data = self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
            self.writer.write(data)
        await self.writer.drain()

    async def ok(self, tag: str, text: str, code: r.ResponseCode | None = None) -> None:
        await self.send(r.TaggedResponse(tag, "OK", text, code))

    async def no(self, tag: str, text: str, code: r.ResponseCode | None = None) -> None:
        await self.send(r.TaggedResponse(tag, "NO", text, code))

    async def bad(self, tag: str, text: str, code: r.ResponseCode | None = None) -> None:
        await self.send(r.TaggedResponse(tag, "BAD", text, code))

    def start_read(self) -> asyncio.Task[bytes]:
        if self._read_task is None:
            self._read_task = asyncio.ensure_future(self.reader.read(READ_SIZE))
        return self._read_task

    async def read_more(self, idle_seconds: float | None = None) -> None:
        """Feed the parser with the next bytes from the socket."""
        task = self.start_read()
        try:
            data = await asyncio.wait_for(asyncio.shield(task), idle_seconds)
        except TimeoutError:
            with contextlib.suppress(Exception):
                await self.send(r.UntaggedStatus("BYE", "Autologout; idle for too long"))
            raise ConnectionClosed("autologout") from None
        self._read_task = None
        if not data:
            raise ConnectionClosed("client closed the connection")
        if self._inflate is not None:
            # A bound on what one read may inflate to: a literal at most, and a line.
            bound = self.limits.max_literal + 1024 * 1024
            data = self._inflate.decompress(data, bound)
            if self._inflate.unconsumed_tail:
                await self.send(r.UntaggedStatus("BYE", "Compressed data too large"))
                raise ConnectionClosed("compressed input over the bound")
        self.parser.receive_data(data)

    async def read_line(self) -> bytes:
        """One raw continuation line (AUTHENTICATE responses, IDLE's DONE)."""
        self.parser.expect_line()
        while True:
            event = self.parser.next_event()
            if event is NEED_DATA:
                await self.read_more(self.inactivity_limit)
                continue
            if isinstance(event, ContinuationLine):
                return event.data
            if isinstance(event, ProtocolErrorEvent):
                await self.send(r.error_response(event))
                raise ConnectionClosed("bad continuation line")
            raise ConnectionClosed("unexpected event")

    def client_certificate(self) -> bytes | None:
        """The TLS client certificate (DER) the handshake accepted, if the client sent one."""
        obj = self.writer.get_extra_info("ssl_object")
        return obj.getpeercert(binary_form=True) if isinstance(obj, ssl.SSLObject) else None

    @property
    def compressed(self) -> bool:
        return self._deflate is not None

    def start_compression(self) -> None:
        """RFC 4978 §3: from now on, raw DEFLATE (RFC 1951) both ways; call it after the
        tagged OK went out uncompressed."""
        self._deflate = zlib.compressobj(wbits=-15)
        self._inflate = zlib.decompressobj(wbits=-15)

    async def start_tls(self, context: ssl.SSLContext) -> None:
        await self.writer.start_tls(context)
        self.tls = True
        # RFC 9051 §6.2.1: anything the client sent before the handshake is discarded.
        self.parser = CommandParser(self.limits)

    # -- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        # The command table and the capability list live above this adapter (they import it);
        # the server hands them over.
        capabilities, dispatch = self.server.capabilities, self.server.dispatch
        try:
            await self.send(
                r.UntaggedStatus(
                    "OK", "Hygie IMAP server ready", r.Code.capability(capabilities(self))
                )
            )
            while self.state is not State.LOGOUT:
                event = self.parser.next_event()
                if event is NEED_DATA:
                    await self.read_more(self.inactivity_limit)
                elif isinstance(event, ContinuationRequest):
                    await self.send(r.Continuation(event.text))
                elif isinstance(event, ProtocolErrorEvent):
                    await self.send(r.error_response(event))
                    # A line without end or an oversized LITERAL+ would keep streaming: hang up.
                    if event.close_connection or (event.code == "TOOBIG" and event.status == "BAD"):
                        await self.send(r.UntaggedStatus("BYE", "Closing after a protocol error"))
                        break
                elif isinstance(event, Command):
                    if self.server.metrics is not None:
                        self.server.metrics.command("imap", event.name)
                    await dispatch(self, event)
                else:
                    raise ConnectionClosed("unexpected parser event")
        except (ConnectionClosed, ConnectionError, asyncio.IncompleteReadError):
            pass
        except ssl.SSLError as exc:
            log.info("tls_error", peer=self.peer, error=exc.reason)
        except Exception:
            log.exception("imap_session_failed", peer=self.peer)
            with contextlib.suppress(Exception):
                await self.send(r.UntaggedStatus("BYE", "Internal server error"))
        finally:
            await self.close()

    async def close(self) -> None:
        if self._read_task is not None:
            self._read_task.cancel()
        self.server.sessions.discard(self)
        with contextlib.suppress(Exception):
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 2)

    async def shutdown(self) -> None:
        """Server shutdown: tell the client and close (RFC 9051 §7.1.5 BYE)."""
        with contextlib.suppress(Exception):
            await self.send(r.UntaggedStatus("BYE", "Server shutting down"))
        if self._read_task is not None:
            self._read_task.cancel()
        with contextlib.suppress(Exception):
            self.writer.close()
