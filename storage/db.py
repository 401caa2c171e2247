"""Database engines, migrations and the group-commit writer.

SQLite runs in WAL mode with ``synchronous=FULL``: a commit is on disk when it returns.
All writes that a protocol reply acknowledges go through one :class:`Writer` per process,
which batches concurrent work into one transaction and one fsync (group commit), with a
retry of each item alone when a shared transaction fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar, cast

import asyncpg  # type: ignore[import-untyped]
import structlog
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Table, create_engine, event, insert, make_url, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import SingletonThreadPool

from storage.blobs import BlobStore
from storage.models import OutboxEffect
from storage.notices import EVERYTHING, Notices
from storage.passwords import CREDENTIALS

T = TypeVar("T")
log = structlog.get_logger("hygie.storage")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # The pysqlite/aiosqlite driver's own transaction handling is disabled (isolation_level
    # None) so that SQLAlchemy's BEGIN is the one that counts and SAVEPOINTs work.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Deleted rows (expunged messages' sealed keys and metadata) are overwritten with zeros,
    # not left readable in free pages until a VACUUM.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _begin_immediate(conn: Connection) -> None:
    # Writers take the write lock at BEGIN, so a read-then-write never dies with SQLITE_BUSY.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _begin_deferred(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN")


#: Every PostgreSQL session of ours: a sequential scan starts at the table's first block, not
#: where another session's scan of the same table is (``synchronize_seqscans``), so the same
#: query without ORDER BY returns the same rows in the same order and a directory search's
#: pages neither repeat nor skip documents.
PG_SESSION_SETTINGS = {"synchronize_seqscans": "off"}


def make_engine(url: str, *, writer: bool = False, echo: bool = False) -> AsyncEngine:
    is_sqlite = url.startswith("sqlite")
    kwargs: dict[str, Any] = {"echo": echo}
    if is_sqlite and writer:
        kwargs["pool_size"] = 1
        kwargs["max_overflow"] = 0
    elif is_sqlite:
        # Every aiosqlite connection owns a thread; overflow connections would be opened and
        # closed (thread, file, pragmas) on each burst of reads. Keep a larger steady pool.
        kwargs["pool_size"] = 32
        kwargs["max_overflow"] = 32
    else:
        kwargs["pool_size"] = 4 if writer else 10
        kwargs["max_overflow"] = 0 if writer else 20
        kwargs["pool_pre_ping"] = True
        kwargs["connect_args"] = {"server_settings": PG_SESSION_SETTINGS}
    engine = create_async_engine(url, **kwargs)
    if is_sqlite:
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _begin_immediate if writer else _begin_deferred)
    return engine


def make_sync_engine(url: str, *, echo: bool = False) -> Engine:
    """The SQLite writer's engine: the standard ``sqlite3`` driver, one connection."""
    sync_url = make_url(url).set(drivername="sqlite")
    engine = create_engine(sync_url, echo=echo, poolclass=SingletonThreadPool)
    event.listen(engine, "connect", _sqlite_pragmas)
    event.listen(engine, "begin", _begin_immediate)
    return engine


