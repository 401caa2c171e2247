"""Opened messages kept in memory, shared by every session of this process (design.md §2 item 8).

An entry is what reading a message's metadata costs to obtain: its content key (HPKE-sealed to
the account, or owner-sealed, see :class:`storage.crypto.OwnerSeal`) and the compact summary
the IMAP layer answers FETCH and SEARCH from. Entries are keyed by (owner, blob), the owner
being the account of the message row and the public key of the key pair that opened it: a hit
proves that this key pair opened this account's copy before (a recipient of the same message
does not read another's copy through the cache), and a blob id is the SHA-256 of a
ciphertext made under a fresh content key, so an entry can never go stale;
what changes (flags, MODSEQ, UIDs) is never cached here and is read from the database by every
command.

The cache is bounded by an estimate of the bytes it holds (least recently used entries go
first). Entries are dropped explicitly when their message is expunged or its folder deleted
(:meth:`MessageCache.forget`): plaintext metadata of a deleted message does not linger. Those
calls are the invalidation points; another process's expunge reaches this one through the
cluster's notices (:mod:`storage.notices`, kind ``messages``, handled by
:class:`storage.mailstore.MailStore`), and a notice that some were lost clears the cache.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any

from storage.crypto import ContentKey

#: Bytes an entry costs beyond its summary's own estimate: the key and its two AES-GCM
#: objects, the blob id, the (owner, blob) key, the ordered dict's links. Measured with
#: tracemalloc over 2,000 messages of the benchmark corpus: ~2.9 KiB an entry in all.
ENTRY_OVERHEAD = 1450
#: Blobs remembered as forgotten, so that a read that started before their expunge does not
#: put them back once it ends.
RECENTLY_FORGOTTEN = 4096


@dataclass(frozen=True, slots=True)
class OpenedMessage:
    key: ContentKey
    summary: Any  # the IMAP layer's summary object, or None where none was asked for
    cost: int


class MessageCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple[Hashable, str], OpenedMessage] = OrderedDict()
        self._owners_of: dict[str, set[Hashable]] = {}
        #: Bumped by every :meth:`forget`; a reader notes it before its database read.
        self.generation = 0
        self._forgotten: OrderedDict[str, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, owner: Hashable, blob: str) -> OpenedMessage | None:
        found = self._entries.get((owner, blob))
        if found is None:
            self.misses += 1
            return None
        self._entries.move_to_end((owner, blob))
        self.hits += 1
        return found

    def put(
        self, owner: Hashable, blob: str, key: ContentKey, summary: Any, size: int, generation: int
    ) -> None:
        """Keep an opened message; ``generation`` is :attr:`generation` as it was before the
        database read that found the message (a blob forgotten since is not put back)."""
        if generation != self.generation and blob in self._forgotten:
            return
        entry = (owner, blob)
        old = self._entries.pop(entry, None)
        if old is not None:
            self.bytes -= old.cost
        opened = OpenedMessage(key, summary, size + ENTRY_OVERHEAD)
        if opened.cost > self.max_bytes:
            return
        self._entries[entry] = opened
        self._owners_of.setdefault(blob, set()).add(owner)
        self.bytes += opened.cost
        while self.bytes > self.max_bytes:
            (acc, b), gone = self._entries.popitem(last=False)
            self.bytes -= gone.cost
            self._unindex(acc, b)

    def _unindex(self, owner: Hashable, blob: str) -> None:
        accounts = self._owners_of.get(blob)
        if accounts is not None:
            accounts.discard(owner)
            if not accounts:
                del self._owners_of[blob]

    def clear(self) -> None:
        """Drop every entry (notices may have been lost: nothing is known to be current)."""
        self.generation += 1
        self._entries.clear()
        self._owners_of.clear()
        self.bytes = 0

    def forget(self, blobs: Iterable[str]) -> None:
        """Drop every account's entry for these blobs (their message rows were deleted)."""
        self.generation += 1
        for blob in blobs:
            self._forgotten[blob] = None
            if len(self._forgotten) > RECENTLY_FORGOTTEN:
                self._forgotten.popitem(last=False)
            for owner in self._owners_of.pop(blob, ()):
                gone = self._entries.pop((owner, blob), None)
                if gone is not None:
                    self.bytes -= gone.cost
