"""MSSanté reference (b) 2, XOAUTH2 with a Pro Santé Connect-style provider: "a valid JWT
(right iss/aud/exp, RPPS in a claim) grants access to the matching PER mailbox; an expired
token, a token from another subject, or a plain password all get NO/535; no token is written
to disk".

Against a running ``hygie serve`` configured as for Pro Santé Connect: the subject is read from
the ``SubjectNameID`` claim (an IdNat, ``8`` + RPPS), bound to the practitioner's PER mailbox
with ``hygie user bind --idnat``, and ``[auth] password_forbidden_types = ["PER"]``: the PER
mailbox signs in by token only, an ORG mailbox may still use its password.

C: AUTHENTICATE XOAUTH2 <user=dr…, auth=Bearer <PSC-style JWT for 810001234567>>
S: OK
C: LOGIN dr… <right password>
S: NO [AUTHENTICATIONFAILED] … PER mailboxes sign in with a token …
"""

from __future__ import annotations

import base64
import imaplib
import smtplib
import time
from collections.abc import Iterator

import pytest

from bench.harness import ServerProcess
from tests.support.servers import start_server, stop_server

pytestmark = pytest.mark.timeout(600)

DOCTOR = "jean.dupont@hygie.test"
SECRETARIAT = "accueil.cabinet@hygie.test"
PASSWORD = "case-2-password-1"
IDNAT = "810001234567"  # 8 + RPPS 10001234567


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    env = {"HYGIE_OAUTH_SUBJECT_CLAIM": "SubjectNameID", "HYGIE_OAUTH_LEEWAY_SECONDS": "0",
           "HYGIE_AUTH_PASSWORD_FORBIDDEN_TYPES": "PER"}  # fmt: skip
    srv = start_server(request, "sqlite", {DOCTOR: PASSWORD, SECRETARIAT: PASSWORD}, env)
    srv.hygie("user", "bind", DOCTOR, "--idnat", IDNAT)
    srv.hygie("directory", "mailbox", DOCTOR, "--type", "PER")
    srv.hygie("directory", "mailbox", SECRETARIAT, "--type", "ORG")
    yield srv
    stop_server(srv)


def token(server: ServerProcess, subject: str, ttl: int = 300) -> str:
    return server.hygie("token", "issue", subject, "--ttl", str(ttl)).stdout.decode().strip()


def xoauth2(user: str, value: str) -> bytes:
    return f"user={user}\x01auth=Bearer {value}\x01\x01".encode()


def imap_token(server: ServerProcess, user: str, value: str) -> str:
    client = imaplib.IMAP4_SSL("127.0.0.1", server.imap_tls_port, ssl_context=server.ssl_context())
    try:
        typ, _ = client.authenticate("XOAUTH2", lambda _: xoauth2(user, value))
        return str(typ)
    except imaplib.IMAP4.error:
        return "NO"
    finally:
        client.shutdown()


def smtp_token(server: ServerProcess, user: str, value: str) -> int:
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30) as smtp:
        smtp.starttls(context=server.ssl_context())
        smtp.ehlo()
        code, _ = smtp.docmd("AUTH", "XOAUTH2 " + base64.b64encode(xoauth2(user, value)).decode())
        if code == 334:  # RFC 7628-style error challenge: the client ends the exchange
            code, _ = smtp.docmd("")
        return code


def test_a_psc_token_opens_the_per_mailbox(server: ServerProcess) -> None:
    value = token(server, IDNAT)
    assert imap_token(server, DOCTOR, value) == "OK"
    assert smtp_token(server, DOCTOR, value) == 235
    # The same token names no other mailbox.
    assert imap_token(server, SECRETARIAT, value) == "NO"
    assert smtp_token(server, SECRETARIAT, value) == 535


def test_expired_and_other_subjects_are_refused(server: ServerProcess) -> None:
    expired = token(server, IDNAT, ttl=1)
    time.sleep(2.5)
    assert imap_token(server, DOCTOR, expired) == "NO"
    assert smtp_token(server, DOCTOR, expired) == 535
    stranger = token(server, "810009999999")  # a practitioner bound to no mailbox here
    assert imap_token(server, DOCTOR, stranger) == "NO"
    assert smtp_token(server, DOCTOR, stranger) == 535


def test_a_per_mailbox_takes_no_password(server: ServerProcess) -> None:
    client = imaplib.IMAP4_SSL("127.0.0.1", server.imap_tls_port, ssl_context=server.ssl_context())
    with pytest.raises(imaplib.IMAP4.error, match="PER mailboxes sign in with a token"):
        client.login(DOCTOR, PASSWORD)
    client.shutdown()
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30) as smtp:
        smtp.starttls(context=server.ssl_context())
        with pytest.raises(smtplib.SMTPAuthenticationError) as caught:
            smtp.login(DOCTOR, PASSWORD)
        assert caught.value.smtp_code == 535 and b"PER mailboxes" in caught.value.smtp_error
    # An ORG mailbox keeps its password.
    client = imaplib.IMAP4_SSL("127.0.0.1", server.imap_tls_port, ssl_context=server.ssl_context())
    assert client.login(SECRETARIAT, PASSWORD)[0] == "OK"
    client.logout()


def test_no_token_is_written_to_disk(server: ServerProcess) -> None:
    value = token(server, IDNAT)
    assert imap_token(server, DOCTOR, value) == "OK"
    signature = value.rsplit(".", 1)[1].encode()
    for path in [server.log_path, *server.data_dir.rglob("*")]:
        if path.is_file():
            assert signature not in path.read_bytes(), path
