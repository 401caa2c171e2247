"""Token login (SASL OAUTHBEARER, RFC 7628, and XOAUTH2) against a running ``hygie serve``:
tokens from ``hygie token issue`` log in over SMTP and IMAP; expired, foreign-audience,
foreign-issuer and badly signed tokens get the RFC 7628 error exchange and a failure; tokens
never reach the log (issue 4 items 5, 7)."""

from __future__ import annotations

import base64
import imaplib
import json
import smtplib
import time
from collections.abc import Iterator

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from bench.harness import ServerProcess
from server.auth.oauth import DevIssuer
from server.config import load_config
from tests.support.servers import start_server, stop_server

CLAIRE = "claire@hygie.test"
MARC = "marc@hygie.test"
PASSWORD = "unused-password-123"


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    srv = start_server(request, "sqlite", {CLAIRE: PASSWORD, MARC: PASSWORD})
    yield srv
    stop_server(srv)


def token(server: ServerProcess, subject: str = CLAIRE, ttl: int = 300) -> str:
    return server.hygie("token", "issue", subject, "--ttl", str(ttl)).stdout.decode().strip()


def issuer(server: ServerProcess) -> DevIssuer:
    return DevIssuer(load_config(server.data_dir, server.env()))


def oauthbearer(authzid: str, value: str) -> str:
    raw = f"n,a={authzid},\x01host=localhost\x01port=587\x01auth=Bearer {value}\x01\x01"
    return base64.b64encode(raw.encode()).decode()


def xoauth2(user: str, value: str) -> bytes:
    return f"user={user}\x01auth=Bearer {value}\x01\x01".encode()


def smtp(server: ServerProcess) -> smtplib.SMTP:
    conn = smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30)
    conn.starttls(context=server.ssl_context())
    conn.ehlo("client.test")
    return conn


def test_smtp_oauthbearer_and_send(server: ServerProcess) -> None:
    conn = smtp(server)
    assert "OAUTHBEARER" in conn.esmtp_features["auth"].split()
    assert "XOAUTH2" in conn.esmtp_features["auth"].split()
    code, _ = conn.docmd("AUTH", "OAUTHBEARER " + oauthbearer(CLAIRE, token(server)))
    assert code == 235
    refused = conn.sendmail(CLAIRE, [MARC], b"Subject: par jeton\r\n\r\nBonjour.\r\n")
    assert refused == {}
    conn.quit()


def test_imap_xoauth2_like_thunderbird(server: ServerProcess) -> None:
    value = token(server, MARC)
    imap = imaplib.IMAP4_SSL("localhost", server.imap_tls_port, ssl_context=server.ssl_context())
    assert "AUTH=XOAUTH2" in imap.capabilities and "AUTH=OAUTHBEARER" in imap.capabilities
    typ, _ = imap.authenticate("XOAUTH2", lambda _: xoauth2(MARC, value))
    assert typ == "OK"
    typ, _ = imap.select("INBOX")
    assert typ == "OK"
    imap.logout()


def bad_tokens(server: ServerProcess) -> dict[str, str]:
    dev = issuer(server)
    impostor = ec.generate_private_key(ec.SECP256R1())
    kid = jwt.get_unverified_header(dev.issue(CLAIRE, ttl_seconds=60))["kid"]
    now = int(time.time())
    claims = {"iss": dev.config.oauth_issuer, "aud": dev.config.oauth.audience, "sub": CLAIRE,
              "nbf": now, "exp": now + 60}  # fmt: skip
    return {
        "token expired": dev.issue(CLAIRE, ttl_seconds=-300),
        "token is for another audience": dev.issue(CLAIRE, ttl_seconds=60, audience="webmail"),
        "token from another issuer": dev.issue(
            CLAIRE, ttl_seconds=60, issuer="https://idp.example/realms/x"
        ),
        "bad token signature": jwt.encode(
            claims, impostor, algorithm="ES256", headers={"kid": kid}
        ),
    }


def test_bad_tokens_get_the_rfc7628_error_exchange(server: ServerProcess) -> None:
    for reason, value in bad_tokens(server).items():
        conn = smtp(server)
        code, challenge = conn.docmd("AUTH", "OAUTHBEARER " + oauthbearer(CLAIRE, value))
        assert code == 334, (reason, code, challenge)
        error = json.loads(base64.b64decode(challenge))
        assert error["status"] == "invalid_token" and error["schemes"] == "bearer"
        code, text = conn.docmd(base64.b64encode(b"\x01").decode())
        assert code == 535 and reason.encode() in text, (reason, text)
        conn.quit()

        imap = imaplib.IMAP4_SSL("localhost", server.imap_tls_port,
                                 ssl_context=server.ssl_context())  # fmt: skip
        challenges: list[bytes] = []

        def answer(challenge: bytes, value: str = value, seen: list[bytes] = challenges) -> bytes:
            seen.append(challenge)
            return b"\x01" if len(seen) > 1 else xoauth2(CLAIRE, value)

        with pytest.raises(imaplib.IMAP4.error, match=reason):
            imap.authenticate("XOAUTH2", answer)
        assert json.loads(challenges[-1])["status"] == "401"
        imap.logout()


def test_token_for_one_mailbox_cannot_open_another(server: ServerProcess) -> None:
    conn = smtp(server)
    code, _ = conn.docmd("AUTH", "OAUTHBEARER " + oauthbearer(MARC, token(server, CLAIRE)))
    assert code == 334
    code, text = conn.docmd("AQ==")
    assert code == 535 and b"not allowed to use this mailbox" in text
    conn.quit()


def test_tokens_never_reach_the_log(server: ServerProcess) -> None:
    values = [token(server), *bad_tokens(server).values()]
    conn = smtp(server)
    conn.docmd("AUTH", "OAUTHBEARER " + oauthbearer(CLAIRE, values[0]))
    conn.quit()
    text = server.log_tail(1_000_000)
    for value in values:
        for part in value.split("."):
            assert part not in text


def test_malformed_messages_get_501(server: ServerProcess) -> None:
    conn = smtp(server)
    garbage = base64.b64encode(b"no gs2 header at all").decode()
    code, _ = conn.docmd("AUTH", "OAUTHBEARER " + garbage)
    assert code == 501
    code, _ = conn.docmd("AUTH", "XOAUTH2 !!!notbase64")
    assert code == 501
    conn.quit()
