"""Helpers for the IMAP protocol-core tests: feed a dialogue, collect the events."""

from __future__ import annotations

import pytest

from server.imap.proto import CommandParser, Limits, NeedData
from server.imap.proto.parser import Event


def events_of(data: bytes, limits: Limits | None = None, *, utf8: bool = False) -> list[Event]:
    parser = CommandParser(limits, utf8=utf8)
    parser.receive_data(data)
    out: list[Event] = []
    while not isinstance(event := parser.next_event(), NeedData):
        out.append(event)
    return out


@pytest.fixture
def parse() -> object:
    """``parse(b"a1 NOOP\\r\\n")`` → the single command, literals sent without waiting."""

    def _parse(data: bytes, *, utf8: bool = False) -> Event:
        events = [
            e for e in events_of(data, utf8=utf8) if type(e).__name__ != "ContinuationRequest"
        ]
        assert len(events) == 1, events
        return events[0]

    return _parse
