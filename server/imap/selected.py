"""The session's view of its selected folder: sequence numbers, flags, and what changed.

IMAP numbers messages by position (sequence numbers) as well as by UID. A session keeps the
UIDs it has told the client about; :meth:`SelectedFolder.sync` compares them with the store and
yields the untagged ``EXPUNGE``/``EXISTS``/``FETCH (FLAGS)`` updates (RFC 9051 §7.4, §7.5).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from server.imap.proto import response as r
from server.imap.proto.sequence import SequenceSet
from storage.mailstore import FolderInfo, MessageRef

SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")


@dataclass
class SelectedFolder:
    info: FolderInfo
    readonly: bool
    uids: list[int] = field(default_factory=list)
    flags: dict[int, frozenset[str]] = field(default_factory=dict)
    modseq: dict[int, int] = field(default_factory=dict)

    def load(self, refs: list[MessageRef]) -> None:
        self.uids = [m.uid for m in refs]
        self.flags = {m.uid: m.flags for m in refs}
        self.modseq = {m.uid: m.modseq for m in refs}

    @property
    def exists(self) -> int:
        return len(self.uids)

    def seq_of(self, uid: int) -> int | None:
        i = bisect.bisect_left(self.uids, uid)
        return i + 1 if i < len(self.uids) and self.uids[i] == uid else None

    def resolve(self, sequence_set: SequenceSet, *, uid: bool) -> list[tuple[int, int]]:
        """(seq, uid) pairs that ``sequence_set`` names, ascending; unknown UIDs are skipped."""
        if not self.uids:
            return []
        if uid:
            out: list[tuple[int, int]] = []
            largest = self.uids[-1]
            for lo, hi in sequence_set.resolve(largest):
                start = bisect.bisect_left(self.uids, lo)
                end = bisect.bisect_right(self.uids, hi)
                out.extend((i + 1, self.uids[i]) for i in range(start, end))
            return out
        return [(n, self.uids[n - 1]) for n in sequence_set.iter(len(self.uids))]

    def keywords(self) -> list[str]:
        seen: set[str] = set()
        for fl in self.flags.values():
            seen |= fl
        return sorted(f for f in seen if not f.startswith("\\"))

    def sync(
        self, refs: list[MessageRef], *, allow_expunge: bool, with_uid: bool
    ) -> list[r.Response]:
        """Update the view to ``refs``; the responses that tell the client."""
        out: list[r.Response] = []
        current = {m.uid: m for m in refs}
        if allow_expunge:
            # Highest first, so the sequence numbers of the ones still to report do not shift.
            for i in range(len(self.uids) - 1, -1, -1):
                uid = self.uids[i]
                if uid not in current:
                    out.append(r.expunge(i + 1))
                    del self.uids[i]
                    self.flags.pop(uid, None)
                    self.modseq.pop(uid, None)
        for uid in list(self.uids):
            m = current.get(uid)
            if m is not None and m.flags != self.flags.get(uid):
                self.flags[uid] = m.flags
                self.modseq[uid] = m.modseq
                seq = self.seq_of(uid)
                assert seq is not None
                items: list[tuple[str, r.Value]] = [("FLAGS", [r.Atom(f) for f in sorted(m.flags)])]
                if with_uid:
                    items.append(("UID", uid))
                out.append(r.FetchResponse(seq, items))
        last = self.uids[-1] if self.uids else 0
        new = [m for m in refs if m.uid > last]
        if new:
            for m in new:
                self.uids.append(m.uid)
                self.flags[m.uid] = m.flags
                self.modseq[m.uid] = m.modseq
            out.append(r.exists(len(self.uids)))
        return out
