"""The encrypted blob store: immutable message bodies, content-addressed by ciphertext hash.

Two backends behind one interface: files under the data directory (the default) or rows in
the database (``blobs`` table, for PostgreSQL clusters where nodes share no disk). Only
ciphertext ever reaches a blob.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import os
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import Table, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Blob

BLOBS: Table = Blob.__table__  # type: ignore[assignment]


class BlobNotFound(Exception):
    pass


class BlobStore(abc.ABC):
    """Interface. Writes: ``put_files`` runs before the transaction, ``put_row`` inside it.
    Deletes: ``delete_rows`` inside the transaction, ``delete_files`` after it committed."""

    #: Blobs live outside the database (their writes are not part of a transaction).
    external = False

    async def put_files(self, blobs: list[tuple[str, bytes]]) -> None:  # noqa: B027
        """Make ``blobs`` durable outside the database (no-op for the database backend)."""

    def put_row(self, conn: Connection, blob_id: str, data: bytes) -> None:  # noqa: B027
        """Store a blob inside the current transaction (no-op for the file backend)."""

    def delete_rows(self, conn: Connection, blob_ids: list[str]) -> None:  # noqa: B027
        """Delete blobs inside the current transaction (no-op for the file backend)."""

    async def delete_files(self, blob_ids: list[str]) -> None:  # noqa: B027
        """Delete blobs after the transaction that dropped their last reference committed."""

    @abc.abstractmethod
    async def get(self, session: AsyncSession, blob_id: str) -> bytes:
        """The ciphertext of ``blob_id``; :class:`BlobNotFound` if there is none."""


class FileBlobStore(BlobStore):
    """``<root>/ab/<sha256>``: written to a temporary name, fsynced, renamed, dir fsynced.

    Each delivery writes its own blob concurrently with the others (see
    :meth:`storage.mailstore.MailStore.deliver`), so their fsyncs overlap in the file
    system's journal instead of queueing behind one another. One directory level of 256
    entries keeps directory creation (and its extra fsyncs) rare.
    """

    external = True

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, blob_id: str) -> Path:
        if len(blob_id) != 64 or not all(c in "0123456789abcdef" for c in blob_id):
            raise ValueError("malformed blob id")
        return self.root / blob_id[:2] / blob_id

    def _write_all(self, blobs: list[tuple[str, bytes]]) -> None:
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
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            dirs.add(path.parent)
        # One fsync per touched directory makes the renames (and new directories) durable.
        for d in dirs:
            fd = os.open(d, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    async def put_files(self, blobs: list[tuple[str, bytes]]) -> None:
        if blobs:
            await asyncio.to_thread(self._write_all, blobs)

    async def get(self, session: AsyncSession, blob_id: str) -> bytes:
        try:
            return await asyncio.to_thread(self._path(blob_id).read_bytes)
        except FileNotFoundError:
            raise BlobNotFound(blob_id) from None

    def open(self, blob_id: str) -> BinaryIO:
        """The blob file, for reading it block by block (large messages)."""
        try:
            return self._path(blob_id).open("rb")
        except FileNotFoundError:
            raise BlobNotFound(blob_id) from None

    async def delete_files(self, blob_ids: list[str]) -> None:
        def unlink() -> None:
            for blob_id in blob_ids:
                with contextlib.suppress(FileNotFoundError):
                    self._path(blob_id).unlink()

        if blob_ids:
            await asyncio.to_thread(unlink)


class DatabaseBlobStore(BlobStore):
    def put_row(self, conn: Connection, blob_id: str, data: bytes) -> None:
        table = BLOBS
        ins = pg_insert(table) if conn.dialect.name == "postgresql" else sqlite_insert(table)
        conn.execute(
            ins.values(id=blob_id, data=data).on_conflict_do_nothing(index_elements=["id"])
        )

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
        return FileBlobStore(root)
    if kind == "database":
        return DatabaseBlobStore()
    raise ValueError(f'[storage] blob_store must be "file" or "database", not {kind!r}')
