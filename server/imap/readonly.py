"""Folders Hygie writes and the user only reads: the patient's ``Dossier`` (issue 7 item 4),
filed by the dossier workflow. Selected read-only; no APPEND, COPY or MOVE into them, no
CREATE, DELETE or RENAME."""

from __future__ import annotations

from server.imap.proto import response as r
from server.imap.session import Session

READ_ONLY_FOLDERS = frozenset({"Dossier"})


def is_read_only_folder(name: str) -> bool:
    return name in READ_ONLY_FOLDERS


async def refuse_read_only(s: Session, tag: str, *names: str) -> bool:
    """NO [CANNOT] if any of ``names`` is a read-only folder; True when refused."""
    if any(is_read_only_folder(n) for n in names):
        await s.no(tag, "This folder is read-only: Hygie files it", r.Code.CANNOT)
        return True
    return False
