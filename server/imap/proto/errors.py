"""Error kinds of the IMAP protocol core, after h11: the peer's fault vs ours."""

from __future__ import annotations

from typing import Literal


class ProtocolError(Exception):
    """Base class of every error raised by :mod:`server.imap.proto`."""


class RemoteProtocolError(ProtocolError):
    """The client sent something invalid.

    The session answers ``tag BAD text`` (or ``tag NO [code] text`` when ``status`` is ``"NO"``)
    when a tag could be read, else ``* BAD text``; it never lets this become a traceback.
    ``code`` is a response code without brackets, e.g. ``"TOOBIG"`` or
    ``"BADCHARSET (UTF-8 US-ASCII)"``.
    """

    def __init__(
        self,
        text: str,
        *,
        tag: str | None = None,
        code: str | None = None,
        status: Literal["BAD", "NO"] = "BAD",
    ) -> None:
        super().__init__(text)
        self.text = text
        self.tag = tag
        self.code = code
        self.status: Literal["BAD", "NO"] = status


class LocalProtocolError(ProtocolError):
    """Our own code misused the protocol core (a bug on the server side, not the client's)."""
