"""The PROXY protocol, versions 1 and 2 (HAProxy's ``doc/proxy-protocol.txt``, 2020-03-05),
sans-I/O: :func:`parse` takes the first bytes of a connection and returns the header they
start with, ``None`` while more bytes are needed, or raises :class:`ProxyProtocolError`.

A proxy sends the header once, before any byte of the client's own protocol; it says which
address the proxy accepted the connection from. The caller decides whom to believe
(``server.net.listener``: only the configured proxies), and consumes exactly
:attr:`ProxyHeader.length` bytes, leaving what follows (a TLS ClientHello, an HTTP request) to
the listener's protocol.

What is accepted:

- v1 ``PROXY TCP4|TCP6 <src> <dst> <sport> <dport>\\r\\n`` with strict addresses (an IPv4
  dotted quad without leading zeros, an IPv6 address) and decimal ports 0-65535 without leading
  zeros; ``PROXY UNKNOWN…\\r\\n``; at most 107 bytes.
- v2 with the LOCAL command (the proxy's own connection: health checks) or PROXY over TCP/IPv4,
  TCP/IPv6, AF_UNSPEC or a Unix stream socket; its TLVs must tile the rest of the header.

LOCAL, UNKNOWN, AF_UNSPEC and Unix sources carry no client address: :attr:`ProxyHeader.source`
is then ``None`` and the connection keeps the address it has (the proxy's, §2.1 and §2.2).
"""

from __future__ import annotations

import ipaddress
import re
import struct
from dataclasses import dataclass

# §2.2: the twelve bytes every v2 header starts with (chosen to be invalid in any text protocol).
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
# §2.1: "PROXY" SP … CRLF; a v1 header is at most 107 bytes, CRLF included.
V1_PREFIX = b"PROXY "
V1_MAX_LENGTH = 107
#: The largest v2 header we read (16 fixed bytes and the addresses and TLVs after them). The
#: field allows 65535 bytes; what HAProxy sends (addresses, ALPN, authority, a unique id, SSL
#: facts) is a few hundred at most. A longer one is refused rather than buffered.
V2_MAX_LENGTH = 16 + 4096
V2_FIXED = 16
#: The most bytes :func:`parse` may need before it decides.
MAX_HEADER = max(V1_MAX_LENGTH, V2_MAX_LENGTH)

# §2.2, the 13th byte: version (high nibble, must be 2) and command (low nibble).
_CMD_LOCAL = 0x0
_CMD_PROXY = 0x1
# §2.2, the 14th byte: address family (high nibble), transport protocol (low nibble).
_AF_UNSPEC, _AF_INET, _AF_INET6, _AF_UNIX = 0x0, 0x1, 0x2, 0x3
_UNSPEC, _STREAM, _DGRAM = 0x0, 0x1, 0x2
# §2.2: bytes of the address block for each family (source and destination, then ports).
_ADDRESS_LENGTH = {_AF_UNSPEC: 0, _AF_INET: 12, _AF_INET6: 36, _AF_UNIX: 216}

# §2.1: ports are decimal numbers without leading zeros (0 itself allowed).
_PORT = re.compile(rb"0|[1-9][0-9]{0,4}")


class ProxyProtocolError(Exception):
    """The peer sent something that is not a valid PROXY header (the connection is closed)."""


@dataclass(frozen=True)
class ProxyHeader:
    """A parsed header. ``source``/``destination`` are ``(address, port)``, or ``None`` when
    the header carries no client address (LOCAL, UNKNOWN, AF_UNSPEC, Unix sockets)."""

    version: int
    length: int
    source: tuple[str, int] | None = None
    destination: tuple[str, int] | None = None
    #: v2 only: the LOCAL command (a connection of the proxy's own, e.g. a health check).
    local: bool = False
    #: v2 only: (type, value) of each TLV, in order (§2.2.1); none is acted upon.
    tlvs: tuple[tuple[int, bytes], ...] = ()


def could_be_header(data: bytes) -> bool:
    """Whether ``data`` (the first bytes of a connection, at least one) starts like a PROXY
    header of either version, as far as it goes: the test for a header sent by someone who may
    not send one. A TLS ClientHello (0x16), an SMTP or IMAP command, an HTTP request line do
    not."""
    for prefix in (V1_PREFIX, V2_SIGNATURE):
        n = min(len(data), len(prefix))
        if data[:n] == prefix[:n]:
            return True
    return False


