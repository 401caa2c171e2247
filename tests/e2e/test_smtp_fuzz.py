"""A seeded fuzz of whole SMTP dialogues against a real ``hygie serve`` (issue 17): mutated
commands (EHLO, STARTTLS, AUTH and its challenges, MAIL/RCPT with parameters, DATA with
mangled header sections, unknown commands, long lines, bytes that are not ASCII), sent one by
one or pipelined, over implicit TLS and STARTTLS.

What must hold: every reply is a well-formed SMTP reply and none is ``451`` (our own failure);
the server logs no traceback and no error; and every message it accepted shows, over IMAP,
only the sender's own address as From and Sender, under no name posing as another address.

The run is seeded (``SEED``): every run, here and in CI, sends the same dialogues. The parsing
functions themselves have their property tests in ``tests/server/test_smtp_fuzz.py``.
"""

from __future__ import annotations

import base64
import random
import re
import socket
import ssl
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from bench.harness import ServerProcess
from server.imap.proto.message import decode_words
from tests.imap_server.dialogue import Script, fetch_items
from tests.support.dialogue import LineSocket
from tests.support.servers import bearer_token, start_server, stop_server

SEED = 17
SESSIONS = 200
JEAN = "jean.dupont@hygie.test"
PAUL = "paul.durand@hygie.test"
CLAIRE = "claire.martin@hygie.test"
PASSWORD = "fuzz-17-correct-horse"
_REPLY = re.compile(rb"^[2-5]\d\d(?:[ -]|$)")


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    # Wrong passwords are part of the fuzz: no delay and no lock-out, or it would fuzz the
    # limiter instead of the parsers.
    env = {"HYGIE_AUTH_FAILURE_DELAY_SECONDS": "0", "HYGIE_AUTH_MAX_FAILURES_PER_MINUTE": "100000"}
    srv = start_server(request, "sqlite", {a: PASSWORD for a in (JEAN, PAUL, CLAIRE)}, env)
    yield srv
    stop_server(srv)


# -- what the client says -----------------------------------------------------------------------

Rng = random.Random
Make = Callable[[Rng], bytes]

_INSERTS = [
    b"\x00",
    b"\xff",
    b"\xee\xff",
    b"\xc3\xa9",
    b"\r",
    b" ",
    b"\t",
    b"<",
    b">",
    b":",
    b"=",
    b"@",
    b",",
    b'"',
    b"\\",
    b"(",
    b")",
    b"*",
    b"+",
    b"%",
    b"\x7f",
    b"\x1b",
]


def mutate(rng: Rng, line: bytes) -> bytes:
    """One change to a command line; never a line feed (that is two commands, not one)."""
    kind = rng.randrange(7)
    at = rng.randint(0, len(line))
    if kind == 0:
        return line[:at] + rng.choice(_INSERTS) * rng.randint(1, 3) + line[at:]
    if kind == 1:
        return line[:at] + line[at + rng.randint(1, 8) :]
    if kind == 2:
        return line[:at] + line[at : at + 12] + line[at:]
    if kind == 3:
        return line.swapcase()
    if kind == 4:
        return line + b"x" * rng.choice([100, 600, 990, 1001, 1100, 5000])
    if kind == 5:
        return line[:at] + bytes(rng.randrange(0x20, 0x100) for _ in range(rng.randint(1, 6)))
    return line.replace(b" ", b"  ") if rng.random() < 0.5 else line.replace(b":", b" :")


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def _auth(rng: Rng) -> bytes:
    mechanism = rng.choice(
        [b"PLAIN", b"LOGIN", b"XOAUTH2", b"OAUTHBEARER", b"EXTERNAL", b"CRAM-MD5", b"plain", b""]
    )
    arg = rng.choice(
        [
            b"",
            b" =",
            b" \xee\xff",
            b" " + _b64(f"\0{JEAN}\0wrong".encode()),
            b" " + _b64(f"\0{JEAN}\0{PASSWORD}".encode()),
            b" " + _b64(rng.randbytes(20)),
            b" " + _b64(b"n,,\x01auth=Bearer x\x01\x01"),
            b" " + _b64(b"user=x\x01auth=Bearer\x01\x01"),
            b" AAAA AAAA",
            b" ====",
            b" " + b"QUFB" * 300,
        ]
    )
    return b"AUTH " + mechanism + arg


