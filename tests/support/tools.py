"""Debian tools the tests drive (``swaks``, …), installed with ``apt-get`` when missing."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
from collections.abc import Iterator

_updated = False
LOCK_FILE = "/tmp/hygie-tests-apt.lock"  # one lock shared by every test process


@contextlib.contextmanager
def install_lock() -> Iterator[None]:
    """Serialise package installs between the test processes (pytest-xdist workers): two
    ``apt-get`` runs at once would fail on dpkg's own lock instead of waiting."""
    with open(LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def apt_install(*packages: str) -> None:
    global _updated
    if os.geteuid() != 0:
        raise RuntimeError(f"cannot install {' '.join(packages)}: not root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if not _updated:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=True)
        _updated = True
    proc = subprocess.run(
        ["apt-get", "install", "-y", "--no-install-recommends", *packages],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"apt-get install {' '.join(packages)} failed:\n{proc.stderr}")


def _dpkg_installed(package: str) -> bool:
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Status}", package],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.returncode == 0 and "ok installed" in proc.stdout


def ensure_debian_tool(
    binary: str, package: str | None = None, extra_packages: list[str] | None = None
) -> str:
    """The path of ``binary``, installing ``package`` (default: same name) and extras if needed."""
    path = shutil.which(binary)
    if path is None or any(not _dpkg_installed(p) for p in extra_packages or []):
        with install_lock():  # another worker may be installing it right now: look again inside
            missing = [p for p in (extra_packages or []) if not _dpkg_installed(p)]
            path = shutil.which(binary)
            if path is None:
                missing.insert(0, package or binary)
            if missing:
                apt_install(*missing)
                path = shutil.which(binary)
    if path is None:
        raise RuntimeError(f"{binary} still not found after installing {package or binary}")
    return path