def _alembic_config(url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    location = resources.files("storage") / "migrations"
    cfg.set_main_option("script_location", str(location))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


async def migrate(url: str) -> None:
    """Bring the database at ``url`` to the newest schema (``alembic upgrade head``)."""
    if url.startswith("sqlite"):
        Path(url.split("///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url, writer=True)
    try:
        async with engine.begin() as conn:

            def upgrade(sync_conn: Connection) -> None:
                cfg = _alembic_config(url)
                cfg.attributes["connection"] = sync_conn
                command.upgrade(cfg, "head")

            await conn.run_sync(upgrade)
    finally:
        await engine.dispose()


#: Work functions are synchronous and take a Core :class:`Connection`: on SQLite a whole
#: batch then runs in one hop to the writer thread instead of one hop per statement, and on
#: PostgreSQL they run through ``AsyncConnection.run_sync`` over asyncpg.
WorkFn = Callable[[Connection], Any]
BatchFn = Callable[[Connection, list[Any]], list[Any]]


@dataclass
class _Work:
    """One caller's work: either ``fn(conn)`` or one ``payload`` for ``batch_fn``."""

    fn: WorkFn | None
    batch_fn: BatchFn | None
    payload: Any
    blobs: list[tuple[str, bytes]]
    future: asyncio.Future[Any] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


EFFECTS: Table = OutboxEffect.__table__  # type: ignore[assignment]


# -- effects of outbox jobs (design.md §2 step 5) ------------------------------------------------
#
# After-commit work runs from the outbox and is retried after a crash; each of its writes must
# happen once. A step names each write (``with effect("file:<document>"):``); the writer then
# commits, in the same transaction as the write, a row (job, name, what the write returned),
# and a job run again finds the row and gets the recorded result instead of writing again.


@dataclass
class _Effect:
    job_id: int
    key: str
    used: bool = False


#: The outbox job running in this task (set by the outbox runner, read by :func:`effect`).
_JOB: ContextVar[int | None] = ContextVar("hygie_outbox_job", default=None)
_EFFECT: ContextVar[_Effect | None] = ContextVar("hygie_outbox_effect", default=None)
#: Result types an effect may return besides JSON values (frozen dataclasses of plain fields).
_RESULT_TYPES: dict[str, type[Any]] = {}


def effect_result_type(cls: type[T]) -> type[T]:
    """Register a frozen dataclass or NamedTuple an effect may return (class decorator)."""
    _RESULT_TYPES[cls.__name__] = cls
    return cls


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        name = type(value).__name__
        if _RESULT_TYPES.get(name) is not type(value):
            raise TypeError(f"effect result type {name} is not registered")
        fields = {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"__type__": name, "fields": fields}
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a NamedTuple
        name = type(value).__name__
        if _RESULT_TYPES.get(name) is not type(value):
            raise TypeError(f"effect result type {name} is not registered")
        fields = value._asdict()  # type: ignore[attr-defined]
        return {"__type__": name, "fields": {k: _encode(v) for k, v in fields.items()}}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v) for v in value]}
    if isinstance(value, frozenset):
        return {"__frozenset__": sorted(_encode(v) for v in value)}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, dt.datetime):
        return {"__datetime__": value.isoformat()}
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"an effect cannot record a {type(value).__name__}")


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if "__frozenset__" in value:
            return frozenset(_decode(v) for v in value["__frozenset__"])
        if "__tuple__" in value:
            return tuple(_decode(v) for v in value["__tuple__"])
        if "__datetime__" in value:
            return dt.datetime.fromisoformat(value["__datetime__"])
        if "__type__" in value:
            cls = _RESULT_TYPES[value["__type__"]]
            return cls(**{k: _decode(v) for k, v in value["fields"].items()})
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


@contextlib.contextmanager
def running_job(job_id: int) -> Iterator[None]:
    """The outbox runner's frame: writes named with :func:`effect` belong to ``job_id``."""
    token = _JOB.set(job_id)
    try:
        yield
    finally:
        _JOB.reset(token)


@contextlib.contextmanager
def effect(key: str) -> Iterator[None]:
    """Name the one write made in this block as an effect of the running outbox job (no-op
    outside a job). Run again, the block's write returns what it returned the first time."""
    job = _JOB.get()
    if job is None:
        yield
        return
    token = _EFFECT.set(_Effect(job, key[:200]))
    try:
        yield
    finally:
        _EFFECT.reset(token)


def _claimed(fn: Callable[[Connection], T], eff: _Effect) -> Callable[[Connection], T]:
    def write(conn: Connection) -> T:
        done = conn.execute(
            select(EFFECTS.c.result).where(EFFECTS.c.job_id == eff.job_id, EFFECTS.c.key == eff.key)
        ).first()
        if done is not None:
            return cast(T, _decode(json.loads(done[0])))
        result = fn(conn)
        conn.execute(
            insert(EFFECTS).values(
                job_id=eff.job_id, key=eff.key, result=json.dumps(_encode(result))
            )
        )
        return result

    return write


