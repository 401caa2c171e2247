"""``bench/results/summary.md`` holds one section per benchmark between ``<!-- name -->`` and
``<!-- /name -->`` markers; each benchmark rewrites its own and leaves the others alone."""

from __future__ import annotations

from pathlib import Path


def replace_section(out: Path, name: str, section: str) -> Path:
    """Put ``section`` (markers included) in place of ``name``'s, or append it."""
    begin_mark, end_mark = f"<!-- {name} -->", f"<!-- /{name} -->"
    path = out / "summary.md"
    text = path.read_text() if path.exists() else ""
    begin, end = text.find(begin_mark), text.find(end_mark)
    if begin >= 0 and end > begin:
        text = text[:begin] + section + text[end + len(end_mark) :]
    else:
        text = (text.rstrip("\n") + "\n\n" if text else "") + section
    path.write_text(text.rstrip("\n") + "\n")
    return path