def _path(rng: Rng) -> bytes:
    return rng.choice(
        [
            f"<{JEAN}>",
            f"<{PAUL}>",
            f"<{CLAIRE}>",
            "<>",
            "<x@example.org>",
            "<paul.durand@HYGIE.TEST>",
            "<@route:paul.durand@hygie.test>",
            "<a@b",
            '<"quoted local"@hygie.test>',
            "<é@hygie.test>",
            "paul.durand@hygie.test",
            "<279035121518989@patient.hygie.test>",
            "<postmaster>",
        ]
    ).encode()


def _params(rng: Rng, mail: bool) -> bytes:
    pool = (
        [
            "SIZE=100",
            "SIZE=99999999999",
            "BODY=8BITMIME",
            "BODY=BINARYMIME",
            "SMTPUTF8",
            "RET=HDRS",
            "RET=FULL",
            "RET=x",
            "ENVID=a+2Bb",
            "ENVID=+ZZ",
            "AUTH=<>",
        ]
        if mail
        else [
            "NOTIFY=SUCCESS,FAILURE",
            "NOTIFY=NEVER,SUCCESS",
            "NOTIFY=",
            "ORCPT=rfc822;a@b",
            "ORCPT=rfc822;a+2",
            "ORCPT=x",
            "ORCPT=utf-8;\\x{E9}@b",
        ]
    )
    return b"".join(b" " + rng.choice(pool).encode() for _ in range(rng.randint(0, 3)))


def _mail(rng: Rng) -> bytes:
    return b"MAIL FROM:" + _path(rng) + _params(rng, True)


def _rcpt(rng: Rng) -> bytes:
    return b"RCPT TO:" + _path(rng) + _params(rng, False)


COMMANDS: list[tuple[int, Make]] = [
    (2, lambda rng: b"EHLO " + rng.choice([b"client.test", b"[127.0.0.1]", b"", b"\xc3\xa9.test"])),
    (1, lambda rng: b"HELO client.test"),
    (4, _mail),
    (5, _rcpt),
    (5, lambda rng: b"DATA"),
    (2, _auth),
    (
        1,
        lambda rng: rng.choice(
            [
                b"RSET",
                b"NOOP",
                b"NOOP hello",
                b"HELP",
                b"HELP DATA",
                b"VRFY paul.durand",
                b"EXPN staff",
                b"STARTTLS",
                b"BDAT 10 LAST",
                b"QUIT",
                b"",
                b"MAIL",
                b"RCPT",
                b"DATA x",
                b"ETRN x",
                b"\xee\xff",
                b"AUTH",
                b"XCLIENT ADDR=1.2.3.4",
            ]
        ),
    ),
]


def command(rng: Rng) -> bytes:
    make = rng.choices([m for _, m in COMMANDS], [w for w, _ in COMMANDS])[0]
    line = make(rng)
    return mutate(rng, line) if rng.random() < 0.35 else line


def transaction(rng: Rng) -> list[bytes]:
    """MAIL, RCPT and DATA in order, as a client sends them, each now and then mutated."""
    lines = [f"MAIL FROM:<{JEAN}>".encode() + _params(rng, True)]
    lines += [
        b"RCPT TO:" + rng.choice([f"<{PAUL}>".encode(), f"<{CLAIRE}>".encode(), _path(rng)])
        for _ in range(rng.randint(1, 2))
    ]
    lines.append(b"DATA")
    return [mutate(rng, line) if rng.random() < 0.1 else line for line in lines]


# -- what DATA carries ---------------------------------------------------------------------------

_NAMES = [
    "From",
    "From ",
    "From\t",
    "FROM",
    "Sender",
    "Sender ",
    "Reply-To",
    "Reply-To\t",
    "Resent-From",
    "Resent-Sender",
    "Resent-To",
    "X-From",
    " From",
    "Fr om",
]
_NAMES_SHOWN = [
    "",
    "Jean Dupont",
    '"Dupont, Jean"',
    f'"{CLAIRE}"',
    CLAIRE,
    f'"{JEAN}"',
    "=?utf-8?q?claire.martin=40hygie.test?=",
    "=?utf-8?b?Y2xhaXJlQGh5Z2llLnRlc3Q=?=",
    "=?utf-8?q?Dr_Jean_Dupont?=",
    "=?x-bad?q?claire=40x.y?=",
    "=?utf-8?q?=EF=BC=A0?=",
    "Clément",
    "(comment)",
    "Cabinet:",
]
_ADDRESSES = [JEAN, JEAN.upper(), CLAIRE, PAUL, "x@example.org", "jean.dupont", ""]


