"""The PROXY protocol parser (server/net/proxy_protocol.py): the headers HAProxy sends, the
ones it must refuse, and properties — any bytes give a header, "need more" or a protocol
error, never another exception; a header cut anywhere is "need more"; what follows a header is
left alone."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.net.proxy_protocol import (
    MAX_HEADER,
    V2_SIGNATURE,
    ProxyHeader,
    ProxyProtocolError,
    could_be_header,
    parse,
    v1_header,
    v2_header,
)

CLIENT_HELLO = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"


# -- version 1 ------------------------------------------------------------------------------------


def test_v1_tcp4() -> None:
    data = b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 2587\r\nEHLO client\r\n"
    header = parse(data)
    assert header == ProxyHeader(version=1, length=len(data) - 13, source=("203.0.113.7", 51234),
                                 destination=("192.0.2.1", 2587))  # fmt: skip
    assert data[header.length :] == b"EHLO client\r\n"


def test_v1_tcp6_is_normalised() -> None:
    header = parse(b"PROXY TCP6 2001:DB8:0:0::1 2001:db8::2 4000 993\r\n")
    assert header is not None and header.source == ("2001:db8::1", 4000)


def test_v1_unknown_carries_no_address() -> None:
    for data in (b"PROXY UNKNOWN\r\n", b"PROXY UNKNOWN ffff:f...f:ffff 1 2\r\n"):
        header = parse(data)
        assert header == ProxyHeader(version=1, length=len(data))


@pytest.mark.parametrize(
    "data",
    [
        b"PROXY TCP4 203.0.113.07 192.0.2.1 1 2\r\n",  # leading zero in an octet
        b"PROXY TCP4 203.0.113.7 192.0.2.1 01 2\r\n",  # leading zero in a port
        b"PROXY TCP4 203.0.113.7 192.0.2.1 65536 2\r\n",  # port out of range
        b"PROXY TCP4 2001:db8::1 192.0.2.1 1 2\r\n",  # IPv6 in TCP4
        b"PROXY TCP6 203.0.113.7 2001:db8::2 1 2\r\n",  # IPv4 in TCP6
        b"PROXY TCP6 fe80::1%eth0 2001:db8::2 1 2\r\n",  # a zone
        b"PROXY TCP4 203.0.113.7  192.0.2.1 1 2\r\n",  # two spaces
        b"PROXY TCP4 203.0.113.7 192.0.2.1 1\r\n",  # a field missing
        b"PROXY UDP4 203.0.113.7 192.0.2.1 1 2\r\n",  # not TCP
        b"PROXY TCP4 203.0.113.7 192.0.2.1 1 2\n",  # LF alone
        b"PROXY TCP4 203.0.113.7\r192.0.2.1 1 2\r\n",  # a CR inside
        b"PROXY " + b"1" * 120 + b"\r\n",  # longer than 107 bytes
        b"PROXY TCP4 \xff.0.0.1 192.0.2.1 1 2\r\n",  # not ASCII
        b"PROXZ TCP4 203.0.113.7 192.0.2.1 1 2\r\n",  # not the signature
    ],
)
def test_v1_refusals(data: bytes) -> None:
    with pytest.raises(ProxyProtocolError):
        parse(data)


# -- version 2 ------------------------------------------------------------------------------------


def test_v2_tcp4_as_haproxy_sends_it() -> None:
    # HAProxy 2.6 "send-proxy-v2": PROXY, TCP over IPv4, 12 address bytes and no TLV.
    data = (V2_SIGNATURE + bytes([0x21, 0x11, 0x00, 0x0C]) + bytes([203, 0, 113, 7, 192, 0, 2, 1])
            + struct.pack("!HH", 51234, 2465) + CLIENT_HELLO)  # fmt: skip
    header = parse(data)
    assert header is not None
    assert header.source == ("203.0.113.7", 51234) and header.destination == ("192.0.2.1", 2465)
    assert header.version == 2 and not header.local
    assert data[header.length :] == CLIENT_HELLO


def test_v2_tcp6_with_tlvs() -> None:
    tlvs = ((0x01, b"imap"), (0x04, b"\x00" * 5))  # ALPN, then NOOP padding (§2.2.1)
    data = v2_header(("2001:db8::7", 1234), ("2001:db8::1", 993), tlvs=tlvs)
    header = parse(data)
    assert header is not None and header.source == ("2001:db8::7", 1234)
    assert header.tlvs == tlvs and header.length == len(data)


def test_v2_local_is_the_proxys_own_connection() -> None:
    header = parse(v2_header(None))
    assert header is not None and header.local and header.source is None


def test_v2_unspec_and_unix_carry_no_address() -> None:
    unspec = V2_SIGNATURE + bytes([0x21, 0x00, 0x00, 0x00])
    unix = V2_SIGNATURE + bytes([0x21, 0x31]) + struct.pack("!H", 216) + b"/run/x".ljust(216, b"\0")
    for data in (unspec, unix):
        header = parse(data)
        assert header is not None and header.source is None and not header.local


@pytest.mark.parametrize(
    "data",
    [
        V2_SIGNATURE + bytes([0x11, 0x11, 0x00, 0x0C]) + bytes(12),  # version 1 in v2 form
        V2_SIGNATURE + bytes([0x22, 0x11, 0x00, 0x0C]) + bytes(12),  # command 2
        V2_SIGNATURE + bytes([0x21, 0x12, 0x00, 0x0C]) + bytes(12),  # UDP over IPv4
        V2_SIGNATURE + bytes([0x21, 0x41, 0x00, 0x0C]) + bytes(12),  # family 4
        V2_SIGNATURE + bytes([0x21, 0x11, 0x00, 0x08]) + bytes(8),  # shorter than IPv4 addresses
        V2_SIGNATURE + bytes([0x21, 0x01, 0x00, 0x00]),  # UNSPEC family with TCP
        V2_SIGNATURE + bytes([0x21, 0x11, 0x00, 0x0E]) + bytes(14),  # a 2-byte TLV fragment
        # a TLV longer than the header
        V2_SIGNATURE + bytes([0x21, 0x11, 0x00, 0x0F]) + bytes(12) + b"\x01\x00\x09",
        V2_SIGNATURE + bytes([0x21, 0x11, 0xFF, 0xFF]),  # 65535 bytes announced
        V2_SIGNATURE[:11] + b"X",  # a broken signature
    ],
)
def test_v2_refusals(data: bytes) -> None:
    with pytest.raises(ProxyProtocolError):
        parse(data)


# -- who may be taken for a header ----------------------------------------------------------------


def test_could_be_header() -> None:
    assert could_be_header(b"P") and could_be_header(b"PROXY TCP4 1.2.3.4")
    assert could_be_header(b"\r\n\r") and could_be_header(V2_SIGNATURE + b"\x21")
    for other in (CLIENT_HELLO, b"EHLO x\r\n", b"a1 LOGIN", b"GET / HTTP/1.1\r\n", b"PROXIMITY"):
        assert not could_be_header(other), other


# -- properties -----------------------------------------------------------------------------------

IPV4 = st.ip_addresses(v=4).map(str)
IPV6 = st.ip_addresses(v=6).map(str)
PORTS = st.integers(0, 65535)


@st.composite
def headers(draw: st.DrawFn) -> tuple[bytes, tuple[str, int]]:
    """A valid header of either version, with the client address it names."""
    host = draw(st.one_of(IPV4, IPV6))
    family = IPV4 if ipaddress.ip_address(host).version == 4 else IPV6
    source, destination = (host, draw(PORTS)), (draw(family), draw(PORTS))
    if draw(st.booleans()):
        return v1_header(source, destination), (str(ipaddress.ip_address(host)), source[1])
    tlvs = tuple(draw(st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=40)),
                               max_size=4)))  # fmt: skip
    return v2_header(source, destination, tlvs=tlvs), (str(ipaddress.ip_address(host)), source[1])


def _judge(data: bytes) -> None:
    try:
        header = parse(data)
    except ProxyProtocolError:
        return
    if header is None:
        assert len(data) < MAX_HEADER  # never asks for more than a header can be
    else:
        assert 0 < header.length <= len(data)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=MAX_HEADER + 50))
def test_any_bytes_give_a_header_more_or_a_protocol_error(data: bytes) -> None:
    _judge(data)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([b"PROXY ", V2_SIGNATURE]), st.binary(max_size=300))
def test_any_bytes_after_a_signature(prefix: bytes, rest: bytes) -> None:
    _judge(prefix + rest)


@settings(max_examples=300, deadline=None)
@given(headers(), st.binary(max_size=64))
def test_a_valid_header_names_its_client_and_leaves_the_rest(
    made: tuple[bytes, tuple[str, int]], rest: bytes
) -> None:
    data, client = made
    header = parse(data + rest)
    assert header is not None and header.source == client and header.length == len(data)
    for cut in range(len(data)):  # cut anywhere: read more, never a wrong answer
        assert parse(data[:cut]) is None
