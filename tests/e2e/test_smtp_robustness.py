"""Bad bytes in SASL exchanges and commands after the server closed (issue 17, finding 4): a
precise reply and one log line, never a ``451`` and a traceback. Dialogues against a real
``hygie serve`` over TLS; the server's log is read after each."""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Iterator

import pytest

from bench.harness import ServerProcess
from tests.imap_server.dialogue import Script
from tests.support.dialogue import SmtpDialogue
from tests.support.servers import start_server, stop_server

JEAN = "jean.dupont@hygie.test"
PASSWORD = "robust-17-correct-horse"
NOT_ASCII = b"\xee\xff"


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    srv = start_server(request, "sqlite", {JEAN: PASSWORD})
    yield srv
    stop_server(srv)


class Log:
    """What the server logged from now on."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.start = len(server.log_bytes())

    def text(self) -> str:
        return self.server.log_bytes()[self.start :].decode("utf-8", "replace")

    def events(self, name: str, count: int, wait: float = 5.0) -> list[dict[str, object]]:
        """The ``name`` events, once ``count`` of them are there (or ``wait`` has passed)."""
        deadline = time.monotonic() + wait
        while True:
            found = [
                json.loads(line)
                for line in self.text().splitlines()
                if line.startswith("{") and f'"event": "{name}"' in line
            ]
            if len(found) >= count or time.monotonic() > deadline:
                return found

    def assert_no_traceback(self) -> None:
        text = self.text()
        bad = ("Traceback", "smtp_session_failed", " ERROR ", '"level": "error"')
        assert not any(b in text for b in bad), text[-4000:]


@pytest.fixture
def log(server: ServerProcess) -> Log:
    return Log(server)


@pytest.fixture
def tc(server: ServerProcess) -> Iterator[SmtpDialogue]:
    """A session on the implicit-TLS port (2465), greeted."""
    dialogue = SmtpDialogue.connect(server.smtp_tls_port, server.ssl_context())
    dialogue.S("220")
    dialogue.C("EHLO client.test")
    dialogue.S("250")
    yield dialogue
    dialogue.close()


def test_auth_initial_responses_that_are_not_ascii(tc: SmtpDialogue, log: Log) -> None:
    for mechanism in ("PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER"):
        tc.C(b"AUTH " + mechanism.encode() + b" " + NOT_ASCII)
        tc.S("501 5.5.2")
    tc.C(b"AUTH PLAIN AGpl\xc3\xa9")  # base64 with UTF-8 inside
    tc.S("501 5.5.2")
    # The session is intact: the right credentials still log in.
    token = base64.b64encode(f"\0{JEAN}\0{PASSWORD}".encode()).decode()
    tc.C(f"AUTH PLAIN {token}")
    tc.S("235 2.7.0")
    events = log.events("smtp_auth_bad_base64", 5)
    assert [e["mechanism"] for e in events] == ["PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER", "PLAIN"]
    log.assert_no_traceback()


def test_auth_challenge_responses_that_are_not_ascii_or_too_long(
    tc: SmtpDialogue, log: Log
) -> None:
    for mechanism in ("PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER"):
        tc.C(f"AUTH {mechanism}")
        tc.S("334")
        tc.C(NOT_ASCII)
        tc.S("501 5.5.2")
    tc.C("AUTH LOGIN " + base64.b64encode(JEAN.encode()).decode())
    tc.S("334 UGFzc3dvcmQ6")  # "Password:"
    tc.C(NOT_ASCII)
    tc.S("501 5.5.2")
    # RFC 4954 §4: a response may be 12288 octets; a longer one is refused, not a traceback.
    tc.C("AUTH PLAIN")
    tc.S("334")
    tc.C(b"QUFB" * 3100)
    tc.S("500 5.5.6")
    tc.C("AUTH PLAIN")
    tc.S("334")
    tc.C("*")  # RFC 4954 §4: the client cancels
    tc.S("501 5.7.0")
    assert len(log.events("smtp_auth_bad_base64", 5)) == 5
    assert len(log.events("smtp_auth_line_too_long", 1)) == 1
    log.assert_no_traceback()


def test_a_long_bearer_token_in_a_challenge_response_is_read(tc: SmtpDialogue, log: Log) -> None:
    """Up to 12288 octets: a 3 KB token (longer than a command line) is read and checked."""
    token = "eyJ" + "A" * 3000
    message = f"n,,\x01auth=Bearer {token}\x01\x01".encode()
    tc.C("AUTH OAUTHBEARER")
    tc.S("334")
    tc.C(base64.b64encode(message))
    tc.S("334")  # RFC 7628 §3.2.2: the error challenge; the client answers %x01
    tc.C(base64.b64encode(b"\x01"))
    tc.S("535 5.7.8")
    log.assert_no_traceback()


def test_commands_after_the_server_closed_end_the_session_quietly(
    server: ServerProcess, log: Log
) -> None:
    """aiosmtpd closes after 5 unknown commands (502); what the client had already sent must
    not make it write on the closed TLS connection (AttributeError … _write_appdata)."""
    for port, starttls in ((server.smtp_tls_port, False), (server.smtp_port, True)):
        if starttls:
            tc = SmtpDialogue.connect(port)
            tc.greet_and_tls(server.ssl_context())
        else:
            tc = SmtpDialogue.connect(port, server.ssl_context())
            tc.S("220")
        tc.send_raw(b"EHLO client.test\r\n" + b"BOGUS\r\n" * 12)
        tc.S("250")
        for _ in range(4):
            tc.S("500 5.5.2")
        tc.S("502 5.5.1")
        assert tc.conn.is_closed_by_peer(wait=5.0)
        tc.close()
    log.assert_no_traceback()
    assert len(log.events("smtp_client_gone", 2)) == 2


def test_a_client_that_drops_during_tls_writes(server: ServerProcess, log: Log) -> None:
    """Pipelined commands, then a reset without reading the replies."""
    for _ in range(10):
        sock = socket.create_connection(("127.0.0.1", server.smtp_tls_port))
        tls = server.ssl_context().wrap_socket(sock, server_hostname="127.0.0.1")
        tls.sendall(b"EHLO client.test\r\n" + b"NOOP\r\n" * 50 + b"HELP\r\n" * 10)
        tls.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        tls.close()
    time.sleep(1.0)
    # The server still answers, and logged no traceback.
    tc = SmtpDialogue.connect(server.smtp_tls_port, server.ssl_context())
    tc.S("220")
    tc.C("QUIT")
    tc.S("221")
    tc.close()
    log.assert_no_traceback()


def test_starttls_once_tls_is_on(server: ServerProcess, log: Log) -> None:
    """RFC 3207 §4.2: a second STARTTLS is refused, on 2587 after STARTTLS and on 2465; it
    used to get 220 and a TLS layer on top of the first, whose teardown (the client leaving)
    logged a traceback from inside asyncio."""
    tc = SmtpDialogue.connect(server.smtp_port)
    tc.greet_and_tls(server.ssl_context())
    tc.C("STARTTLS")
    tc.S("503 5.5.1")
    tc.C("NOOP")
    tc.S("250")  # still talking over the first TLS layer
    tc.close()
    tc = SmtpDialogue.connect(server.smtp_tls_port, server.ssl_context())
    tc.S("220")
    tc.C("EHLO client.test")
    tc.S("250")
    tc.C("STARTTLS")
    tc.S("503 5.5.1")
    tc.close()
    time.sleep(0.5)
    log.assert_no_traceback()


def test_imap_authenticate_with_bytes_that_are_not_ascii(server: ServerProcess, log: Log) -> None:
    """IMAP AUTHENTICATE reads bytes (RFC 9051 §6.2.2): the same bytes get BAD, no traceback."""
    tc = Script.connect(server)
    tc.greeting()
    for mechanism in ("PLAIN", "XOAUTH2", "OAUTHBEARER"):
        tc.C(b"a1 AUTHENTICATE " + mechanism.encode() + b" " + NOT_ASCII)
        tc.S("a1 BAD …")
        tc.C(f"a2 AUTHENTICATE {mechanism}")
        tc.S("+ …")
        tc.C(NOT_ASCII)
        tc.S("a2 BAD …")
    tc.C(b"a3 AUTHENTICATE PL\xeeAIN =")
    tc.S("a3 BAD …")
    tc.C(b'a4 LOGIN "' + JEAN.encode() + b'" "\xee\xff"')
    tc.S("a4 NO …")
    tc.C("a5 LOGOUT")
    tc.S("* BYE …", "a5 OK …")
    tc.close()
    log.assert_no_traceback()
