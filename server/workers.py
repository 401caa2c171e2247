"""``hygie serve --workers N``: N worker processes on one machine, under one supervisor
(design.md §3; issue 20 item 1; the choice is in docs/decisions.md, "Worker processes").

The supervisor is the process the operator starts (and systemd or a test stops). It opens no
database and runs no event loop work of its own beyond this module:

- it binds, for each worker *slot*, one listening socket per port with ``SO_REUSEPORT`` (nginx's
  ``reuseport``): the kernel spreads new connections evenly over the slots, by a hash of each
  connection's addresses, and a busy worker does not take connections from an idle one. Before
  that it checks that nobody listens on the port already (:func:`server.listeners.probe`), so
  two servers never share a port by mistake;
- it starts each worker as ``hygie serve`` again, a fresh interpreter (no fork of a process that
  has threads), handing down the slot's sockets and one end of a socket pair. The worker
  writes ``ready`` on it once it listens; when the supervisor dies, the worker reads the end
  of the pair and stops as on SIGTERM;
- a worker that exits while nobody asked is started again in the same slot at once, then with
  a growing delay (up to :data:`MAX_BACKOFF`) if it keeps dying young. Its sockets stay open in
  the supervisor meanwhile: connections the kernel gave the slot wait in its queue for the new
  worker instead of being refused;
- on SIGTERM or SIGINT it closes its copies of the sockets, sends SIGTERM to every worker
  (each drains as one process does: listeners closed, sessions given
  ``[server] shutdown_grace_seconds``, the writer flushed), and exits 0 once all exited 0.

A worker that fails while starting the first time (a configuration error, a port taken) stops
the others: ``hygie serve`` then exits with its code, as a single process would.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field

import structlog

from server.config import Config
from server.listeners import ListenError, bind, probe

log = structlog.get_logger("hygie.supervisor")
#: The longest wait before a worker that keeps dying is started again, seconds.
MAX_BACKOFF = 30.0
#: A worker that ran this long before it died is started again at once.
STABLE_SECONDS = 30.0
#: How long a worker may take to listen.
READY_TIMEOUT = 120.0


def cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a container's share)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def worker_count(config: Config, option: int | None) -> int:
    """``--workers``, else ``[server] workers``; 0 means one per core."""
    wanted = option if option is not None else config.server.workers
    return wanted if wanted > 0 else cores()


def ports(config: Config) -> list[int]:
    """Every port this configuration listens on (0: that listener is off)."""
    wanted = [
        config.smtp.submission_port,
        config.smtp.submission_tls_port,
        config.imap.port,
        config.imap.tls_port,
        config.relay.port,
        config.http.pki_port,
        config.http.https_port,
    ]
    return [p for p in wanted if p]


@dataclass
class _Slot:
    index: int
    sockets: dict[int, socket.socket]
    proc: asyncio.subprocess.Process | None = None
    control: socket.socket | None = None
    started: float = 0.0
    backoff: float = 0.0
    restarts: int = 0
    ready: asyncio.Future[bool] | None = None
    reader: asyncio.Task[None] | None = field(default=None, repr=False)


class Supervisor:
    def __init__(self, config: Config, count: int) -> None:
        self.config = config
        self.count = count
        self.slots: list[_Slot] = []
        self.stopping = False

    # -- sockets -----------------------------------------------------------------------------

    def bind(self) -> None:
        host = self.config.server.listen
        wanted = ports(self.config)
        for port in wanted:
            probe(host, port)
        for index in range(self.count):
            sockets = {port: bind(host, port, reuse_port=True) for port in wanted}
            self.slots.append(_Slot(index + 1, sockets))

    def close_sockets(self) -> None:
        for slot in self.slots:
            for sock in slot.sockets.values():
                sock.close()
            slot.sockets = {}

    # -- workers -----------------------------------------------------------------------------

    def _command(self, slot: _Slot, control_fd: int) -> list[str]:
        fds = ",".join(f"{port}={sock.fileno()}" for port, sock in slot.sockets.items())
        return [
            sys.executable, "-m", "server.cli", "--data", str(self.config.data_dir), "serve",
            "--worker", f"{slot.index}/{self.count}", "--inherit", fds,
            "--control", str(control_fd),
        ]  # fmt: skip

    async def start(self, slot: _Slot) -> None:
        parent_end, child_end = socket.socketpair()
        child_end.set_inheritable(True)
        fds = [s.fileno() for s in slot.sockets.values()] + [child_end.fileno()]
        try:
            slot.proc = await asyncio.create_subprocess_exec(
                *self._command(slot, child_end.fileno()),
                stdin=asyncio.subprocess.DEVNULL,
                pass_fds=fds,
            )
        finally:
            child_end.close()
        slot.control = parent_end
        slot.started = time.monotonic()
        slot.ready = asyncio.get_running_loop().create_future()
        slot.reader = asyncio.get_running_loop().create_task(self._read_control(slot))
        log.info("worker_started", worker=slot.index, pid=slot.proc.pid)

    async def _read_control(self, slot: _Slot) -> None:
        assert slot.control is not None and slot.ready is not None
        slot.control.setblocking(False)
        loop = asyncio.get_running_loop()
        data = b""
        with contextlib.suppress(OSError):
            while b"\n" not in data:
                chunk = await loop.sock_recv(slot.control, 64)
                if not chunk:
                    break
                data += chunk
        ready = data.startswith(b"ready")
        if ready and slot.proc is not None:
            log.info("worker_ready", worker=slot.index, pid=slot.proc.pid)
        if not slot.ready.done():
            slot.ready.set_result(ready)

    def _closed(self, slot: _Slot) -> None:
        if slot.control is not None:
            slot.control.close()
            slot.control = None
        if slot.reader is not None:
            slot.reader.cancel()
            slot.reader = None

    async def _wait_ready(self, slot: _Slot) -> bool:
        # The control socket says "ready", or ends when the worker exits.
        assert slot.ready is not None
        try:
            return await asyncio.wait_for(asyncio.shield(slot.ready), READY_TIMEOUT)
        except TimeoutError:
            return False

    # -- the run -----------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        for slot in self.slots:
            await self.start(slot)
        oks = await asyncio.gather(*(self._wait_ready(slot) for slot in self.slots))
        if not all(oks) or stop.is_set():
            code = 0 if all(oks) else 1
            for slot, ok in zip(self.slots, oks, strict=True):
                if not ok:
                    log.error("worker_not_ready", worker=slot.index)
                    if slot.proc is not None and slot.proc.returncode is not None:
                        code = slot.proc.returncode or 1
            await self.stop()
            return code
        log.info("ready", workers=self.count, pid=os.getpid())
        while not stop.is_set():
            waits = {
                asyncio.ensure_future(slot.proc.wait()): slot
                for slot in self.slots
                if slot.proc is not None
            }
            stopped = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait(
                {stopped, *waits}, return_when=asyncio.FIRST_COMPLETED
            )
            for task in (stopped, *waits):
                task.cancel()
            if stop.is_set():
                break
            for task, slot in waits.items():
                if task in done:
                    await self._replace(slot, stop)
        return await self.stop()

    async def _replace(self, slot: _Slot, stop: asyncio.Event) -> None:
        """A worker exited while nobody asked: start another in its slot."""
        assert slot.proc is not None
        code = slot.proc.returncode
        ran = time.monotonic() - slot.started
        self._closed(slot)
        young = ran < STABLE_SECONDS
        slot.backoff = min(max(1.0, 2 * slot.backoff), MAX_BACKOFF) if young else 0.0
        log.warning("worker_exited", worker=slot.index, pid=slot.proc.pid, code=code,
                    ran_seconds=round(ran, 1), restart_in=slot.backoff)  # fmt: skip
        if slot.backoff:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), slot.backoff)
            if stop.is_set():
                return
        slot.restarts += 1
        await self.start(slot)

    async def stop(self) -> int:
        """Close the sockets, SIGTERM every worker, wait for them; 0 if all exited 0."""
        self.stopping = True
        log.info("stopping", workers=self.count)
        self.close_sockets()
        running = [s for s in self.slots if s.proc is not None and s.proc.returncode is None]
        for slot in running:
            assert slot.proc is not None
            with contextlib.suppress(ProcessLookupError):
                slot.proc.send_signal(signal.SIGTERM)
        limit = self.config.server.shutdown_grace_seconds + 30.0
        code = 0
        for slot in self.slots:
            if slot.proc is None:
                continue
            try:
                rc = await asyncio.wait_for(slot.proc.wait(), limit)
            except TimeoutError:
                log.error("worker_kill", worker=slot.index, pid=slot.proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    slot.proc.kill()
                rc = await slot.proc.wait()
            self._closed(slot)
            if rc != 0:
                log.warning("worker_stopped", worker=slot.index, code=rc)
                code = 1
        log.info("stopped", workers=self.count)
        return code


def supervise(config: Config, count: int) -> int:
    """Bind, start ``count`` workers, supervise them until SIGTERM/SIGINT; the exit code."""
    supervisor = Supervisor(config, count)
    try:
        supervisor.bind()
    except ListenError:
        supervisor.close_sockets()
        raise
    try:
        return asyncio.run(supervisor.run())
    finally:
        supervisor.close_sockets()