def _field(rng: Rng) -> str:
    name, display, address = rng.choice(_NAMES), rng.choice(_NAMES_SHOWN), rng.choice(_ADDRESSES)
    shape = rng.choice(
        [
            "{a}",
            "<{a}>",
            "{d} <{a}>",
            "{a} ({d})",
            "{d} <{a}>, {d} <{a}>",
            "{d};",
            "<@r:{a}>",
            "{d}\r\n <{a}>",
            "{d} <{a}",
        ]
    )
    return f"{name}:{rng.choice(['', ' ', chr(9)])}" + shape.format(a=address, d=display)


def message(rng: Rng, n: int) -> bytes:
    fields = [_field(rng) for _ in range(rng.choice([0, 1, 1, 1, 2, 3]))]
    fields += [f"To: <{PAUL}>", f"Subject: fuzz {n}"]
    fields += rng.sample(
        [
            "Date: Mon, 17 Nov 2025 09:30:00 +0100",
            "MIME-Version: 1.0",
            "Content-Type: multipart/mixed; boundary=b",
            "X-MSS-MES: FIN",
            "X-MSS-NIL: x",
            "Content-Type: text/plain; charset=utf-8",
            "Message-ID: <fuzz@client.test>",
        ],
        rng.randint(0, 3),
    )
    rng.shuffle(fields)
    body = [
        b"Bonjour,",
        b".hidden line",
        b"--b",
        b"Content-Type: text/plain",
        b"",
        b"\xc3\xa9t\xc3\xa9",
        b"--b--",
        b"." * 3,
        b"x" * rng.choice([10, 998, 1200]),
    ]
    lines = [f.encode() for f in fields] + [b""] + rng.sample(body, rng.randint(1, len(body)))
    data = b"\r\n".join(lines) + b"\r\n"
    if rng.random() < 0.2:  # mangled: bytes anywhere, and now and then a bare LF or CR
        at = rng.randint(0, len(data))
        data = (
            data[:at] + rng.choice([b"\n", b"\r", b"\x00", b"\xff", b"\r\n\r\n", b":"]) + data[at:]
        )
    # RFC 5321 §4.5.2: a line starting with "." is sent with one more.
    return re.sub(rb"(?m)^\.", b"..", data)


# -- the dialogues -----------------------------------------------------------------------------


@dataclass
class Findings:
    replies: Counter[int] = field(default_factory=Counter)
    malformed: list[bytes] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    transcripts: list[list[bytes]] = field(default_factory=list)


class Dialogue:
    def __init__(self, conn: LineSocket, found: Findings, transcript: list[bytes]) -> None:
        self.conn = conn
        self.found = found
        self.transcript = transcript

    def send(self, data: bytes) -> None:
        self.transcript.append(b"C: " + data[:200])
        self.conn.send(data)

    def reply(self) -> int | None:
        """The code of the next reply; None once the server closed or went quiet."""
        lines: list[bytes] = []
        try:
            while True:
                line = self.conn.readline()
                self.transcript.append(b"S: " + line[:200])
                lines.append(line)
                if not _REPLY.match(line):
                    self.found.malformed.append(line)
                    return None
                if line[3:4] != b"-":
                    break
        except (ConnectionError, TimeoutError, ssl.SSLError, OSError):
            return None
        code = int(lines[0][:3])
        self.found.replies[code] += 1
        text = b"\n".join(lines)
        if code == 451 or b"Error: (" in text:  # our failure, or aiosmtpd's last resort
            self.found.failures.append(text.decode("utf-8", "replace"))
        return code


def answer_challenges(d: Dialogue, rng: Rng, code: int | None) -> int | None:
    """Answer each SASL challenge (334), well or badly; the code of the final reply."""
    while code == 334:
        answers = [
            b"\xee\xff",
            b"*",
            b"",
            _b64(rng.randbytes(12)),
            _b64(b"\x01"),
            _b64(f"\0{JEAN}\0{PASSWORD}".encode()),
            b"QUFB" * 4000,
            _b64(JEAN.encode()),
        ]
        d.send(rng.choice(answers) + b"\r\n")
        code = d.reply()
    return code


