"""Hard limits that bound the parser's memory and work for any input."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """Limits enforced by :class:`~server.imap.proto.parser.CommandParser`.

    The parser never holds more than ``max_line`` bytes of an unfinished line plus
    ``max_command`` bytes of the command being assembled (lines and literals).
    """

    #: Longest line of command text, outside literals, CRLF excluded.
    max_line: int = 64 * 1024
    #: Largest literal (APPEND message, LOGIN password …).
    max_literal: int = 64 * 1024 * 1024
    #: Largest non-synchronizing literal ``{n+}``; 4096 when advertising LITERAL- (RFC 7888 §5).
    max_nonsync_literal: int = 64 * 1024 * 1024
    #: Largest whole command: every line plus every literal (MULTIAPPEND sends several).
    max_command: int = 96 * 1024 * 1024
    #: Deepest nesting of parenthesised lists.
    max_depth: int = 16
    #: Deepest nesting of search keys (``NOT``/``OR``/parentheses); clients chain ``OR`` a lot.
    max_search_depth: int = 64
    #: Most items in one command, summed over its lists, sequence-set ranges and search keys.
    max_items: int = 10_000

    def __post_init__(self) -> None:
        for name in ("max_line", "max_literal", "max_command", "max_depth", "max_items"):
            if getattr(self, name) < 1:
                raise ValueError(f"Limits.{name} must be positive")