def parse(data: bytes) -> ProxyHeader | None:
    """The header ``data`` starts with; ``None`` if ``data`` is a proper prefix of one (read
    more, at most :data:`MAX_HEADER` bytes); :class:`ProxyProtocolError` if it cannot be one."""
    if not data:
        return None
    if data[0:1] == V2_SIGNATURE[0:1]:
        return _parse_v2(data)
    if data[0:1] == V1_PREFIX[0:1]:
        return _parse_v1(data)
    raise ProxyProtocolError("no PROXY protocol signature")


# -- version 1 (§2.1) -----------------------------------------------------------------------------


def _parse_v1(data: bytes) -> ProxyHeader | None:
    n = min(len(data), len(V1_PREFIX))
    if data[:n] != V1_PREFIX[:n]:
        raise ProxyProtocolError("no PROXY protocol signature")
    end = data.find(b"\r\n", 0, V1_MAX_LENGTH)
    if end < 0:
        window = data[:V1_MAX_LENGTH]
        # A lone LF, or a CR followed by anything but LF, can never start a valid line end.
        lone_cr = window.find(b"\r")
        if b"\n" in window or (0 <= lone_cr < len(window) - 1):
            raise ProxyProtocolError("v1 header: a line end other than CRLF")
        if len(data) >= V1_MAX_LENGTH:
            raise ProxyProtocolError(f"v1 header longer than {V1_MAX_LENGTH} bytes")
        return None
    line = data[len(V1_PREFIX) : end]
    length = end + 2
    if b"\n" in line or b"\r" in line:
        raise ProxyProtocolError("v1 header: a line end other than CRLF")
    # §2.1: "UNKNOWN" — the proxy cannot tell; anything up to CRLF follows and is ignored.
    if line == b"UNKNOWN" or line.startswith(b"UNKNOWN "):
        return ProxyHeader(version=1, length=length)
    fields = line.split(b" ")
    if len(fields) != 5:
        raise ProxyProtocolError("v1 header: expected protocol, two addresses and two ports")
    protocol, src, dst, sport, dport = fields
    if protocol == b"TCP4":
        version: type[ipaddress.IPv4Address] | type[ipaddress.IPv6Address] = ipaddress.IPv4Address
    elif protocol == b"TCP6":
        version = ipaddress.IPv6Address
    else:
        raise ProxyProtocolError("v1 header: the protocol must be TCP4, TCP6 or UNKNOWN")
    return ProxyHeader(
        version=1,
        length=length,
        source=(_v1_address(src, version), _v1_port(sport)),
        destination=(_v1_address(dst, version), _v1_port(dport)),
    )


def _v1_address(
    raw: bytes, version: type[ipaddress.IPv4Address] | type[ipaddress.IPv6Address]
) -> str:
    try:
        text = raw.decode("ascii")
        # ipaddress accepts a zone ("fe80::1%eth0"): not an address a header may carry.
        if "%" in text:
            raise ValueError(text)
        return str(version(text))
    except (UnicodeDecodeError, ValueError):
        raise ProxyProtocolError("v1 header: a malformed address") from None


def _v1_port(raw: bytes) -> int:
    if not _PORT.fullmatch(raw) or int(raw) > 0xFFFF:
        raise ProxyProtocolError("v1 header: a malformed port")
    return int(raw)


# -- version 2 (§2.2) -----------------------------------------------------------------------------


