"""COMPRESS=DEFLATE (RFC 4978): after the tagged OK, raw DEFLATE (RFC 1951) in both
directions, each server write ending on a sync flush so the client can read it whole."""

from __future__ import annotations

import time
import zlib

from tests.imap_server.conftest import Connect
from tests.imap_server.dialogue import Script
from tests.imap_server.messages import text_message


class Deflated:
    """The client side of a compressed session, over the script's TLS socket."""

    def __init__(self, tc: Script) -> None:
        self.sock = tc.conn.sock
        self.out = zlib.compressobj(wbits=-15)
        self.inflate = zlib.decompressobj(wbits=-15)
        self.received = b""

    def C(self, line: bytes) -> None:
        self.sock.sendall(self.out.compress(line + b"\r\n") + self.out.flush(zlib.Z_SYNC_FLUSH))

    def until(self, tagged: bytes, within: float = 10.0) -> bytes:
        """Everything received up to and including the line starting with ``tagged``."""
        deadline = time.monotonic() + within
        while b"\r\n" + tagged not in b"\r\n" + self.received:
            self.sock.settimeout(max(0.1, deadline - time.monotonic()))
            chunk = self.sock.recv(65536)
            assert chunk, "the server closed the connection"
            self.received += self.inflate.decompress(chunk)
            assert time.monotonic() < deadline, self.received
        at = (b"\r\n" + self.received).index(b"\r\n" + tagged)
        end = self.received.index(b"\r\n", at) + 2
        got, self.received = self.received[:end], self.received[end:]
        return got


def test_deflate_both_ways(tc: Script) -> None:
    tc.append("INBOX", text_message("Compressed hello", "x" * 5000 + "\n"))
    tc.C("a1 COMPRESS DEFLATE")
    tc.S("a1 OK …")
    z = Deflated(tc)
    z.C(b"a2 SELECT INBOX")
    assert b"* 1 EXISTS" in z.until(b"a2 OK")
    z.C(b"a3 FETCH 1 (BODY.PEEK[TEXT])")
    reply = z.until(b"a3 OK")
    assert b"x" * 5000 in reply
    # RFC 4978 §3: a second COMPRESS is refused, compressed like everything else.
    z.C(b"a4 COMPRESS DEFLATE")
    assert b"a4 NO [COMPRESSIONACTIVE]" in z.until(b"a4 ")
    z.C(b"a5 LOGOUT")
    assert b"* BYE" in z.until(b"a5 OK")


def test_unknown_mechanism_and_state(tc: Script, connect: Connect) -> None:
    tc.C("a1 COMPRESS LZMA")
    tc.S("a1 BAD …")
    tc.C("a2 NOOP")
    tc.S("a2 OK …")
    # Not before login (it is advertised and valid once authenticated).
    other = connect("tc2")
    other.greeting()
    other.C("b1 COMPRESS DEFLATE")
    other.S("b1 BAD …")
