"""Notices between the processes and nodes that share one database (design.md §3; issue 20).

A notice is ``(kind, key)``: "folder 12 changed" (new mail, flags, expunges: what IMAP IDLE
reports), "forget the credentials of account 7", "forget these opened messages", "the
trusted-domain list changed". A notice carries no data: its receiver re-reads what changed from
the database, so a lost or merged notice never loses data; it only delays what a client is
told, or how soon a cache lets go.

One entry point, :meth:`Notices.invalidate` (``publish`` is the same call): the handlers
registered for the kind run at once in this process, and the notice goes to every other process
of the cluster, whose handlers run on arrival. Notices published in one turn of the event loop
travel together, so a burst of deliveries costs one datagram or one ``NOTIFY``, not one each.

Two channels, chosen by the database:

- **PostgreSQL**: ``LISTEN``/``NOTIFY`` on the channel ``hygie_notices``, which reaches every
  process of every node connected to the database. A listening connection that breaks is
  opened again; since notices may have been lost meanwhile, a ``("*", "")`` notice then runs
  locally: every IDLE session re-reads its folder and every cache is dropped.
- **SQLite** (the processes of one machine): a Unix datagram socket per listening process, in
  the directory ``<database file>-notices/`` (mode 0700, beside ``-wal`` and ``-shm``). A
  sender lists the directory (again only when its modification time changed) and sends each
  datagram to every socket there but its own; a socket whose process is gone (connection
  refused) is removed. Commands such as ``hygie user passwd`` send without listening, so a
  running server forgets at once what they changed. A receiver whose queue is full gets the
  datagram again shortly after; one that stays full gets a single ``("*", "")`` instead.

A notice is published once the change is committed (the writer returned), so whoever reads
on receipt sees it.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import errno
import json
import os
import secrets
import socket
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import make_url

log = structlog.get_logger("hygie.notices")

#: The kind every process understands as "anything may have changed".
EVERYTHING = "*"
#: The PostgreSQL channel; its payload limit is 8000 bytes.
PG_CHANNEL = "hygie_notices"
PG_PAYLOAD = 7800
#: Largest datagram we send (the default socket buffers take several of them).
DATAGRAM = 32 * 1024
#: Datagrams kept for one receiver whose queue is full, before they collapse into ``*``.
BACKLOG = 64
#: Unix socket paths are at most 107 bytes; longer ones go through ``/proc/self/fd``.
SUN_PATH_MAX = 100

Handler = Callable[[str], None]


def _encode(origin: str, pairs: list[tuple[str, str]], limit: int) -> list[bytes]:
    """``pairs`` as JSON payloads of at most ``limit`` bytes each."""
    out: list[bytes] = []
    chunk: list[list[str]] = []
    size = 0
    for kind, key in pairs:
        cost = len(kind) + len(key) + 8
        if chunk and size + cost > limit - 64:
            out.append(json.dumps({"o": origin, "n": chunk}, separators=(",", ":")).encode())
            chunk, size = [], 0
        chunk.append([kind, key])
        size += cost
    if chunk:
        out.append(json.dumps({"o": origin, "n": chunk}, separators=(",", ":")).encode())
    return out


def _decode(data: bytes | str) -> tuple[str, list[tuple[str, str]]] | None:
    try:
        doc = json.loads(data)
        origin = str(doc["o"])
        pairs = [(str(kind), str(key)) for kind, key in doc["n"]]
    except (ValueError, KeyError, TypeError):
        return None
    return origin, pairs


class Notices:
    """This process's end of the channel (one per :class:`storage.db.Database`)."""

    def __init__(self, url: str) -> None:
        self.origin = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._handlers: dict[str, list[Handler]] = {}
        self._pending: list[tuple[str, str]] = []
        self._flush_handle: asyncio.Handle | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self.transport: _Transport = (
            _SqliteTransport(url, self) if url.startswith("sqlite") else _PgTransport(url, self)
        )
        self.sent = 0
        self.received = 0

    # -- handlers ------------------------------------------------------------------------------

    def on(self, kind: str, handler: Handler) -> None:
        """Run ``handler(key)`` for every notice of ``kind``, local or remote. Handlers for
        :data:`EVERYTHING` run (with key ``""``) when notices may have been lost."""
        self._handlers.setdefault(kind, []).append(handler)

    def off(self, kind: str, handler: Handler) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._handlers[kind].remove(handler)

    def _run(self, kind: str, key: str) -> None:
        for handler in list(self._handlers.get(kind, ())):
            try:
                handler(key)
            except Exception as exc:  # one handler's bug must not stop the others
                log.error("notice_handler_failed", kind=kind, error=type(exc).__name__)

    def deliver(self, pairs: list[tuple[str, str]]) -> None:
        """Notices from another process: run this process's handlers (never sent on)."""
        self.received += len(pairs)
        if any(kind == EVERYTHING for kind, _ in pairs):
            self._run(EVERYTHING, "")
            return
        for kind, key in dict.fromkeys(pairs):
            self._run(kind, key)

    # -- publishing ----------------------------------------------------------------------------

    def invalidate(self, kind: str, key: object = "") -> None:
        """The one entry point: handle ``(kind, key)`` here now, and in every other process
        of the cluster as soon as the channel carries it."""
        text = str(key)
        self._run(kind, text)
        self.send(kind, text)

    publish = invalidate

    def send(self, kind: str, key: object = "") -> None:
        """Only to the other processes (the caller has done the local part itself)."""
        self._pending.append((kind, str(key)))
        if self._flush_handle is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop (a synchronous caller): sent by the next flush
            self._flush_handle = loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        pairs, self._pending = list(dict.fromkeys(self._pending)), []
        if not pairs:
            return
        self.sent += len(pairs)
        task = asyncio.ensure_future(self.transport.send(pairs))
        self._sending.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("notice_send_failed", error=type(task.exception()).__name__)

    async def flush(self) -> None:
        """Send what is pending and wait until it left (commands, before they exit)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._flush()
        while self._sending:
            await asyncio.gather(*list(self._sending), return_exceptions=True)

    # -- the channel ---------------------------------------------------------------------------

    async def listen(self) -> None:
        """Receive other processes' notices from now on (``hygie serve``)."""
        await self.transport.listen()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.flush()
        await self.transport.close()


