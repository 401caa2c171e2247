"""Events returned by :meth:`CommandParser.next_event` other than commands."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .errors import RemoteProtocolError


@dataclass(frozen=True, slots=True)
class NeedData:
    """No complete event yet: feed more bytes with ``receive_data``."""


#: The one instance of :class:`NeedData`.
NEED_DATA = NeedData()


@dataclass(frozen=True, slots=True)
class ContinuationRequest:
    """The client announced a synchronizing literal ``{size}``: send ``+ text`` now.

    The parser then waits for ``size`` bytes; the command event follows once it is complete.
    """

    tag: str
    size: int
    text: str = "Ready for literal data"


@dataclass(frozen=True, slots=True)
class ContinuationLine:
    """One raw line (CRLF removed), returned after :meth:`CommandParser.expect_line`.

    Used for the client's AUTHENTICATE responses (base64 or ``*``) and for IDLE's ``DONE``.
    """

    data: bytes


@dataclass(frozen=True, slots=True)
class ProtocolErrorEvent:
    """The client sent something invalid; reply and, if ``close_connection``, hang up.

    Reply ``tag status [code] text`` when ``tag`` is set, else ``* BAD text``. After an event
    with ``close_connection`` the parser discards all further input.
    """

    text: str
    tag: str | None = None
    code: str | None = None
    status: Literal["BAD", "NO"] = "BAD"
    close_connection: bool = False

    @classmethod
    def from_error(
        cls, error: RemoteProtocolError, *, close_connection: bool = False
    ) -> ProtocolErrorEvent:
        return cls(error.text, error.tag, error.code, error.status, close_connection)
