"""Helpers for Pilot tests: wait for what a user would wait for, with generous deadlines (the
server runs on a shared 2-core machine)."""

from __future__ import annotations

import time
from collections.abc import Callable

from textual.pilot import Pilot
from textual.widgets import DataTable

WAIT_SECONDS = 60.0


async def wait_until(pilot: Pilot[None], condition: Callable[[], bool], what: str,
                     timeout: float = WAIT_SECONDS, every: float = 0.1) -> None:  # fmt: skip
    """Poll ``condition`` every ``every`` seconds (longer for a condition that asks the
    server, so the polling does not load the machine it waits on)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {timeout:.0f} s")
        await pilot.pause(every)


def table_subjects(pilot: Pilot[None]) -> list[str]:
    screen = pilot.app.screen
    tables = screen.query("#messages")
    if not tables:
        return []
    table = tables.first(DataTable)
    return [str(table.get_row_at(i)[3]) for i in range(table.row_count)]


def row_of(pilot: Pilot[None], subject: str) -> int:
    return table_subjects(pilot).index(subject)