def _take_effect() -> _Effect | None:
    eff = _EFFECT.get()
    if eff is None:
        return None
    if eff.used:
        raise RuntimeError(f"effect {eff.key!r} makes more than one write")
    eff.used = True
    return eff


class Writer:
    """The group-commit writer: ``await writer.run(fn)`` returns once ``fn``'s writes are durable.

    Concurrent callers share one transaction (and one fsync) of up to ``max_batch`` items.
    Items submitted with :meth:`run_batched` and the same ``batch_fn`` are handed to it
    together, so N deliveries cost a few statements rather than N times a few. Blobs attached
    to an item are made durable before the transaction that refers to them (one segment
    append and one ``fdatasync`` for the whole batch with the file store). If a shared
    transaction fails, each of its items is retried alone, so one bad item fails only itself.

    The writer is a thread of its own: callers hand it work through a queue, it takes
    whatever has arrived as one batch, writes blobs and transaction, and settles the batch's
    futures with one callback into the callers' event loop. On SQLite the thread runs the
    standard ``sqlite3`` driver; on PostgreSQL it runs each batch on an event loop of its own
    with the asyncpg engine and the same functions through ``run_sync``.
    """

    def __init__(self, url: str, blobs: BlobStore, max_batch: int = 64, echo: bool = False):
        self._blobs = blobs
        self._max = max_batch
        self._sync_engine: Engine | None = None
        self._async_engine: AsyncEngine | None = None
        self._inbox: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the callers' loop
        if url.startswith("sqlite"):
            self._sync_engine = make_sync_engine(url, echo=echo)
        else:
            self._async_engine = make_engine(url, writer=True, echo=echo)
        self.batches = 0
        self.items = 0

    def start(self) -> None:
        if self._worker is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._worker = threading.Thread(target=self._thread_main, name="hygie-writer", daemon=True)
        self._worker.start()

    async def close(self) -> None:
        """Finish queued work, then stop."""
        if self._worker is not None:
            self._inbox.put(None)
            await asyncio.to_thread(self._worker.join)
            self._worker = None
        self._blobs.close()
        if self._sync_engine is not None:
            self._sync_engine.dispose()

    async def run(
        self, fn: Callable[[Connection], T], blobs: list[tuple[str, bytes]] | None = None
    ) -> T:
        eff = _take_effect()
        if eff is not None:
            fn = _claimed(fn, eff)
        return cast(T, await self._submit(_Work(fn, None, None, blobs or [])))

    async def run_batched(
        self, batch_fn: BatchFn, payload: Any, blobs: list[tuple[str, bytes]] | None = None
    ) -> Any:
        """``batch_fn(conn, payloads)`` returns one result per payload, in order."""
        eff = _take_effect()
        if eff is not None:  # an outbox effect: alone, with its record
            alone = _claimed(lambda conn: batch_fn(conn, [payload])[0], eff)
            return await self._submit(_Work(alone, None, None, blobs or []))
        return await self._submit(_Work(None, batch_fn, payload, blobs or []))

    async def _submit(self, work: _Work) -> Any:
        if self._worker is None:
            raise RuntimeError("Writer used before Writer.start()")
        self._inbox.put(work)
        return await work.future

    # -- the writer thread -------------------------------------------------------------------

    def _thread_main(self) -> None:
        assert self._loop is not None
        # PostgreSQL: an event loop of this thread's own for the asyncpg engine. Each
        # transaction is several round trips (BEGIN, UPDATE, INSERTs, COMMIT); awaited here
        # they take a fraction of a millisecond each instead of a turn of the busy protocol
        # loop each.
        own_loop = asyncio.new_event_loop() if self._async_engine is not None else None
        try:
            stopping = False
            while not stopping:
                first = self._inbox.get()
                if first is None:
                    break
                batch = [first]
                while len(batch) < self._max:
                    try:
                        item = self._inbox.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        stopping = True
                        break
                    batch.append(item)
                if own_loop is None:
                    outcomes = self._commit_in_thread(batch)
                else:
                    outcomes = own_loop.run_until_complete(self._commit(batch))
                self._loop.call_soon_threadsafe(_settle, outcomes)
        finally:
            if own_loop is not None and self._async_engine is not None:
                own_loop.run_until_complete(self._async_engine.dispose())
                own_loop.run_until_complete(own_loop.shutdown_default_executor())
                own_loop.close()

    def _commit_in_thread(self, batch: list[_Work]) -> list[_Outcome]:
        engine = self._sync_engine
        assert engine is not None
        blobs = [b for w in batch for b in w.blobs]
        try:
            try:
                written = self._blobs.write(blobs) if blobs else None
            except Exception as exc:  # the disk failed: nothing in this batch is durable
                log.error("blob_write_failed", error=type(exc).__name__, items=len(batch))
                return [(w, False, exc) for w in batch]
            try:
                with engine.begin() as conn:
                    results = self._body(conn, batch, written)
            except Exception as exc:
                if len(batch) == 1:
                    _log_failure(exc)
                    return [(batch[0], False, exc)]
                # Isolate the failing item; the blobs are already durable.
                return [self._alone_in_thread(w, written) for w in batch]
        finally:
            self._blobs.after_commit()
        self.batches += 1
        self.items += len(batch)
        return [(w, True, value) for w, value in zip(batch, results, strict=True)]

    def _alone_in_thread(self, w: _Work, written: Any) -> _Outcome:
        engine = self._sync_engine
        assert engine is not None
        try:
            with engine.begin() as conn:
                (value,) = self._body(conn, [w], written)
        except Exception as exc:
            _log_failure(exc)
            return (w, False, exc)
        return (w, True, value)

    # -- PostgreSQL: in the writer thread's event loop ----------------------------------------

    async def _commit(self, batch: list[_Work]) -> list[_Outcome]:
        blobs = [b for w in batch for b in w.blobs]
        try:
            try:
                results = await self._write_and_commit(batch, blobs)
            except _BlobWriteFailed as failed:  # the disk failed: nothing here is durable
                log.error("blob_write_failed", error=type(failed.error).__name__, items=len(batch))
                return [(w, False, failed.error) for w in batch]
            except _TransactionFailed as failed:
                if len(batch) == 1:
                    _log_failure(failed.error)
                    return [(batch[0], False, failed.error)]
                # Isolate the failing item; its blobs are already durable.
                return [await self._commit_alone(w, failed.written) for w in batch]
        finally:
            self._blobs.after_commit()
        self.batches += 1
        self.items += len(batch)
        return [(w, True, value) for w, value in zip(batch, results, strict=True)]

    async def _commit_alone(self, w: _Work, written: Any) -> _Outcome:
        try:
            (value,) = await self._transaction([w], written)
        except Exception as exc:
            _log_failure(exc)
            return (w, False, exc)
        return (w, True, value)

    async def _write_and_commit(
        self, batch: list[_Work], blobs: list[tuple[str, bytes]]
    ) -> list[Any]:
        """Blobs durable first (an external store writes in a worker thread), then one
        transaction."""
        written = None
        if blobs and self._blobs.external:
            try:
                written = await asyncio.to_thread(self._blobs.write, blobs)
            except Exception as exc:
                raise _BlobWriteFailed(exc) from exc
        try:
            return await self._transaction(batch, written)
        except Exception as exc:
            raise _TransactionFailed(exc, written) from exc

    async def _transaction(self, batch: list[_Work], written: Any) -> list[Any]:
        assert self._async_engine is not None
        async with self._async_engine.begin() as aconn:
            return await aconn.run_sync(self._body, batch, written)

    def _body(self, conn: Connection, batch: list[_Work], written: Any) -> list[Any]:
        results: dict[int, Any] = {}
        self._blobs.put_rows(conn, [b for w in batch for b in w.blobs], written)
        groups: dict[BatchFn, list[int]] = {}
        for i, w in enumerate(batch):
            if w.batch_fn is not None:
                groups.setdefault(w.batch_fn, []).append(i)
            elif w.fn is not None:
                results[i] = w.fn(conn)
        for batch_fn, indexes in groups.items():
            values = batch_fn(conn, [batch[i].payload for i in indexes])
            results.update(zip(indexes, values, strict=True))
        return [results[i] for i in range(len(batch))]


