"""Relay to a peer that offers less (issue 24 item 1): an old-style MTA on mutual TLS that
offers neither SMTPUTF8, 8BITMIME nor DSN (aiosmtpd in this process, with a SERV certificate
from the operator's CA). What a message needs and the peer lacks is never sent: the sender
gets a failure DSN that says why (RFC 6531 §3.2, RFC 6152 §3); a success notice asked for on
a message the peer did take is "relayed", from us (RFC 3461 §4)."""

from __future__ import annotations

import email
import email.policy
import smtplib
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from bench.harness import ServerProcess, free_ports
from server.outbound.trust import render_trusted_domains
from tests.e2e.test_relay import PASSWORD, messages, send_raw
from tests.support.servers import stop_server

ALICE = "alice@hygie.test"
PEER_DOMAIN = "ancien.test"


@dataclass
class Received:
    sender: str
    options: list[str]
    recipients: list[str]
    rcpt_options: list[str]
    content: bytes


@dataclass
class SevenBitPeer:
    """aiosmtpd hooks: EHLO without 8BITMIME (SMTPUTF8 is off, DSN never offered); 8-bit
    data is refused, as RFC 6152 lets a server that did not offer 8BITMIME do."""

    received: list[Received] = field(default_factory=list)

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
        responses: list[str],
    ) -> list[str]:  # fmt: skip
        session.host_name = hostname
        return [r for r in responses if "8BITMIME" not in r]

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        if not content.isascii():
            return "554 5.6.1 8-bit data refused: no 8BITMIME here"
        self.received.append(
            Received(str(envelope.mail_from), list(envelope.mail_options),
                     list(envelope.rcpt_tos), list(envelope.rcpt_options), content)
        )  # fmt: skip
        return "250 2.0.0 OK"


@dataclass
class Peer:
    operator: ServerProcess
    handler: SevenBitPeer


