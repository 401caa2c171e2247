"""Scripted SMTP and IMAP dialogues over real sockets, in the ``C:``/``S:`` style.

    tc = SmtpDialogue.connect(server.smtp_port)
    tc.S("220")
    tc.C("EHLO client.test")
    tc.S("250")
    tc.C("MAIL FROM:<alice@hygie.test>")
    tc.S("530 5.7.0")

``C`` sends one line (CRLF added); ``S`` reads the next reply and asserts it starts with the
expected text, then returns it. Replies that vary are checked by the caller on the returned value.
"""

from __future__ import annotations

import base64
import socket
import ssl
from dataclasses import dataclass

TIMEOUT = 30.0


class LineSocket:
    """A socket (plain or TLS) read line by line; CRLF-terminated lines, bytes preserved."""

    def __init__(self, sock: socket.socket, timeout: float = TIMEOUT) -> None:
        self.sock: socket.socket = sock
        self.sock.settimeout(timeout)
        self.buffer = bytearray()

    @classmethod
    def connect(
        cls, port: int, context: ssl.SSLContext | None = None, *, source: str | None = None
    ) -> LineSocket:
        """``source``: the loopback address to connect from (127.0.0.2 …), to play a client
        at another address."""
        sock = socket.create_connection(
            ("127.0.0.1", port), timeout=TIMEOUT, source_address=(source, 0) if source else None
        )
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname="127.0.0.1")
        return cls(sock)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed by server; unread: {bytes(self.buffer)!r}")
        self.buffer += chunk

    def readline(self) -> bytes:
        """One line, without its CRLF."""
        while (end := self.buffer.find(b"\r\n")) < 0:
            self._fill()
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 2]
        return line

    def read_exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self._fill()
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    def starttls(self, context: ssl.SSLContext) -> None:
        # RFC 3207 §6 / RFC 9051 §11.1: nothing sent before the handshake may be acted on
        # after it, so the plaintext buffer must be empty here.
        assert not self.buffer, f"plaintext left over before TLS: {bytes(self.buffer)!r}"
        self.sock = context.wrap_socket(self.sock, server_hostname="127.0.0.1")

    def is_closed_by_peer(self, wait: float = 2.0) -> bool:
        """True when the server closed the connection (EOF or reset) within ``wait`` seconds."""
        if self.buffer:
            return False
        self.sock.settimeout(wait)
        try:
            return self.sock.recv(1) == b""
        except TimeoutError:
            return False
        except (ConnectionError, ssl.SSLError):
            return True
        finally:
            self.sock.settimeout(TIMEOUT)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


@dataclass
class SmtpReply:
    code: int
    lines: list[str]  # text after "NNN-" / "NNN "

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def __str__(self) -> str:
        return "\n".join(f"{self.code} {line}" for line in self.lines)


class SmtpDialogue:
    """An SMTP client that says exactly what the script says (RFC 5321)."""

    def __init__(self, conn: LineSocket) -> None:
        self.conn = conn
        self.transcript: list[str] = []

    @classmethod
    def connect(
        cls, port: int, context: ssl.SSLContext | None = None, *, source: str | None = None
    ) -> SmtpDialogue:
        """Connect in plaintext (submission port) or, with ``context``, in implicit TLS."""
        return cls(LineSocket.connect(port, context, source=source))

    def C(self, line: str | bytes) -> None:
        data = line.encode() if isinstance(line, str) else line
        self.transcript.append(f"C: {data[:200]!r}")
        self.conn.send(data + b"\r\n")

    def send_raw(self, data: bytes) -> None:
        self.transcript.append(f"C: <{len(data)} raw bytes>")
        self.conn.send(data)

    def reply(self) -> SmtpReply:
        lines: list[str] = []
        while True:
            raw = self.conn.readline().decode("utf-8", errors="replace")
            self.transcript.append(f"S: {raw}")
            code, sep, text = raw[:3], raw[3:4], raw[4:]
            assert code.isdigit() and sep in ("-", " ", ""), f"not an SMTP reply: {raw!r}"
            lines.append(text)
            if sep != "-":
                return SmtpReply(int(code), lines)

    def S(self, expected: str) -> SmtpReply:
        """Read one reply; assert ``"<code> <text>"`` of its first line starts with ``expected``."""
        reply = self.reply()
        first = f"{reply.code} {reply.lines[0]}"
        assert first.startswith(expected), f"expected {expected!r}, got {first!r}\n" + "\n".join(
            self.transcript[-12:]
        )
        return reply

    def starttls(self, context: ssl.SSLContext) -> None:
        self.C("STARTTLS")
        self.S("220")
        self.conn.starttls(context)

    def greet_and_tls(self, context: ssl.SSLContext, helo: str = "client.test") -> SmtpReply:
        """The usual opening: greeting, EHLO, STARTTLS, EHLO again; returns the second EHLO."""
        self.S("220")
        self.C(f"EHLO {helo}")
        self.S("250")
        self.starttls(context)
        self.C(f"EHLO {helo}")
        return self.S("250")

    def auth_plain(self, user: str, password: str) -> SmtpReply:
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        self.C(f"AUTH PLAIN {token}")
        return self.reply()

    def close(self) -> None:
        self.conn.close()


class ImapDialogue:
    """An IMAP client that says exactly what the script says (RFC 9051 §2.2)."""

    def __init__(self, conn: LineSocket) -> None:
        self.conn = conn
        self.untagged: list[bytes] = []
        self.transcript: list[str] = []

    @classmethod
    def connect(cls, port: int, context: ssl.SSLContext | None = None) -> ImapDialogue:
        return cls(LineSocket.connect(port, context))

    def C(self, line: str | bytes) -> None:
        data = line.encode() if isinstance(line, str) else line
        self.transcript.append(f"C: {data[:200]!r}")
        self.conn.send(data + b"\r\n")

    def line(self) -> bytes:
        """One response line, with any literals it carries inlined (RFC 9051 §4.3)."""
        line = self.conn.readline()
        while line.endswith(b"}") and b"{" in line:
            size = line[line.rindex(b"{") + 1 : -1]
            if not size.isdigit():
                break
            line += b"\r\n" + self.conn.read_exactly(int(size)) + self.conn.readline()
        self.transcript.append(f"S: {line[:200]!r}")
        return line

    def S(self, expected: str) -> bytes:
        """The next response line starting with ``expected``.

        Untagged (``*``) lines are collected in :attr:`untagged` and skipped, unless the
        expectation is itself an untagged or continuation (``+``) response.
        """
        want = expected.encode()
        while True:
            line = self.line()
            if line.startswith(b"* ") and not want.startswith((b"*", b"+")):
                self.untagged.append(line)
                continue
            assert line.startswith(want), (
                f"expected {expected!r}, got {line[:300]!r}\n" + "\n".join(self.transcript[-12:])
            )
            return line

    def starttls(self, context: ssl.SSLContext, tag: str = "tls") -> None:
        self.C(f"{tag} STARTTLS")
        self.S(f"{tag} OK")
        self.conn.starttls(context)

    def close(self) -> None:
        self.conn.close()
