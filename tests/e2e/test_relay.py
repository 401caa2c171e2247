"""Two operators in one test (issue 6 item 7): two ``hygie serve`` instances, each with its own
CA, domain and trusted-domain list, relay mail both ways over mutual TLS; an unlisted domain, a
revoked peer certificate and a certificate from an unknown CA are refused before DATA; with the
peer down, mail waits in the queue and goes when it comes back; past its lifetime the sender
gets a DSN."""

from __future__ import annotations

import email
import email.policy
import imaplib
import json
import smtplib
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.federation import operator, trust_each_other
from bench.harness import ServerProcess, free_ports
from pki.ca import init_ca, write_server_credentials
from server.cli.main import main as hygie_main
from server.outbound.dkim import DkimSigner
from storage.usage import month_of
from tests.support.servers import stop_server

PASSWORD = "relay-test-password-1"
ALICE = "alice@hygie.test"  # operator A
BOB = "bob@autre.test"  # operator B
GONE = "nobody@disparu.test"  # listed, routed to a closed port


@dataclass
class Federation:
    a: ServerProcess
    b: ServerProcess


def trust(a: ServerProcess, b: ServerProcess, closed_port: int) -> None:
    trust_each_other(
        a, b, extra_domains=["disparu.test"],
        extra_routes=[f"disparu.test=localhost:{closed_port}"],
        env={
            "HYGIE_RELAY_RETRY_BASE_SECONDS": "1",
            "HYGIE_RELAY_RETRY_MAX_SECONDS": "1",
            "HYGIE_RELAY_CRL_REFRESH_SECONDS": "1",
            "HYGIE_RELAY_POLL_SECONDS": "0.2",
        },
    )  # fmt: skip
    # A gives up quickly (the lifetime test); B keeps trying and says so (the peer-down test).
    a.extra_env["HYGIE_RELAY_LIFETIME_SECONDS"] = "6"
    b.extra_env["HYGIE_RELAY_DELAY_NOTICE_SECONDS"] = "1"


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    tmp = tmp_path_factory.mktemp("federation")
    a = operator("hygie.test", {ALICE: PASSWORD}, tmp)
    b = operator("autre.test", {BOB: PASSWORD}, tmp)
    (closed_port,) = free_ports(1)
    trust(a, b, closed_port)
    a.start()
    b.start()
    yield Federation(a, b)
    for srv in (a, b):
        stop_server(srv)


def send(srv: ServerProcess, sender: str, to: str, subject: str, **options: str) -> None:
    body = f"From: <{sender}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\r\nBonjour.\r\n"
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=30) as smtp:
        smtp.starttls(context=srv.ssl_context())
        smtp.login(sender, PASSWORD)
        smtp.sendmail(sender, [to], body.encode(),
                      mail_options=options.get("mail", "").split(),
                      rcpt_options=options.get("rcpt", "").split())  # fmt: skip


def wait_for(srv: ServerProcess, user: str, subject: str, timeout: float = 20) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        imap = imaplib.IMAP4_SSL("localhost", srv.imap_tls_port, ssl_context=srv.ssl_context())
        imap.login(user, PASSWORD)
        imap.select("INBOX")
        _, found = imap.search("UTF-8", "SUBJECT", f'"{subject}"'.encode())
        if found[0]:
            _, data = imap.fetch(found[0].split()[-1], "(BODY.PEEK[])")
            imap.logout()
            raw = data[0][1]
            assert isinstance(raw, bytes)
            return raw
        imap.logout()
        assert time.monotonic() < deadline, f"{subject!r} did not reach {user}"
        time.sleep(0.3)


def test_mail_goes_both_ways(federation: Federation) -> None:
    send(federation.a, ALICE, BOB, "de A vers B")
    raw = wait_for(federation.b, BOB, "de A vers B")
    assert b"with ESMTPS" in raw  # B's trace of the relay hop
    # A signed it (DKIM), B verified it and says so, with the certificate that admitted A.
    assert b"DKIM-Signature:" in raw and b"d=hygie.test" in raw
    results = raw.split(b"Authentication-Results:", 1)[1].split(b"\r\n\r\n", 1)[0]
    assert b"dkim=pass header.d=hygie.test" in results
    assert b"x-tls=pass" in results
    send(federation.b, BOB, ALICE, "de B vers A")
    wait_for(federation.a, ALICE, "de B vers A")


