"""Search every byte of directory trees for secrets (the at-rest tests)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


def find_in_tree(roots: Iterable[Path], needles: Iterable[bytes]) -> list[str]:
    """``path @ offset: needle`` for every occurrence of any needle in any regular file."""
    roots = list(roots)
    needles = [n for n in set(needles) if n]
    hits: list[str] = []
    files = 0
    for root in roots:
        for dirpath, _dirs, names in os.walk(root):
            for name in names:
                path = Path(dirpath, name)
                if path.is_symlink() or not path.is_file():
                    continue
                try:
                    data = path.read_bytes()
                except (FileNotFoundError, PermissionError):
                    continue  # a temporary file that came and went (SQLite -journal, pg_stat_tmp)
                files += 1
                for needle in needles:
                    at = data.find(needle)
                    while at >= 0:
                        hits.append(f"{path} @ {at}: {needle!r}")
                        at = data.find(needle, at + 1)
    assert files > 0, f"nothing to search under {list(roots)}"
    return hits
