"""Change notifications for open folders (what IMAP IDLE and NOOP report).

Publish/subscribe keyed by folder id. A notification only says "folder N changed";
subscribers re-read what changed from the database, so a lost or merged notification never
loses data. :meth:`FolderEvents.publish` wakes this process's subscribers and hands the
notice to the cluster's channel (``relay``: :mod:`storage.notices`, kind ``folder``), whose
receivers call :meth:`FolderEvents.publish_local`; a notice that everything may have changed
(the channel lost some) wakes every subscriber (:meth:`FolderEvents.wake_all`).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable


class FolderEvents:
    def __init__(self, relay: Callable[[int], None] | None = None) -> None:
        self._subscribers: defaultdict[int, set[asyncio.Event]] = defaultdict(set)
        self.relay = relay

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
        """Folder ``folder_id`` changed here: tell this process and every other one."""
        self.publish_local(folder_id)
        if self.relay is not None:
            self.relay(folder_id)

    def publish_local(self, folder_id: int) -> None:
        for ev in self._subscribers.get(folder_id, ()):
            ev.set()

    def wake_all(self) -> None:
        for subs in self._subscribers.values():
            for ev in subs:
                ev.set()