#: A settled item: (work, succeeded, result or exception).
_Outcome = tuple[_Work, bool, Any]


def _settle(outcomes: list[_Outcome]) -> None:
    """In the event loop: hand a batch's results to its callers (one callback per batch)."""
    for work, ok, value in outcomes:
        if work.future.done():  # the caller went away (cancelled)
            continue
        if ok:
            work.future.set_result(value)
        else:
            work.future.set_exception(value)


class _BlobWriteFailed(Exception):
    def __init__(self, error: Exception) -> None:
        self.error = error


class _TransactionFailed(Exception):
    def __init__(self, error: Exception, written: Any) -> None:
        self.error = error
        self.written = written


def _log_failure(exc: Exception) -> None:
    # Expected refusals (a folder that exists, …) are the caller's to report, not an error.
    if not getattr(exc, "expected", False):
        log.warning("write_failed", error=type(exc).__name__)


class _SqliteLookups:
    """Point reads on the submission path (RCPT's recipient lookup) without a thread hop.

    Through the async pool one query took several hops (pool reset, BEGIN, execute, fetch),
    each waiting for a turn of a busy event loop: 35 ms per RCPT at 250 messages/s; even one
    hop to a thread costs more loop time (queue, wake-up, callback) than the query. An
    indexed read of a few rows in WAL mode takes tens of microseconds and never waits for
    the writer, so it runs on the loop, on a connection with no busy timeout: if SQLite ever
    answers "busy" (another connection recovering the WAL), the read is retried on a
    dedicated thread that may wait.
    """

    def __init__(self, url: str) -> None:
        database = make_url(url).database
        if not database:
            raise ValueError("SQLite URL without a database file")
        self._path = database
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="hygie-lookup")
        self._inline: sqlite3.Connection | None = None
        self._waiting: sqlite3.Connection | None = None  # used in the executor's thread only

    def _connect(self, busy_timeout_ms: int) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        conn.execute("PRAGMA query_only=ON")
        return conn

    def _run_waiting(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        if self._waiting is None:
            self._waiting = self._connect(10_000)
        return [tuple(r) for r in self._waiting.execute(sql, params).fetchall()]

    async def rows(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        try:
            if self._inline is None:
                self._inline = self._connect(0)
            return [tuple(r) for r in self._inline.execute(sql, params).fetchall()]
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._run_waiting, sql, params)

    def _close_waiting(self) -> None:
        if self._waiting is not None:
            self._waiting.close()
            self._waiting = None

    def close(self) -> None:
        if self._inline is not None:
            self._inline.close()
            self._inline = None
        with contextlib.suppress(RuntimeError):  # already shut down
            self._executor.submit(self._close_waiting).result()
        self._executor.shutdown(wait=True)


class _PgLookups:
    """The same on PostgreSQL: a few dedicated asyncpg connections (autocommit, no reset
    between uses), one round trip per lookup. The pooled path added a ping, a reset and, under
    bursts, new overflow connections; one connection alone would serialise the RCPTs of all
    sessions, one loop turn each."""

    size = 4

    def __init__(self, url: str) -> None:
        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(False)
        self._idle: asyncio.Queue[Any] = asyncio.Queue()
        self._all: list[Any] = []
        self._opening = 0

    async def _acquire(self) -> Any:
        if self._idle.empty() and len(self._all) + self._opening < self.size:
            self._opening += 1
            try:
                conn = await asyncpg.connect(self._dsn, server_settings=PG_SESSION_SETTINGS)
            finally:
                self._opening -= 1
            self._all.append(conn)
            return conn
        return await self._idle.get()

    def _release(self, conn: Any, broken: bool) -> None:
        if broken:
            self._all.remove(conn)
            conn.terminate()
        else:
            self._idle.put_nowait(conn)

    async def rows(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        numbered = sql
        for i in range(1, sql.count("?") + 1):
            numbered = numbered.replace("?", f"${i}", 1)
        for attempt in (1, 2):
            conn = await self._acquire()
            try:
                result = [tuple(r) for r in await conn.fetch(numbered, *params)]
            except (OSError, TimeoutError, asyncpg.InterfaceError):
                # The server went away (restart, failover): drop it, retry once.
                self._release(conn, broken=True)
                if attempt == 2:
                    raise
                continue
            except BaseException as exc:
                # Cancelled mid-query: the connection's state is unknown, do not reuse it.
                self._release(conn, broken=not isinstance(exc, Exception) or conn.is_closed())
                raise
            self._release(conn, broken=False)
            return result
        raise AssertionError("unreachable")

    async def close(self) -> None:
        conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(Exception):
                await conn.close()


def _forget_credentials(key: str) -> None:
    CREDENTIALS.forget(int(key))


class Database:
    """One process's handle on the store: a read engine, the group-commit writer, and the
    notices shared with the other processes and nodes on the same database
    (:mod:`storage.notices`)."""

    def __init__(
        self, url: str, blobs: BlobStore, *, group_commit_max: int = 64, echo: bool = False
    ):
        self.url = url
        self.dialect = "sqlite" if url.startswith("sqlite") else "postgresql"
        self.read_engine = make_engine(url, echo=echo)
        self.blobs = blobs
        self.writer = Writer(url, blobs, group_commit_max, echo=echo)
        self.read = async_sessionmaker(self.read_engine, expire_on_commit=False)
        self._lookups = _SqliteLookups(url) if self.dialect == "sqlite" else None
        self._pg_lookups = _PgLookups(url) if self.dialect == "postgresql" else None
        self.notices = Notices(url)
        # The verified-credentials memory (storage.passwords) forgets an account changed in
        # any process; the row is re-read at every login anyway, this only drops the entry.
        self.notices.on("credentials", _forget_credentials)
        self.notices.on(EVERYTHING, lambda _key: CREDENTIALS.clear())

    async def start(self) -> None:
        self.writer.start()

    async def raw_rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Rows of a hand-written query (``?`` placeholders), straight from the driver.

        For the few reads that return a whole large folder (100,000 rows for SELECT and a
        full FLAGS resync), SQLAlchemy's per-row result processing costs several times the
        query itself; the driver's tuples are all these callers need.
        """
        async with self.read_engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            if self.dialect == "sqlite":
                return [tuple(r) for r in await driver.execute_fetchall(sql, params)]
            numbered = sql
            for i in range(1, sql.count("?") + 1):
                numbered = numbered.replace("?", f"${i}", 1)
            return [tuple(r) for r in await driver.fetch(numbered, *params)]

    async def lookup(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Like :meth:`raw_rows`, for small indexed reads on a hot path (committed data only,
        like any other read): on SQLite without a thread hop, on PostgreSQL one round trip."""
        if self._lookups is not None:
            return await self._lookups.rows(sql, params)
        if self._pg_lookups is not None:
            return await self._pg_lookups.rows(sql, params)
        return await self.raw_rows(sql, *params)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.notices.close()
        with contextlib.suppress(Exception):
            await self.writer.close()
        if self._lookups is not None:
            self._lookups.close()
        if self._pg_lookups is not None:
            await self._pg_lookups.close()
        await self.read_engine.dispose()