def _parse_v2(data: bytes) -> ProxyHeader | None:
    n = min(len(data), len(V2_SIGNATURE))
    if data[:n] != V2_SIGNATURE[:n]:
        raise ProxyProtocolError("no PROXY protocol signature")
    if len(data) < V2_FIXED:
        # The version and command byte is checked as soon as it is there.
        if len(data) > 12 and data[12] >> 4 != 2:
            raise ProxyProtocolError("v2 header: version must be 2")
        return None
    ver_cmd, fam = data[12], data[13]
    (payload,) = struct.unpack_from("!H", data, 14)
    if ver_cmd >> 4 != 2:
        raise ProxyProtocolError("v2 header: version must be 2")
    command = ver_cmd & 0x0F
    if command not in (_CMD_LOCAL, _CMD_PROXY):
        raise ProxyProtocolError("v2 header: unknown command")
    length = V2_FIXED + payload
    if length > V2_MAX_LENGTH:
        raise ProxyProtocolError(f"v2 header longer than {V2_MAX_LENGTH} bytes")
    family, transport = fam >> 4, fam & 0x0F
    if family not in _ADDRESS_LENGTH or transport not in (_UNSPEC, _STREAM, _DGRAM):
        raise ProxyProtocolError("v2 header: unknown address family or protocol")
    if command == _CMD_PROXY and transport == _DGRAM:
        raise ProxyProtocolError("v2 header: a datagram source on a stream connection")
    if command == _CMD_PROXY and (family == _AF_UNSPEC) != (transport == _UNSPEC):
        raise ProxyProtocolError("v2 header: AF_UNSPEC goes with an unspecified protocol")
    addresses = _ADDRESS_LENGTH[family]
    if payload < addresses:
        raise ProxyProtocolError("v2 header: shorter than its addresses")
    if len(data) < length:
        return None
    block = data[V2_FIXED : V2_FIXED + addresses]
    tlvs = _tlvs(data[V2_FIXED + addresses : length])
    # §2.2: with LOCAL "the receiver must accept this connection as valid and must use the
    # real connection endpoints and discard the protocol block including the family".
    if command == _CMD_LOCAL:
        return ProxyHeader(version=2, length=length, local=True, tlvs=tlvs)
    source = destination = None
    if family == _AF_INET:
        src, dst, sport, dport = struct.unpack("!4s4sHH", block)
        source = (str(ipaddress.IPv4Address(src)), sport)
        destination = (str(ipaddress.IPv4Address(dst)), dport)
    elif family == _AF_INET6:
        src, dst, sport, dport = struct.unpack("!16s16sHH", block)
        source = (str(ipaddress.IPv6Address(src)), sport)
        destination = (str(ipaddress.IPv6Address(dst)), dport)
    # AF_UNSPEC, AF_UNIX: no IP address to give (§2.2: "the receiver should ignore address
    # information" for UNSPEC); the connection keeps the proxy's.
    return ProxyHeader(version=2, length=length, source=source, destination=destination, tlvs=tlvs)


def _tlvs(data: bytes) -> tuple[tuple[int, bytes], ...]:
    """§2.2.1: type (1 byte), length (2 bytes, big-endian), value; they must fill the rest."""
    found: list[tuple[int, bytes]] = []
    at = 0
    while at < len(data):
        if len(data) - at < 3:
            raise ProxyProtocolError("v2 header: a truncated TLV")
        kind = data[at]
        (size,) = struct.unpack_from("!H", data, at + 1)
        value = data[at + 3 : at + 3 + size]
        if len(value) != size:
            raise ProxyProtocolError("v2 header: a TLV longer than the header")
        found.append((kind, value))
        at += 3 + size
    return tuple(found)


# -- building headers (tests, and the documentation's examples) -----------------------------------


def v1_header(source: tuple[str, int], destination: tuple[str, int]) -> bytes:
    """The v1 header for a TCP connection from ``source`` to ``destination``."""
    src = ipaddress.ip_address(source[0])
    dst = ipaddress.ip_address(destination[0])
    if src.version != dst.version:
        raise ValueError("source and destination must be of one IP version")
    protocol = "TCP4" if src.version == 4 else "TCP6"
    return f"PROXY {protocol} {src} {dst} {source[1]} {destination[1]}\r\n".encode("ascii")


def v2_header(
    source: tuple[str, int] | None,
    destination: tuple[str, int] | None = None,
    *,
    tlvs: tuple[tuple[int, bytes], ...] = (),
) -> bytes:
    """The v2 header: PROXY for a TCP connection from ``source`` to ``destination``, or LOCAL
    when ``source`` is None (what HAProxy sends with its health checks)."""
    extra = b"".join(struct.pack("!BH", kind, len(value)) + value for kind, value in tlvs)
    if source is None:
        return V2_SIGNATURE + struct.pack("!BBH", 0x20, 0x00, len(extra)) + extra
    if destination is None:
        raise ValueError("a PROXY header needs a destination")
    src = ipaddress.ip_address(source[0])
    dst = ipaddress.ip_address(destination[0])
    if src.version != dst.version:
        raise ValueError("source and destination must be of one IP version")
    family = 0x11 if src.version == 4 else 0x21
    block = src.packed + dst.packed + struct.pack("!HH", source[1], destination[1])
    body = block + extra
    return V2_SIGNATURE + struct.pack("!BBH", 0x21, family, len(body)) + body
