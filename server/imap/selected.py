"""The session's view of its selected folder: sequence numbers and what the client was told.

IMAP numbers messages by position (sequence numbers) as well as by UID. A session keeps the
UIDs it has announced and the highest MODSEQ it has reported; :meth:`SelectedFolder.apply`
turns the store's :class:`~storage.mailstore.Changes` into the untagged ``EXPUNGE`` (or
``VANISHED``), ``EXISTS`` and ``FETCH (FLAGS)`` updates (RFC 9051 §7.4–7.5, RFC 7162 §3.2.10).
Expunges are held back while the client may not see sequence numbers shift (during FETCH,
STORE and SEARCH by sequence number, RFC 9051 §7.5.1) and reported at the next allowed point.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from server.imap.proto import response as r
from server.imap.proto.sequence import SequenceSet
from storage.mailstore import Changes, FolderInfo

SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")


def flag_list(flags: frozenset[str] | set[str], *, recent: bool = False) -> list[r.Value]:
    out: list[r.Value] = [r.Atom(f) for f in sorted(flags)]
    if recent:
        out.append(r.Atom("\\Recent"))
    return out


def flag_announcement(keywords: list[str], readonly: bool) -> list[r.Response]:
    """``* FLAGS`` and ``* OK [PERMANENTFLAGS]`` for the folder's flags (RFC 9051 §7.3.5,
    §7.1 PERMANENTFLAGS; RFC 3501 §7.2.6)."""
    names = [*SYSTEM_FLAGS, *keywords]
    return [
        r.flags(names),
        r.UntaggedStatus(
            "OK",
            "Read-only mailbox" if readonly else "Flags permitted",
            r.Code.permanentflags([] if readonly else [*names, "\\*"]),
        ),
    ]


@dataclass
class SelectedFolder:
    info: FolderInfo
    readonly: bool
    uids: list[int] = field(default_factory=list)
    #: Highest MODSEQ whose changes this session has reported (or chosen to ignore).
    modseq: int = 0
    #: Expunged UIDs not yet reported (held back at points where expunges are not allowed).
    pending_expunge: set[int] = field(default_factory=set)
    #: UID → MODSEQ of flags this session reported itself (STORE, FETCH setting \Seen), so a
    #: later sync does not report them twice.
    reported: dict[int, int] = field(default_factory=dict)
    #: Keywords the client was told of in FLAGS (case-folded → as spelled).
    keywords: dict[str, str] = field(default_factory=dict)
    #: RFC 3501 §2.3.2: UIDs recent in this session (IMAP4rev1 sessions only).
    recent: set[int] = field(default_factory=set)
    #: UIDs the last :meth:`apply` announced with EXISTS.
    arrived: list[int] = field(default_factory=list)

    def know_keywords(self, names: list[str]) -> None:
        for name in names:
            self.keywords.setdefault(name.casefold(), name)

    def announce(self, *flag_sets: frozenset[str]) -> list[r.Response]:
        """RFC 9051 §7.3.5: a keyword the client was not told of in FLAGS is announced (FLAGS
        and PERMANENTFLAGS) before any FETCH shows it; nothing when all are known."""
        new = False
        for flags in flag_sets:
            for flag in flags:
                if not flag.startswith("\\") and flag.casefold() not in self.keywords:
                    self.keywords[flag.casefold()] = flag
                    new = True
        if not new:
            return []
        return flag_announcement(sorted(self.keywords.values()), self.readonly)

    def flags_of(self, uid: int, flags: frozenset[str]) -> list[r.Value]:
        """The FLAGS value of a message for this session (with \\Recent where it is)."""
        return flag_list(flags, recent=uid in self.recent)

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

    def note_reported(self, uid: int, modseq: int) -> None:
        self.reported[uid] = max(modseq, self.reported.get(uid, 0))

    def apply(
        self,
        changes: Changes,
        *,
        allow_expunge: bool,
        with_uid: bool,
        condstore: bool,
        qresync: bool,
    ) -> list[r.Response]:
        """Bring the view up to ``changes``; the responses that tell the client."""
        out: list[r.Response] = []
        self.pending_expunge.update(changes.expunged)
        if allow_expunge and self.pending_expunge:
            gone = sorted(u for u in self.pending_expunge if self.seq_of(u) is not None)
            if qresync and gone:
                out.append(r.vanished(SequenceSet.of(*gone)))
            # Highest first, so the numbers still to report do not shift (RFC 9051 §7.5.1).
            for uid in reversed(gone):
                seq = self.seq_of(uid)
                assert seq is not None
                if not qresync:
                    out.append(r.expunge(seq))
                del self.uids[seq - 1]
                self.reported.pop(uid, None)
                self.recent.discard(uid)
            self.pending_expunge.clear()
        last = self.uids[-1] if self.uids else 0
        new = []
        for m in changes.changed:
            if m.uid > last:
                new.append(m.uid)
                continue
            seq = self.seq_of(m.uid)
            if seq is None or m.modseq <= self.reported.get(m.uid, 0):
                continue
            items: list[tuple[str, r.Value]] = []
            if with_uid or qresync:
                items.append(("UID", m.uid))
            items.append(("FLAGS", self.flags_of(m.uid, m.flags)))
            if condstore:
                items.append(("MODSEQ", [m.modseq]))
            out.append(r.FetchResponse(seq, items))
        # Keywords brought by a STORE, APPEND, COPY or MOVE of another session: told first.
        out[:0] = self.announce(*(m.flags for m in changes.changed))
        self.arrived = sorted(new)
        if new:
            self.uids.extend(self.arrived)
            out.append(r.exists(len(self.uids)))
        self.modseq = max(self.modseq, changes.highestmodseq)
        if len(self.reported) > 10_000:
            self.reported.clear()  # bounded memory; at worst a flag update is sent twice
        return out
