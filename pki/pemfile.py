"""PEM files on disk, written so that a private key is never readable by anyone else.

Private files are created with mode 0600 in the ``open(2)`` call itself, not ``chmod``-ed
afterwards, so there is no moment when they are world-readable. Every write is flushed to disk
(file and directory) before returning: a CA whose key was lost in a crash after its certificate
was published cannot be recovered.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Final

from pki.errors import PkiError

PRIVATE_MODE: Final = 0o600
PUBLIC_MODE: Final = 0o644


def write_new(path: Path, data: bytes, *, private: bool) -> None:
    """Create ``path`` holding ``data``; fails with `FileExistsError` if it already exists."""
    mode = PRIVATE_MODE if private else PUBLIC_MODE
    # O_EXCL also refuses to follow a symlink planted at ``path``.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)  # exactly this mode whatever the umask
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    _fsync_directory(path.parent)


def replace(path: Path, data: bytes, *, private: bool) -> None:
    """Atomically put ``data`` at ``path``, replacing any file there (a renewed certificate)."""
    # mkstemp creates the file 0600: the key is never exposed, even before fchmod.
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        try:
            os.fchmod(fd, PRIVATE_MODE if private else PUBLIC_MODE)
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def read(path: Path, *, what: str) -> bytes:
    """The bytes of ``path``, or a `PkiError` naming ``what`` is missing or unreadable."""
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise PkiError(f"{what} not found: {path}") from exc
    except OSError as exc:
        raise PkiError(f"cannot read {what} {path}: {exc.strerror}") from exc


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
