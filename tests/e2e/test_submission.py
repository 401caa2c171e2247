"""Submission with Python's smtplib: STARTTLS on 2587, implicit TLS on 2465, AUTH PLAIN and
LOGIN; what was sent comes back from IMAP byte for byte (8-bit UTF-8 and 5 MiB included)."""

from __future__ import annotations

import random
import uuid

from bench.harness import ServerProcess
from tests.e2e.people import ALICE, BOB, CAROL, Account
from tests.support.mail import (
    Attachment,
    find_by_subject,
    inbox_messages,
    make_message,
    smtp_session,
    strip_trace,
)
from tests.support.servers import MAX_MESSAGE_SIZE


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def read_back(server: ServerProcess, account: Account, subject: str) -> bytes:
    """The one message with this subject in the account's INBOX, trace fields stripped."""
    found = find_by_subject(inbox_messages(server, account.address, account.password), subject)
    assert len(found) == 1, f"{len(found)} messages with subject {subject!r}"
    return strip_trace(found[0])


def test_ehlo_before_and_after_starttls(server: ServerProcess) -> None:
    # S: 220 mail.hygie.test ESMTP
    # C: EHLO client.test          S: 250-STARTTLS …
    # C: STARTTLS                  S: 220
    # C: EHLO client.test          S: 250-AUTH PLAIN LOGIN, 250-SIZE 8388608, 250-8BITMIME
    with smtp_session(server, None, None) as client:
        assert client.has_extn("auth")
        assert set(client.esmtp_features["auth"].upper().split()) >= {"PLAIN", "LOGIN"}
        assert int(client.esmtp_features["size"]) == MAX_MESSAGE_SIZE
        assert client.has_extn("8bitmime")
        assert not client.has_extn("starttls"), "STARTTLS offered again inside TLS"


def test_starttls_auth_plain_round_trip(server: ServerProcess) -> None:
    subject = unique("plain")
    sent = make_message(ALICE.address, [BOB.address], subject, "Bonjour Bob,\n\nCR joint.\n")
    with smtp_session(server, None, None) as client:
        client.user, client.password = ALICE.address, ALICE.password
        code, _ = client.auth("PLAIN", client.auth_plain)
        assert code == 235
        assert client.sendmail(ALICE.address, [BOB.address], sent) == {}
    assert read_back(server, BOB, subject) == sent


def test_starttls_auth_login_round_trip(server: ServerProcess) -> None:
    subject = unique("login")
    sent = make_message(ALICE.address, [BOB.address], subject, "Par AUTH LOGIN.\n")
    with smtp_session(server, None, None) as client:
        client.user, client.password = ALICE.address, ALICE.password
        code, _ = client.auth("LOGIN", client.auth_login, initial_response_ok=False)
        assert code == 235
        assert client.sendmail(ALICE.address, [BOB.address], sent) == {}
    assert read_back(server, BOB, subject) == sent


def test_implicit_tls_round_trip(server: ServerProcess) -> None:
    subject = unique("implicit-tls")
    sent = make_message(ALICE.address, [BOB.address], subject, "Over port 2465.\n")
    with smtp_session(server, ALICE.address, ALICE.password, implicit_tls=True) as client:
        assert client.sendmail(ALICE.address, [BOB.address], sent) == {}
    assert read_back(server, BOB, subject) == sent


def test_two_recipients_two_copies(server: ServerProcess) -> None:
    subject = unique("both")
    sent = make_message(ALICE.address, [BOB.address, CAROL.address], subject, "Pour vous deux.\n")
    with smtp_session(server, ALICE.address, ALICE.password) as client:
        assert client.sendmail(ALICE.address, [BOB.address, CAROL.address], sent) == {}
    assert read_back(server, BOB, subject) == sent
    assert read_back(server, CAROL, subject) == sent


def test_8bit_utf8_body_round_trips(server: ServerProcess) -> None:
    subject = unique("8bit")
    body = (
        "Compte rendu : fièvre à 39,5 °C, œdème résorbé — contrôle à J+7.\n"
        "Ελληνικά, Русский, 日本語, emoji 🩺 and a NUL-free\tTAB.\n"
        "..leading dots survive dot-stuffing\n.\n"
    )
    sent = make_message(ALICE.address, [CAROL.address], subject, body)
    assert b"\xc3\xa8" in sent  # really 8-bit on the wire
    with smtp_session(server, ALICE.address, ALICE.password) as client:
        assert client.has_extn("8bitmime")
        client.sendmail(ALICE.address, [CAROL.address], sent, mail_options=["BODY=8BITMIME"])
    assert read_back(server, CAROL, subject) == sent


def test_5_mib_attachment_round_trips(server: ServerProcess) -> None:
    subject = unique("5mib")
    payload = random.Random(20251117).randbytes(5 * 1024 * 1024)
    sent = make_message(
        ALICE.address,
        [CAROL.address],
        subject,
        "Imagerie jointe (5 Mio). Résultat : normal.\n",
        attachments=[Attachment("irm.dcm", payload, "application/dicom")],
    )
    assert len(sent) > 5 * 1024 * 1024
    with smtp_session(server, ALICE.address, ALICE.password) as client:
        client.sendmail(
            ALICE.address,
            [CAROL.address],
            sent,
            mail_options=[f"SIZE={len(sent)}", "BODY=8BITMIME"],
        )
    got = read_back(server, CAROL, subject)
    assert len(got) == len(sent)
    assert got == sent