def usage(srv: ServerProcess) -> dict[str, int]:
    """This month's totals of ``hygie report usage`` (issue 11 item 4), in this process."""
    month = month_of(datetime.now(UTC))
    result = CliRunner().invoke(hygie_main, ["--data", str(srv.data_dir), "report", "usage",
                                             "--month", month, "--format", "json"],
                                env=srv.env())  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["rows"]
    return {k: v for k, v in rows[0].items() if isinstance(v, int)} if rows else {}


def test_relayed_mail_is_counted_on_both_sides(federation: Federation) -> None:
    """Usage indicators across operators: A counts a message sent, B one received (by the
    relay); nothing else moves."""
    before_a, before_b = usage(federation.a), usage(federation.b)
    send(federation.a, ALICE, BOB, "compté")
    wait_for(federation.b, BOB, "compté")
    deadline = time.monotonic() + 10
    while usage(federation.b).get("messages_received", 0) == before_b.get("messages_received", 0):
        assert time.monotonic() < deadline, "B did not count the relayed message"
        time.sleep(0.1)
    after_a, after_b = usage(federation.a), usage(federation.b)
    assert after_a["messages_sent"] - before_a.get("messages_sent", 0) == 1
    assert after_a.get("messages_received", 0) == before_a.get("messages_received", 0)
    assert after_b["messages_received"] - before_b.get("messages_received", 0) == 1
    assert after_b.get("messages_sent", 0) == before_b.get("messages_sent", 0)


def test_success_dsn_when_asked(federation: Federation) -> None:
    send(federation.a, ALICE, BOB, "avec accusé", mail="RET=HDRS ENVID=env-42",
         rcpt="NOTIFY=SUCCESS,FAILURE")  # fmt: skip
    wait_for(federation.b, BOB, "avec accusé")
    report = email.message_from_bytes(
        wait_for(federation.a, ALICE, "Delivery report", timeout=20), policy=email.policy.default
    )
    assert report.get_content_type() == "multipart/report"
    text = report.as_string()
    assert "Action: delivered" in text or "Action: relayed" in text
    assert "env-42" in text


def relay_client(srv: ServerProcess, cert: Path, key: Path) -> smtplib.SMTP:
    smtp = smtplib.SMTP("127.0.0.1", srv.relay_port, timeout=30)
    context = srv.ssl_context()
    context.load_cert_chain(cert, key)
    smtp.starttls(context=context)
    smtp.ehlo("localhost")
    return smtp


def test_forged_signature_and_results_are_caught(federation: Federation) -> None:
    """A message claiming B's verdict and carrying a broken signature, relayed by A's own
    certificate: B drops the forged Authentication-Results and records dkim=fail."""
    a = federation.a.data_dir
    signer = DkimSigner(a / "dkim", "hygie", ["hygie.test"])
    message = f"From: <{ALICE}>\r\nTo: <{BOB}>\r\nSubject: signature cassée\r\n\r\nx\r\n"
    signed = signer.sign(message.encode(), "hygie.test")
    forged = b"Authentication-Results: localhost; dkim=pass header.d=hygie.test\r\n" + signed
    smtp = relay_client(federation.b, a / "tls" / "server.crt", a / "tls" / "server.key")
    smtp.sendmail(ALICE, [BOB], forged.replace(b"\r\n\r\nx\r\n", b"\r\n\r\ny\r\n"))
    smtp.quit()
    raw = wait_for(federation.b, BOB, "signature cassée")
    results = [part.split(b"\r\n\r\n", 1)[0] for part in raw.split(b"Authentication-Results:")[1:]]
    assert len(results) == 1 and b"dkim=fail header.d=hygie.test" in results[0]