def peer_context(operator: ServerProcess, cert: Path, key: Path) -> ssl.SSLContext:
    """The peer's side of mutual TLS: its certificate, and the operator's CA for clients."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.load_verify_locations(cafile=str(operator.ca_file))
    context.load_verify_locations(cafile=str(operator.data_dir / "pki" / "intermediate-ca.crt"))
    context.verify_mode = ssl.CERT_REQUIRED
    return context


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    tmp = tmp_path_factory.mktemp("peers")
    (port,) = free_ports(1)
    a = ServerProcess(users={ALICE: PASSWORD}, domain="hygie.test", hostname="localhost",
                      base_dir=tmp / "a")  # fmt: skip
    a.init()
    (a.data_dir / "trust" / "liste-blanche.xml").write_bytes(
        render_trusted_domains(["hygie.test", PEER_DOMAIN])
    )
    a.extra_env.update({
        "HYGIE_RELAY_ROUTES": f"{PEER_DOMAIN}=localhost:{port}",
        "HYGIE_RELAY_POLL_SECONDS": "0.2",
    })  # fmt: skip
    a.hygie("pki", "issue", "server", "localhost", "--out", str(tmp / "peer"))
    context = peer_context(a, tmp / "peer" / "localhost.crt", tmp / "peer" / "localhost.key")
    handler = SevenBitPeer()
    kwargs: dict[str, Any] = {"tls_context": context, "require_starttls": True,
                              "enable_SMTPUTF8": False, "decode_data": False}  # fmt: skip
    controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        a.start()
        yield Peer(a, handler)
        stop_server(a)
    finally:
        controller.stop()


def report(srv: ServerProcess, marker: str, timeout: float = 20) -> str:
    """The DSN to alice about the message whose subject has ``marker``."""
    deadline = time.monotonic() + timeout
    while True:
        found = [r for r in messages(srv, ALICE, "Delivery") if marker.encode() in r]
        if found:
            parsed = email.message_from_bytes(found[-1], policy=email.policy.default)
            assert parsed.get_content_type() == "multipart/report"
            human = next(p for p in parsed.walk() if p.get_content_type() == "text/plain")
            # The human part (decoded from its quoted-printable), then the whole report.
            return str(human.get_content()) + found[-1].decode("utf-8", "replace")
        assert time.monotonic() < deadline, f"no delivery report about {marker!r}"
        time.sleep(0.3)


def mail(to: str, subject: str, body: str = "Bonjour.\r\n", charset: str = "us-ascii") -> bytes:
    return (f"From: <{ALICE}>\r\nTo: <{to}>\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset={charset}\r\n"
            f"Content-Transfer-Encoding: 8bit\r\n\r\n{body}").encode()  # fmt: skip


def test_utf8_address_to_a_peer_without_smtputf8_fails_with_a_dsn(peer: Peer) -> None:
    to = f"zoé@{PEER_DOMAIN}"
    send_raw(peer.operator, ALICE, to, mail(to, "adresse-utf8"), ["SMTPUTF8"])
    text = report(peer.operator, "adresse-utf8")
    assert "Action: failed" in text and "Status: 5.6.7" in text
    # The human part says why, as our decision (not a reply of the peer).
    assert "reason: 5.6.7 not sent: localhost does not offer SMTPUTF8 (RFC 6531)" in text
    assert "Diagnostic-Code: x-hygie; 5.6.7" in text
    assert not [r for r in peer.handler.received if b"adresse-utf8" in r.content]


def test_utf8_header_to_a_peer_without_smtputf8_fails_with_a_dsn(peer: Peer) -> None:
    to = f"bob@{PEER_DOMAIN}"
    raw = mail(to, "en-tête-utf8 Résultats", charset="utf-8")
    send_raw(peer.operator, ALICE, to, raw, ["SMTPUTF8", "BODY=8BITMIME"])
    text = report(peer.operator, "en-tête-utf8")
    assert "Action: failed" in text and "Status: 5.6.9" in text
    assert "which UTF-8 header fields need" in text
    assert not [r for r in peer.handler.received if "en-tête-utf8".encode() in r.content]


def test_8bit_body_to_a_peer_without_8bitmime_fails_with_a_dsn(peer: Peer) -> None:
    """Refused, not converted to 7 bits (docs/decisions.md: the DKIM signature would break)."""
    to = f"bob@{PEER_DOMAIN}"
    raw = mail(to, "corps-8bits", body="Posologie : 1 comprimé le soir.\r\n", charset="utf-8")
    send_raw(peer.operator, ALICE, to, raw, ["BODY=8BITMIME"])
    text = report(peer.operator, "corps-8bits")
    assert "Action: failed" in text and "Status: 5.6.3" in text
    assert "does not offer 8BITMIME (RFC 6152), which the 8-bit body needs" in text
    assert not [r for r in peer.handler.received if b"corps-8bits" in r.content]


def test_success_notice_from_a_peer_without_dsn_is_relayed(peer: Peer) -> None:
    """The peer offers no DSN: A sends it no NOTIFY (it would refuse the parameter) and
    tells the sender "relayed" itself."""
    to = f"bob@{PEER_DOMAIN}"
    with smtplib.SMTP("127.0.0.1", peer.operator.smtp_port, timeout=30) as smtp:
        smtp.starttls(context=peer.operator.ssl_context())
        smtp.login(ALICE, PASSWORD)
        smtp.sendmail(ALICE, [to], mail(to, "ascii-relayed"),
                      mail_options=["RET=HDRS", "ENVID=relayed-1"],
                      rcpt_options=["NOTIFY=SUCCESS,FAILURE"])  # fmt: skip
    text = report(peer.operator, "relayed-1")
    assert "Action: relayed" in text and "Remote-MTA: dns; localhost" in text
    got = [r for r in peer.handler.received if b"ascii-relayed" in r.content]
    assert len(got) == 1
    assert got[0].options == [] and got[0].rcpt_options == []  # no DSN parameter went
    assert got[0].recipients == [to]
