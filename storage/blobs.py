"""The encrypted blob store: immutable message bodies, content-addressed by ciphertext hash.

Two backends behind one interface: segment files under the data directory (the default) or
rows in the database (``blobs`` table, for PostgreSQL clusters where nodes share no disk).
Only ciphertext ever reaches a blob.

The group-commit writer (:class:`storage.db.Writer`) drives every write: for each batch it
calls :meth:`BlobStore.write` (durable outside the database, before the transaction), then
:meth:`BlobStore.put_rows` inside the transaction that also inserts the messages referring
to the blobs, so a blob is durable before any row names it and before any ``250``.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import functools
import io
import os
import re
import stat
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import Table, bindparam, delete, select
from sqlalchemy import text as sql_text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Blob, SegmentBlob

BLOBS: Table = Blob.__table__  # type: ignore[assignment]
SEGMENT_BLOBS: Table = SegmentBlob.__table__  # type: ignore[assignment]

#: A blob's id and its ciphertext.
BlobItem = tuple[str, bytes]
#: ``Database.lookup``: a hand-written query (``?`` placeholders) and its rows.
Lookup = Callable[..., Awaitable[list[tuple[Any, ...]]]]


class BlobNotFound(Exception):
    pass


class BlobStore(abc.ABC):
    """Interface. Writes: :meth:`write` runs before the transaction (in a worker thread),
    :meth:`put_rows` inside it. Deletes: :meth:`delete_rows` inside the transaction,
    :meth:`delete_files` after it committed."""

    #: Blobs live outside the database (their writes are not part of a transaction).
    external = False

    def write(self, blobs: list[BlobItem]) -> Any:
        """Make ``blobs`` durable outside the database; returns what :meth:`put_rows` needs."""
        return None

    def write_deferred(self, blobs: list[BlobItem]) -> tuple[Any, Callable[[], None]]:
        """:meth:`write` in two halves: what :meth:`put_rows` needs, and the call that makes
        the bytes durable. The writer runs that call while it executes the transaction's
        statements, and commits only once it returned (a crash never leaves a committed row
        without its bytes). By default the bytes are durable before this returns."""
        return self.write(blobs), _nothing

    def put_rows(self, conn: Connection, blobs: list[BlobItem], written: Any) -> None:  # noqa: B027
        """Record ``blobs`` inside the current transaction."""

    def after_commit(self) -> None:  # noqa: B027
        """Called by the writer once the transaction of a :meth:`write` has ended."""

    def delete_rows(self, conn: Connection, blob_ids: list[str]) -> None:  # noqa: B027
        """Delete blobs inside the current transaction."""

    def close(self) -> None:  # noqa: B027
        """The writer has stopped: nothing more will be written."""

    async def delete_files(self, blob_ids: list[str]) -> None:  # noqa: B027
        """Delete blobs after the transaction that dropped their last reference committed."""

    @abc.abstractmethod
    async def get(self, session: AsyncSession, blob_id: str) -> bytes:
        """The ciphertext of ``blob_id``; :class:`BlobNotFound` if there is none."""

    async def reader(self, session: AsyncSession, blob_id: str) -> BinaryIO:
        """The ciphertext as a file, to read block by block (large messages)."""
        return io.BytesIO(await self.get(session, blob_id))


def _valid_id(blob_id: str) -> str:
    if len(blob_id) != 64 or not all(c in "0123456789abcdef" for c in blob_id):
        raise ValueError("malformed blob id")
    return blob_id


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _nothing() -> None:
    return None


def _write_fully(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class FileBlobStore(BlobStore):
    """The first layout, one file per blob: ``<root>/ab/<sha256>``, written to a temporary
    name, fsynced, renamed, directory fsynced. Still read (and deleted) by
    :class:`SegmentBlobStore`, so data directories written before segments keep working."""

    external = True

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, blob_id: str) -> Path:
        return self.root / _valid_id(blob_id)[:2] / blob_id

    def write(self, blobs: list[BlobItem]) -> Any:
        dirs: set[Path] = set()
        for blob_id, data in blobs:
            path = self._path(blob_id)
            if path.exists():
                continue
            if not path.parent.is_dir():
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                dirs.add(self.root)
            tmp = path.with_name(path.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                _write_fully(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            dirs.add(path.parent)
        # One fsync per touched directory makes the renames (and new directories) durable.
        for d in dirs:
            _fsync_dir(d)
        return None

    async def get(self, session: AsyncSession, blob_id: str) -> bytes:
        try:
            return await asyncio.to_thread(self._path(blob_id).read_bytes)
        except FileNotFoundError:
            raise BlobNotFound(blob_id) from None

    async def reader(self, session: AsyncSession, blob_id: str) -> BinaryIO:
        try:
            return await asyncio.to_thread(self._path(blob_id).open, "rb")
        except FileNotFoundError:
            raise BlobNotFound(blob_id) from None

    def _unlink(self, blob_ids: list[str]) -> None:
        for blob_id in blob_ids:
            with contextlib.suppress(FileNotFoundError):
                self._path(blob_id).unlink()

    async def delete_files(self, blob_ids: list[str]) -> None:
        if blob_ids:
            await asyncio.to_thread(self._unlink, blob_ids)


@dataclass(frozen=True)
class Location:
    """Where a blob's ciphertext lies: ``length`` bytes at ``offset`` in one segment file."""

    segment: str
    offset: int
    length: int