def one_session(server: ServerProcess, token: str, rng: Rng, n: int, found: Findings) -> None:
    context = server.ssl_context()
    transcript: list[bytes] = []
    implicit = rng.random() < 0.6
    port = server.smtp_tls_port if implicit else server.smtp_port
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if implicit:
        sock = context.wrap_socket(sock, server_hostname="127.0.0.1")
    d = Dialogue(LineSocket(sock, timeout=10), found, transcript)
    try:
        if d.reply() != 220:
            return
        if not implicit:
            d.send(b"EHLO client.test\r\n")
            d.reply()
            d.send(b"STARTTLS\r\n")
            if d.reply() != 220:
                return
            d.conn.starttls(context)
        if rng.random() < 0.8:
            d.send(b"EHLO client.test\r\n")
            d.reply()
        if rng.random() < 0.4:  # AUTH attempts before logging in: mutated, any mechanism
            for _ in range(rng.randint(1, 3)):
                attempt = _auth(rng)
                d.send((mutate(rng, attempt) if rng.random() < 0.5 else attempt) + b"\r\n")
                if answer_challenges(d, rng, d.reply()) is None:
                    return
        login = rng.random()
        if login < 0.7:  # a token: argon2 would make the password the fuzz's slowest part
            d.send(
                b"AUTH XOAUTH2 "
                + _b64(f"user={JEAN}\x01auth=Bearer {token}\x01\x01".encode())
                + b"\r\n"
            )
            d.reply()
        elif login < 0.8:
            d.send(b"AUTH PLAIN " + _b64(f"\0{JEAN}\0{PASSWORD}".encode()) + b"\r\n")
            d.reply()
        for _ in range(rng.randint(1, 12)):
            if rng.random() < 0.5:
                batch = transaction(rng)
            else:
                batch = [command(rng) for _ in range(rng.choice([1, 1, 1, 2, 3]))]
            d.send(b"".join(line + b"\r\n" for line in batch))
            for line in batch:
                code = d.reply()
                if code is None:
                    return
                code = answer_challenges(d, rng, code)
                if code == 354:
                    d.send(message(rng, n) + b".\r\n")
                    code = d.reply()
                if code is None:
                    return
                if line.strip().upper() == b"QUIT" or (code == 220 and b"STARTTLS" in line.upper()):
                    return  # 221, or a TLS handshake the script does not do: the session ends
    finally:
        found.transcripts.append(transcript)
        d.conn.close()


# -- the test -------------------------------------------------------------------------------------


def test_seeded_smtp_dialogues(server: ServerProcess) -> None:
    start = len(server.log_bytes())
    found = Findings()
    token = bearer_token(server, JEAN, ttl_seconds=900)
    for n in range(SESSIONS):
        one_session(server, token, random.Random(f"{SEED}-{n}"), n, found)

    assert not found.malformed, found.malformed[:5]
    assert not found.failures, found.failures[:5]
    log = server.log_bytes()[start:].decode("utf-8", "replace")
    problems = [
        line
        for line in log.splitlines()
        if "Traceback" in line or '"level": "error"' in line or " ERROR " in line
    ]
    assert not problems, "\n".join(problems[:5])[:4000]
    # The fuzz reached the places it is for: accepted mail, From refusals, AUTH refusals.
    assert found.replies[250] and found.replies[354] and found.replies[501], found.replies
    assert '"event": "from_refused"' in log and '"event": "smtp_auth_bad_base64"' in log

    for reader in (PAUL, CLAIRE):
        for envelope in envelopes(server, reader):
            for index in (2, 3):  # from, sender
                assert envelope[index], envelope
                for name, _adl, mailbox, host in envelope[index]:
                    assert (mailbox + b"@" + host).lower() == JEAN.encode(), envelope
                    shown = decode_words((name or b"").decode()).casefold()
                    assert "@" not in shown.replace(JEAN, ""), envelope


def envelopes(server: ServerProcess, user: str) -> list[list[list[bytes | None]]]:
    """The ENVELOPE of every message in ``user``'s INBOX (RFC 9051 §7.5.2)."""
    tc = Script.connect(server).open(user, PASSWORD)
    try:
        tc.C("s1 SELECT INBOX")
        reply = tc.S("s1 OK …")
        if any(line == "* 0 EXISTS" for line in reply.lines):
            return []
        tc.C("f1 FETCH 1:* (ENVELOPE)")
        reply = tc.S("f1 OK …")
        out = []
        for line in reply.lines:
            if line.startswith("* ") and " FETCH " in line:
                envelope = fetch_items(line)["ENVELOPE"]
                assert isinstance(envelope, list)
                out.append(envelope)  # type: ignore[arg-type]
        return out
    finally:
        tc.C("z LOGOUT")
        tc.S("z OK …")
        tc.close()
