"""Change notifications for open folders (what IMAP IDLE and NOOP report).

In-process publish/subscribe keyed by folder id. A notification only says "folder N changed";
subscribers re-read what changed from the database, so a lost or merged notification never
loses data. Across nodes, PostgreSQL LISTEN/NOTIFY will feed :meth:`FolderEvents.publish`.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict


class FolderEvents:
    def __init__(self) -> None:
        self._subscribers: defaultdict[int, set[asyncio.Event]] = defaultdict(set)

    def subscribe(self, folder_id: int) -> asyncio.Event:
        ev = asyncio.Event()
        self._subscribers[folder_id].add(ev)
        return ev

    def unsubscribe(self, folder_id: int, ev: asyncio.Event) -> None:
        subs = self._subscribers.get(folder_id)
        if subs is not None:
            subs.discard(ev)
            if not subs:
                del self._subscribers[folder_id]

    def publish(self, folder_id: int) -> None:
        for ev in self._subscribers.get(folder_id, ()):
            ev.set()
