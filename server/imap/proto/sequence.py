"""Sequence sets (RFC 9051 §9) and their resolution against a mailbox."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

#: ``*``: the largest number in use (RFC 9051 §9 seq-number).
STAR = None


@dataclass(frozen=True, slots=True)
class SequenceSet:
    """``ranges`` as written by the client, ``None`` standing for ``*``; or ``$`` (``saved``).

    ``SequenceSet(((1, 3), (5, None)))`` is ``1:3,5:*``; a lone number ``n`` is ``(n, n)``.
    """

    ranges: tuple[tuple[int | None, int | None], ...] = ()
    saved: bool = False

    # RFC 9051 §9: sequence-set = (seq-number / seq-range) ["," sequence-set]
    #             seq-range = seq-number ":" seq-number; seq-number = nz-number / "*"
    #             RFC 5182: "$" is the saved search result.
    def __str__(self) -> str:
        if self.saved:
            return "$"
        parts = []
        for lo, hi in self.ranges:
            a = "*" if lo is None else str(lo)
            if lo == hi:
                parts.append(a)
            else:
                parts.append(a + ":" + ("*" if hi is None else str(hi)))
        return ",".join(parts)

    @classmethod
    def of(cls, *numbers: int) -> SequenceSet:
        """A set of plain numbers, compressed into ranges: ``of(1, 2, 3, 7)`` is ``1:3,7``."""
        ranges: list[tuple[int | None, int | None]] = []
        for n in sorted(set(numbers)):
            if ranges and ranges[-1][1] == n - 1:
                ranges[-1] = (ranges[-1][0], n)
            else:
                ranges.append((n, n))
        return cls(tuple(ranges))

    def resolve(self, largest: int) -> list[tuple[int, int]]:
        """Sorted, merged inclusive ranges with ``*`` replaced by ``largest``.

        RFC 9051 §9: ``n:m`` and ``m:n`` are the same set. ``largest`` 0 (empty mailbox) keeps
        ``*`` as 0, so ``1:*`` is empty only when nothing matches.
        """
        if self.saved:
            raise ValueError("resolve the saved result ($) in the session")
        spans = []
        for lo, hi in self.ranges:
            a = largest if lo is None else lo
            b = largest if hi is None else hi
            if a > b:
                a, b = b, a
            spans.append((a, b))
        spans.sort()
        merged: list[tuple[int, int]] = []
        for a, b in spans:
            if b < 1:
                continue
            a = max(a, 1)
            if merged and a <= merged[-1][1] + 1:
                if b > merged[-1][1]:
                    merged[-1] = (merged[-1][0], b)
            else:
                merged.append((a, b))
        return merged

    def contains(self, number: int, largest: int) -> bool:
        return any(a <= number <= b for a, b in self.resolve(largest))

    def iter(self, largest: int) -> Iterator[int]:
        """Every number of the set, ascending, no more than ``largest`` (no work past it)."""
        for a, b in self.resolve(largest):
            yield from range(a, min(b, largest) + 1)
