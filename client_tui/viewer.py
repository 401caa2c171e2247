"""Attachments opened in the system viewer (``o`` in the reader) from short-lived private copies.

A decrypted attachment (a patient's report) must not stay readable on disk once it has been
looked at (issue 17 finding 6). Each copy is written, mode 0600, into a folder of this
process, mode 0700, under ``$XDG_RUNTIME_DIR`` when it is set (a per-user tmpfs that the
system empties at logout), else under the system's temporary directory. A copy is removed:

- when the viewer process exits, but not before :data:`MIN_SECONDS` after it started: a
  launcher such as ``xdg-open`` may hand the file to a program that is already running and
  return at once, and that program needs a moment to open the file (once open, removing the
  name does not take it from the viewer);
- when the client quits (``App.on_unmount``), and at interpreter exit (``atexit``), also
  after an unhandled exception;
- on SIGTERM and SIGHUP (the terminal closed): the copies go, then the signal's default
  action runs;
- after a crash that left no chance (SIGKILL, a power cut), by the next client that opens an
  attachment: folders of processes that no longer run are swept.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import signal
import stat
import tempfile
import threading
import weakref
from pathlib import Path
from types import FrameType

from client_tui.compose import Attachment, safe_filename

#: The least time a copy is kept after the viewer started (see the module docstring).
MIN_SECONDS = 60.0
PREFIX = "hygie-client-"
_LIVE: weakref.WeakSet[ViewerCopies] = weakref.WeakSet()
_HOOKED = False


def _remove_live() -> None:
    for copies in list(_LIVE):
        copies.remove_all()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    _remove_live()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _hook_exit() -> None:
    """Once per process: atexit, and SIGTERM/SIGHUP where nobody else handles them."""
    global _HOOKED
    if _HOOKED:
        return
    _HOOKED = True
    atexit.register(_remove_live)
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) is signal.SIG_DFL:
            signal.signal(signum, _on_signal)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owned_private_dir(path: Path) -> bool:
    """A real directory (not a symbolic link) of this user that nobody else may enter."""
    info = path.lstat()
    return (stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()
            and info.st_mode & 0o077 == 0)  # fmt: skip


def private_root() -> Path:
    """Where the copies' folders go: ``$XDG_RUNTIME_DIR/hygie-client`` (0700), or the
    system's temporary directory (each folder there has a random name, 0700)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if runtime and Path(runtime).is_absolute() and Path(runtime).is_dir():
        root = Path(runtime) / "hygie-client"
        with contextlib.suppress(FileExistsError):
            root.mkdir(mode=0o700)
        if not _owned_private_dir(root):
            raise PermissionError(f"{root} is not a private directory of this user")
        return root
    return Path(tempfile.gettempdir())


def sweep_stale(root: Path) -> int:
    """Remove the copies' folders of clients that no longer run (killed, crashed)."""
    removed = 0
    for entry in root.glob(f"{PREFIX}*-*"):
        pid = entry.name[len(PREFIX):].split("-", 1)[0]
        try:
            if not pid.isdigit() or not _owned_private_dir(entry) or _alive(int(pid)):
                continue
        except OSError:
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed += 1
    return removed


class ViewerCopies:
    """The private copies of one client process."""

    def __init__(self, min_seconds: float | None = None) -> None:
        self._min_seconds = min_seconds
        self._folder: Path | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def folder(self) -> Path | None:
        return self._folder

    def _make_folder(self) -> Path:
        if self._folder is None or not self._folder.is_dir():
            root = private_root()
            sweep_stale(root)
            self._folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=root))
            _LIVE.add(self)
            _hook_exit()
        return self._folder

    def write(self, attachment: Attachment) -> Path:
        """A private copy (0600, created here: never an existing file or link followed)."""
        folder = self._make_folder()
        target = folder / safe_filename(attachment.filename)
        stem, suffix, n = target.stem, target.suffix, 2
        while True:
            try:
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            except FileExistsError:
                target = folder / f"{stem} ({n}){suffix}"
                n += 1
                continue
            break
        with os.fdopen(fd, "wb") as out:
            out.write(attachment.data)
        return target

    async def open(self, attachment: Attachment, viewer: str) -> Path:
        """Write a copy, start ``viewer`` on it, and remove it when the viewer is done."""
        path = self.write(attachment)
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            process = await asyncio.create_subprocess_exec(
                viewer, str(path), stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        except OSError:
            self.remove(path)
            raise
        task = loop.create_task(self._remove_after(process, path, started))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return path

    async def _remove_after(
        self, process: asyncio.subprocess.Process, path: Path, started: float
    ) -> None:
        try:
            await process.wait()
            least = MIN_SECONDS if self._min_seconds is None else self._min_seconds
            left = started + least - asyncio.get_running_loop().time()
            if left > 0:
                await asyncio.sleep(left)
        finally:
            self.remove(path)

    def remove(self, path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    def remove_all(self) -> None:
        """Every copy and the folder (quitting, atexit, a signal); safe to call again."""
        folder, self._folder = self._folder, None
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        _LIVE.discard(self)