class _Slice(io.RawIOBase):
    """Bytes ``[offset, offset + length)`` of a segment, read like a file of their own."""

    def __init__(self, path: Path, loc: Location) -> None:
        self._fd = os.open(path, os.O_RDONLY)
        self._pos = loc.offset
        self._end = loc.offset + loc.length

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            size = self._end - self._pos
        size = min(size, self._end - self._pos)
        data = os.pread(self._fd, size, self._pos) if size > 0 else b""
        self._pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


# Written once (EXPUNGE runs them on the writer thread): see storage/transactions.py.
_DROP_SEGMENT_ROWS = sql_text(
    "DELETE FROM segment_blobs WHERE id IN :ids RETURNING id, segment, start, size"
).bindparams(bindparam("ids", expanding=True))
_LIVE_SEGMENTS = sql_text(
    "SELECT DISTINCT segment FROM segment_blobs WHERE segment IN :names"
).bindparams(bindparam("names", expanding=True))

SEGMENT_NAME = re.compile(r"^[0-9a-f]{16}-[0-9]+\.seg$")


class SegmentBlobStore(FileBlobStore):
    """Append-only segment files: ``<root>/segments/<time>-<pid>.seg``.

    Each group-commit batch appends the ciphertexts of all its messages to the process's
    active segment with one ``write`` and one ``fdatasync``; the index row (blob id →
    segment, offset, length; table ``segment_blobs``) is inserted by the transaction that
    inserts the messages, after the bytes are durable. A crash between the two leaves
    orphan bytes in the segment, never a row without its bytes. Blob ids stay the SHA-256 of
    the ciphertext; a ciphertext whose id is already indexed is not indexed twice.

    Segments are immutable once written, like blobs: each process appends to a segment of
    its own (named after the time and its pid), opened at its first write, and *seals* it
    (mode 0400) when it reaches :attr:`segment_size` or at close, only after the
    transactions that index its blobs ended. Deleting a blob (expunge, folder deletion)
    drops its index row in the transaction, then overwrites its bytes with zeros; a sealed
    segment left with no indexed blob is unlinked. See docs/decisions.md.
    """

    segment_size = 32 * 1024 * 1024

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.segments = root / "segments"
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._name = ""
        self._size = 0
        self._to_seal: list[str] = []
        self._serial = 0
        # Filled by delete_rows inside a transaction, used by delete_files after the commit.
        self._freed: dict[str, Location] = {}
        self._dead: set[str] = set()

    # -- writing (the writer's thread) ---------------------------------------------------------

    def _open_segment(self) -> None:
        self.segments.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._serial += 1
        stamp = (time.time_ns() + self._serial) & 0xFFFFFFFFFFFFFFFF
        self._name = f"{stamp:016x}-{os.getpid()}.seg"
        self._fd = os.open(
            self.segments / self._name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600
        )
        self._size = 0
        # The new name must be durable before any index row can refer to it.
        _fsync_dir(self.segments)
        _fsync_dir(self.root)

    def _close_segment(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self._to_seal.append(self._name)

    def write(self, blobs: list[BlobItem]) -> Any:
        locations, sync = self.write_deferred(blobs)
        sync()
        return locations

    def write_deferred(self, blobs: list[BlobItem]) -> tuple[Any, Callable[[], None]]:
        """The bytes appended to the active segment (in the page cache); the returned call
        ``fdatasync``s them. The writer thread calls this once per batch and the sync before
        its next batch, so the segment is never written while a sync of it is pending."""
        unique = list(dict(blobs).items())
        if not unique:
            return {}, _nothing
        with self._lock:
            if self._fd is None:
                self._open_segment()
            fd = self._fd
            assert fd is not None
            locations: dict[str, Location] = {}
            offset = self._size
            for blob_id, data in unique:
                locations[_valid_id(blob_id)] = Location(self._name, offset, len(data))
                offset += len(data)
            try:
                _write_fully(fd, b"".join(data for _, data in unique))
            except BaseException:
                # Where the segment ends is now unknown: continue in a new one.
                self._close_segment()
                raise
            self._size = offset
            full = self._size >= self.segment_size

        def sync() -> None:
            try:
                os.fdatasync(fd)
            except BaseException:
                with self._lock:
                    if self._fd == fd:  # what reached the disk is unknown: a new segment
                        self._close_segment()
                raise
            finally:
                if full:
                    with self._lock:
                        if self._fd == fd:
                            self._close_segment()

        return locations, sync

    def put_rows(self, conn: Connection, blobs: list[BlobItem], written: Any) -> None:
        if not blobs:
            return
        locations: dict[str, Location] = written
        rows = [
            {"id": bid, "segment": loc.segment, "start": loc.offset, "size": loc.length}
            for bid, loc in ((bid, locations[bid]) for bid in dict(blobs))
        ]
        # An id already indexed keeps its first location (the bytes are equal: same hash).
        conn.execute(_insert_ignore(conn, SEGMENT_BLOBS), rows)

    def after_commit(self) -> None:
        with self._lock:
            names, self._to_seal = self._to_seal, []
        for name in names:
            self._seal(name)

    def _seal(self, name: str) -> None:
        # After the transactions that index its blobs have ended: a sealed segment with no
        # index row can then never get one (see delete_rows).
        with contextlib.suppress(FileNotFoundError):
            os.chmod(self.segments / name, 0o400)

    def close(self) -> None:
        """Seal the active segment (the writer calls this once its last batch committed)."""
        with self._lock:
            self._close_segment()
        self.after_commit()

    # -- reading ---------------------------------------------------------------------------

    async def _locate(self, session: AsyncSession, blob_id: str) -> Location | None:
        row = (
            await session.execute(
                select(SEGMENT_BLOBS.c.segment, SEGMENT_BLOBS.c.start, SEGMENT_BLOBS.c.size).where(
                    SEGMENT_BLOBS.c.id == _valid_id(blob_id)
                )
            )
        ).first()
        return None if row is None else Location(str(row[0]), int(row[1]), int(row[2]))

    def _segment_path(self, name: str) -> Path:
        if not SEGMENT_NAME.match(name):
            raise ValueError("malformed segment name")
        return self.segments / name

    def _read(self, loc: Location) -> bytes:
        with _Slice(self._segment_path(loc.segment), loc) as f:
            data = f.read()
        if len(data) != loc.length:
            raise BlobNotFound(f"segment {loc.segment} is shorter than its index says")
        return data

    async def get(self, session: AsyncSession, blob_id: str) -> bytes:
        loc = await self._locate(session, blob_id)
        if loc is None:
            return await super().get(session, blob_id)  # a blob of the per-file layout
        try:
            return await asyncio.to_thread(self._read, loc)
        except FileNotFoundError:
            raise BlobNotFound(blob_id) from None

    async def get_by_lookup(self, lookup: Lookup, blob_id: str) -> bytes | None:
        """Like :meth:`get`, the index row read with ``lookup`` (``Database.lookup``: one
        query, no pool hops) instead of a session; ``None`` for a blob of the per-file layout
        (the caller then uses :meth:`get`)."""
        rows = await lookup(
            "SELECT segment, start, size FROM segment_blobs WHERE id = ?", _valid_id(blob_id)
        )
        if not rows:
            return None
        loc = Location(str(rows[0][0]), int(rows[0][1]), int(rows[0][2]))
        try:
            return await asyncio.to_thread(self._read, loc)
        except FileNotFoundError:
            raise BlobNotFound(blob_id) from None

    async def reader(self, session: AsyncSession, blob_id: str) -> BinaryIO:
        loc = await self._locate(session, blob_id)
        if loc is None:
            return await super().reader(session, blob_id)
        try:
            path = self._segment_path(loc.segment)
            return io.BufferedReader(await asyncio.to_thread(_Slice, path, loc))
        except FileNotFoundError:
            raise BlobNotFound(blob_id) from None

    # -- deleting --------------------------------------------------------------------------

    def delete_rows(self, conn: Connection, blob_ids: list[str]) -> None:
        if not blob_ids:
            return
        gone = conn.execute(_DROP_SEGMENT_ROWS, {"ids": blob_ids}).all()
        touched = {str(r[1]) for r in gone}
        # A segment is dead once sealed with no blob left; the seal is checked before the
        # query, and sealing happens only after the writer's transactions ended, so a
        # sealed segment's rows are all visible here.
        sealed = {name for name in touched if self._is_sealed(name)}
        live = set(conn.scalars(_LIVE_SEGMENTS, {"names": list(sealed)}) if sealed else [])
        with self._lock:
            for bid, seg, off, length in gone:
                self._freed[str(bid)] = Location(str(seg), int(off), int(length))
            self._dead |= sealed - live

    def _is_sealed(self, name: str) -> bool:
        try:
            mode = os.stat(self._segment_path(name)).st_mode
        except FileNotFoundError:
            return False
        return not mode & stat.S_IWUSR

    def _scrub(self, blob_ids: list[str]) -> None:
        with self._lock:
            found = {b: self._freed.pop(b) for b in blob_ids if b in self._freed}
            dead, self._dead = self._dead, set()
        freed = list(found.values())
        legacy = [b for b in blob_ids if b not in found]
        by_segment: dict[str, list[Location]] = {}
        for loc in freed:
            by_segment.setdefault(loc.segment, []).append(loc)
        for name, locs in by_segment.items():
            if name in dead:
                continue
            # Expunged ciphertext is overwritten, not left readable until compaction.
            fd = self._open_for_scrub(name)
            if fd is None:
                continue
            try:
                for loc in locs:
                    os.pwrite(fd, bytes(loc.length), loc.offset)
                os.fdatasync(fd)
            finally:
                os.close(fd)
        for name in dead:
            with contextlib.suppress(FileNotFoundError):
                (self._segment_path(name)).unlink()
        if dead:
            _fsync_dir(self.segments)
        self._unlink(legacy)

    def _open_for_scrub(self, name: str) -> int | None:
        path = self._segment_path(name)
        try:
            if not self._is_sealed(name):
                return os.open(path, os.O_WRONLY)
            # Sealed (0400): writable again only for this overwrite.
            os.chmod(path, 0o600)
            try:
                return os.open(path, os.O_WRONLY)
            finally:
                os.chmod(path, 0o400)
        except FileNotFoundError:
            return None

    async def delete_files(self, blob_ids: list[str]) -> None:
        if blob_ids:
            await asyncio.to_thread(self._scrub, blob_ids)


def _insert_ignore(conn: Connection, table: Table) -> Any:
    return _insert_ignore_for(conn.dialect.name, table)


@functools.cache
def _insert_ignore_for(dialect: str, table: Table) -> Any:
    # Built once: SQLAlchemy then reuses the statement's cache key and compiled form.
    ins = pg_insert(table) if dialect == "postgresql" else sqlite_insert(table)
    return ins.on_conflict_do_nothing(index_elements=["id"])


class DatabaseBlobStore(BlobStore):
    def put_rows(self, conn: Connection, blobs: list[BlobItem], written: Any) -> None:
        if not blobs:
            return
        rows = [{"id": bid, "data": data} for bid, data in dict(blobs).items()]
        conn.execute(_insert_ignore(conn, BLOBS), rows)

    async def get(self, session: AsyncSession, blob_id: str) -> bytes:
        data = await session.scalar(select(Blob.data).where(Blob.id == blob_id))
        if data is None:
            raise BlobNotFound(blob_id)
        return data

    def delete_rows(self, conn: Connection, blob_ids: list[str]) -> None:
        if blob_ids:
            conn.execute(delete(BLOBS).where(BLOBS.c.id.in_(blob_ids)))


def open_blob_store(kind: str, root: Path) -> BlobStore:
    if kind == "file":
        return SegmentBlobStore(root)
    if kind == "database":
        return DatabaseBlobStore()
    raise ValueError(f'[storage] blob_store must be "file" or "database", not {kind!r}')
