"""A small PNG reader for screenshot checks (8-bit greyscale, RGB or RGBA, not interlaced: what
Chromium writes), so the tests need no imaging library."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}


@dataclass(frozen=True)
class Image:
    width: int
    height: int
    channels: int
    pixels: bytes  # rows of width * channels bytes, filters removed

    def rgb(self, x: int, y: int) -> tuple[int, int, int]:
        i = (y * self.width + x) * self.channels
        if self.channels < 3:
            v = self.pixels[i]
            return v, v, v
        return self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]

    def share_not(self, colour: tuple[int, int, int], step: int = 3) -> float:
        """The share of (sampled) pixels that are not ``colour``."""
        total = other = 0
        for y in range(0, self.height, step):
            for x in range(0, self.width, step):
                total += 1
                other += self.rgb(x, y) != colour
        return other / total

    def difference(self, other: Image, step: int = 3) -> float:
        """The share of (sampled) pixels that differ by more than a little."""
        assert (self.width, self.height) == (other.width, other.height)
        total = changed = 0
        for y in range(0, self.height, step):
            for x in range(0, self.width, step):
                total += 1
                a, b = self.rgb(x, y), other.rgb(x, y)
                changed += max(abs(p - q) for p, q in zip(a, b, strict=True)) > 48
        return changed / total


def read_png(data: bytes) -> Image:
    if not data.startswith(_SIGNATURE):
        raise ValueError("not a PNG")
    pos, idat = len(_SIGNATURE), bytearray()
    width = height = channels = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or colour not in _CHANNELS or interlace:
                raise ValueError("only 8-bit, non-interlaced PNGs")
            channels = _CHANNELS[colour]
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    raw = zlib.decompress(bytes(idat))
    stride = width * channels
    out = bytearray(height * stride)
    prev = bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if f == 1:
                line[i] = (line[i] + a) & 0xFF
            elif f == 2:
                line[i] = (line[i] + b) & 0xFF
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        out[y * stride : (y + 1) * stride] = line
        prev = line
    return Image(width, height, channels, bytes(out))