def test_unlisted_domain_is_refused_before_data(federation: Federation) -> None:
    b = federation.b.data_dir / "tls"
    smtp = relay_client(federation.a, b / "server.crt", b / "server.key")
    assert "dsn" in smtp.esmtp_features
    code, text = smtp.docmd("MAIL", "FROM:<someone@pas-sur-la-liste.test>")
    assert code == 550 and b"trusted-domain list" in text
    code, _ = smtp.docmd("MAIL", f"FROM:<{BOB}>")
    assert code == 250
    code, _ = smtp.docmd("RCPT", "TO:<victim@elsewhere.test>")
    assert code == 554  # not an open relay
    code, _ = smtp.docmd("RCPT", "TO:<nobody@hygie.test>")
    assert code == 550
    smtp.quit()


def test_relay_needs_tls_and_a_certificate(federation: Federation) -> None:
    with smtplib.SMTP("127.0.0.1", federation.a.relay_port, timeout=30) as smtp:
        smtp.ehlo("localhost")
        code, _ = smtp.docmd("MAIL", f"FROM:<{BOB}>")
        assert code == 530
    smtp = smtplib.SMTP("127.0.0.1", federation.a.relay_port, timeout=30)
    with pytest.raises((ssl.SSLError, smtplib.SMTPServerDisconnected, ConnectionError)):
        smtp.starttls(context=federation.a.ssl_context())
        smtp.ehlo("localhost")
        smtp.docmd("MAIL", f"FROM:<{BOB}>")


def test_unknown_ca_is_refused(federation: Federation, tmp_path: Path) -> None:
    rogue = init_ca(tmp_path / "rogue", b"rogue operator passphrase", operator="ROGUE")
    issued = rogue.issue_server(["localhost"], ["127.0.0.1"])
    cert, key = tmp_path / "rogue.crt", tmp_path / "rogue.key"
    write_server_credentials(issued, cert, key)
    with pytest.raises((ssl.SSLError, smtplib.SMTPServerDisconnected, ConnectionError)) as caught:
        smtp = relay_client(federation.a, cert, key)
        smtp.docmd("MAIL", f"FROM:<{BOB}>")
    assert "unknown ca" in str(caught.value).lower().replace("_", " ") or isinstance(
        caught.value, smtplib.SMTPServerDisconnected | ConnectionError
    )


def test_revoked_peer_certificate_is_refused(federation: Federation, tmp_path: Path) -> None:
    b = federation.b
    out = b.hygie("pki", "issue", "server", "localhost", "--out", str(tmp_path)).stdout.decode()
    serial = out.split("issued serial ", 1)[1].split(":", 1)[0]
    cert, key = tmp_path / "localhost.crt", tmp_path / "localhost.key"
    smtp = relay_client(federation.a, cert, key)
    assert smtp.docmd("MAIL", f"FROM:<{BOB}>")[0] == 250
    smtp.quit()
    b.hygie("pki", "revoke", serial, "--reason", "keyCompromise")
    time.sleep(1.5)  # A re-reads B's CRL once its copy is a second old
    smtp = relay_client(federation.a, cert, key)
    code, text = smtp.docmd("MAIL", f"FROM:<{BOB}>")
    assert code == 554 and b"revoked" in text
    smtp.quit()


def test_mail_waits_while_the_peer_is_down(federation: Federation) -> None:
    a, b = federation.a, federation.b
    a.stop()
    try:
        send(b, BOB, ALICE, "pendant la panne")
        time.sleep(1.5)
        listing = b.hygie("queue", "list").stdout.decode()
        assert ALICE in listing and "tries" in listing
        # After delay_notice_seconds the sender hears that delivery is late (once).
        notice = wait_for(b, BOB, "Delivery delayed", timeout=20).decode(errors="replace")
        assert "Action: delayed" in notice and ALICE in notice
    finally:
        a.start()
    wait_for(a, ALICE, "pendant la panne", timeout=30)
    assert "the queue is empty" in b.hygie("queue", "list").stdout.decode()


def test_sender_is_told_when_the_lifetime_ends(federation: Federation) -> None:
    send(federation.a, ALICE, GONE, "vers un domaine disparu")
    report_raw = wait_for(federation.a, ALICE, "Delivery failure", timeout=40)
    report = email.message_from_bytes(report_raw, policy=email.policy.default)
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    status = report_raw.decode(errors="replace")
    assert report["X-MSS-NIL"]  # every message Hygie writes carries its product reference
    assert "Action: failed" in status and "4.4.7" in status and GONE in status