class _Transport(abc.ABC):
    """How notices travel: between SQLite workers, or through PostgreSQL."""

    @abc.abstractmethod
    async def listen(self) -> None: ...

    @abc.abstractmethod
    async def send(self, pairs: list[tuple[str, str]]) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...


# -- SQLite: Unix datagram sockets in a directory beside the database ----------------------------


class _SqliteTransport(_Transport):
    def __init__(self, url: str, notices: Notices) -> None:
        database = make_url(url).database
        if not database:
            raise ValueError("SQLite URL without a database file")
        self.notices = notices
        self.directory = Path(database + "-notices")
        self.name = f"{notices.origin}.sock"
        self._dirfd: int | None = None
        self._rx: socket.socket | None = None
        self._tx: socket.socket | None = None
        self._peers: list[str] = []
        self._stamp = 0
        self._backlog: dict[str, list[bytes]] = {}
        self._retry: asyncio.TimerHandle | None = None

    def _open_dir(self) -> int:
        if self._dirfd is None:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Another user's directory would let them read or inject notices.
            st = os.stat(self.directory)
            if st.st_uid != os.geteuid() or stat.S_IMODE(st.st_mode) & 0o077:
                os.chmod(self.directory, 0o700)
            self._dirfd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        return self._dirfd

    def _address(self, name: str) -> str:
        full = str(self.directory / name)
        if len(full.encode()) <= SUN_PATH_MAX:
            return full
        return f"/proc/self/fd/{self._open_dir()}/{name}"

    async def listen(self) -> None:
        if self._rx is not None:
            return
        self._open_dir()
        rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        rx.setblocking(False)
        rx.bind(self._address(self.name))
        self._rx = rx
        asyncio.get_running_loop().add_reader(rx.fileno(), self._readable)

    def _readable(self) -> None:
        assert self._rx is not None
        while True:
            try:
                data = self._rx.recv(DATAGRAM * 2)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("notice_receive_failed", error=exc.strerror or type(exc).__name__)
                return
            decoded = _decode(data)
            if decoded is not None and decoded[0] != self.notices.origin:
                self.notices.deliver(decoded[1])

    def _peer_names(self) -> list[str]:
        try:
            mtime = os.stat(self.directory).st_mtime_ns
        except FileNotFoundError:
            return []
        if mtime != self._stamp:
            self._stamp = mtime
            self._peers = sorted(
                n for n in os.listdir(self.directory) if n.endswith(".sock") and n != self.name
            )
        return self._peers

    async def send(self, pairs: list[tuple[str, str]]) -> None:
        self._open_dir()
        if self._tx is None:
            self._tx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._tx.setblocking(False)
        datagrams = _encode(self.notices.origin, pairs, DATAGRAM)
        for peer in self._peer_names():
            queued = self._backlog.get(peer)
            if queued is not None:
                queued += datagrams
                if len(queued) > BACKLOG:
                    self._backlog[peer] = _encode(self.notices.origin, [(EVERYTHING, "")], DATAGRAM)
                continue
            self._send_to(peer, list(datagrams))

    def _send_to(self, peer: str, datagrams: list[bytes]) -> None:
        assert self._tx is not None
        while datagrams:
            try:
                self._tx.sendto(datagrams[0], self._address(peer))
            except (BlockingIOError, InterruptedError):
                self._backlog[peer] = datagrams  # its queue is full: again shortly
                self._schedule_retry()
                return
            except OSError as exc:
                if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
                    # Its process is gone: a socket nobody reads any more.
                    with contextlib.suppress(OSError):
                        os.unlink(self.directory / peer)
                    self._backlog.pop(peer, None)
                    return
                log.warning("notice_send_failed", error=exc.strerror or type(exc).__name__)
                return
            datagrams.pop(0)
        self._backlog.pop(peer, None)

    def _schedule_retry(self) -> None:
        if self._retry is None:
            self._retry = asyncio.get_running_loop().call_later(0.05, self._resend)

    def _resend(self) -> None:
        self._retry = None
        for peer, datagrams in list(self._backlog.items()):
            del self._backlog[peer]
            self._send_to(peer, datagrams)

    async def close(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if self._rx is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._rx.fileno())
            self._rx.close()
            self._rx = None
            with contextlib.suppress(OSError):
                os.unlink(self.directory / self.name)
        if self._tx is not None:
            self._tx.close()
            self._tx = None
        if self._dirfd is not None:
            os.close(self._dirfd)
            self._dirfd = None


