"""Submission with swaks (Debian's SMTP test tool), verifying the server certificate against the
data directory's root CA; the message is then read with imaplib."""

from __future__ import annotations

import subprocess
import uuid

from bench.harness import ServerProcess
from tests.e2e.people import ALICE, BOB
from tests.support.mail import find_by_subject, inbox_messages, strip_trace


def swaks_send(
    swaks: str, server: ServerProcess, subject: str, *tls: str, port: int
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            swaks,
            "--server", "127.0.0.1", "--port", str(port),
            *tls,
            "--tls-verify", "--tls-ca-path", str(server.ca_file),
            "--tls-sni", "localhost",
            "--auth", "PLAIN",
            "--auth-user", ALICE.address, "--auth-password", ALICE.password,
            "--ehlo", "client.test",
            "--from", ALICE.address, "--to", BOB.address,
            "--header", f"Subject: {subject}",
            "--body", "Envoyé avec swaks.",
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def assert_delivered(server: ServerProcess, subject: str) -> None:
    found = find_by_subject(inbox_messages(server, BOB.address, BOB.password), subject)
    assert len(found) == 1
    assert b"Envoy\xc3\xa9 avec swaks." in strip_trace(found[0])


def test_swaks_starttls_auth_plain(swaks: str, server: ServerProcess) -> None:
    subject = f"swaks-starttls-{uuid.uuid4().hex[:12]}"
    proc = swaks_send(swaks, server, subject, "--tls", port=server.smtp_port)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The transcript: "->"/"<-" in plaintext, "~>"/"<~" inside TLS. AUTH only inside.
    assert " -> STARTTLS" in proc.stdout
    assert " ~> AUTH PLAIN" in proc.stdout
    assert "<~  235" in proc.stdout
    assert "<~  250" in proc.stdout
    assert_delivered(server, subject)


def test_swaks_implicit_tls(swaks: str, server: ServerProcess) -> None:
    subject = f"swaks-tls-on-connect-{uuid.uuid4().hex[:12]}"
    proc = swaks_send(swaks, server, subject, "--tls-on-connect", port=server.smtp_tls_port)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "<~  235" in proc.stdout
    assert_delivered(server, subject)