# -- PostgreSQL: LISTEN / NOTIFY -----------------------------------------------------------------


class _PgTransport(_Transport):
    RECONNECT_MAX = 5.0

    def __init__(self, url: str, notices: Notices) -> None:
        self.dsn = make_url(url).set(drivername="postgresql").render_as_string(False)
        self.notices = notices
        self._listener: Any = None  # the LISTEN connection (``hygie serve`` only)
        self._sender: Any = None  # the NOTIFY connection, opened at the first notice
        self._keeper: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self._lock: asyncio.Lock | None = None
        self._closing = False

    async def _connect(self) -> Any:
        import asyncpg  # type: ignore[import-untyped]

        return await asyncpg.connect(self.dsn, timeout=10)

    async def _connect_listener(self) -> Any:
        conn = await self._connect()
        await conn.add_listener(PG_CHANNEL, self._notified)
        conn.add_termination_listener(lambda _c: self._lost.set())
        return conn

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        decoded = _decode(payload)
        if decoded is not None and decoded[0] != self.notices.origin:
            self.notices.deliver(decoded[1])

    async def listen(self) -> None:
        if self._listener is not None:
            return
        self._listener = await self._connect_listener()
        self._keeper = asyncio.get_running_loop().create_task(self._keep(), name="notices")

    async def _keep(self) -> None:
        """Open the listening connection again when it breaks (PostgreSQL restarted, a
        failover): notices sent meanwhile are lost, so everything is re-read."""
        while not self._closing:
            await self._lost.wait()
            self._lost.clear()
            if self._closing:
                return
            log.warning("notices_connection_lost")
            delay = 0.2
            while not self._closing:
                try:
                    conn = await self._connect_listener()
                except Exception as exc:  # any failure: try again, more slowly
                    log.info("notices_reconnect_failed", error=type(exc).__name__)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.RECONNECT_MAX)
                    continue
                old, self._listener = self._listener, conn
                with contextlib.suppress(Exception):
                    old.terminate()
                log.info("notices_reconnected")
                self.notices.deliver([(EVERYTHING, "")])
                break

    async def send(self, pairs: list[tuple[str, str]]) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        payloads = _encode(self.notices.origin, pairs, PG_PAYLOAD)
        async with self._lock:
            for attempt in (1, 2):
                try:
                    if self._sender is None or self._sender.is_closed():
                        self._sender = await self._connect()
                    for payload in payloads:
                        await self._sender.execute(
                            "SELECT pg_notify($1, $2)", PG_CHANNEL, payload.decode()
                        )
                    return
                except Exception as exc:  # the server went away: a new connection, once
                    if self._sender is not None:
                        with contextlib.suppress(Exception):
                            self._sender.terminate()
                        self._sender = None
                    if attempt == 2:
                        log.warning("notice_send_failed", error=type(exc).__name__)
                        return
                    await asyncio.sleep(0.1)

    async def close(self) -> None:
        self._closing = True
        if self._keeper is not None:
            self._lost.set()
            self._keeper.cancel()
            with contextlib.suppress(BaseException):
                await self._keeper
        for conn in (self._listener, self._sender):
            if conn is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 5)
        self._listener = self._sender = None
