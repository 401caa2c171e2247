"""Certificate login (SASL EXTERNAL, RFC 4422 Appendix A) against a running ``hygie serve``,
with real clients: ``openssl s_client``, ``curl``, ``swaks`` (which presents certificates but
knows no EXTERNAL), ``smtplib`` and ``imaplib`` with a client certificate (issue 4 items 4, 7).

Certificates come from ``hygie pki issue … --mailbox``; the bad ones (expired, not yet valid,
server-only, another CA) are signed in the test with the CA's own key.
"""

from __future__ import annotations

import imaplib
import smtplib
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from bench.harness import ServerProcess
from pki.ca import CertificateAuthority, IssuedCertificate, init_ca
from server.config import CA_SECRET
from storage.crypto import MasterKey
from tests.support import certs
from tests.support.servers import start_server, stop_server
from tests.support.tools import ensure_debian_tool

PIERRE = "pierre.durand@hygie.test"
CABINET = "cabinet.durand@hygie.test"  # a second mailbox of the same practitioner
SECRETARIAT = "secretariat@hygie.test"
READER = "lecteur@hygie.test"
PASSWORD = "reader-password-42"
PASSPHRASE = b"p12-passphrase-1"
RPPS = "10001234567"
SIRET = "73282932000074"


@dataclass(frozen=True)
class Credentials:
    cert: Path
    key: Path
    serial: str = ""


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    srv = start_server(
        request,
        "sqlite",
        {PIERRE: PASSWORD, CABINET: PASSWORD, SECRETARIAT: PASSWORD, READER: PASSWORD},
    )
    yield srv
    stop_server(srv)


def load_ca(server: ServerProcess) -> CertificateAuthority:
    master = MasterKey.load(server.data_dir / "keys" / "master.key")
    return CertificateAuthority.load(server.data_dir / "pki", master.derive_secret(CA_SECRET))


def issue(server: ServerProcess, out: Path, *args: str) -> Credentials:
    """``hygie pki issue …`` then the PEM pair a command-line client reads."""
    proc = server.hygie("pki", "issue", *args, "--out", str(out), "--passphrase-stdin",
                        input=PASSPHRASE + b"\n")  # fmt: skip
    stdout = proc.stdout.decode()
    serial = stdout.split("issued serial ", 1)[1].split(":", 1)[0]
    crt = Path(stdout.split(": ", 1)[1].split(", ")[0])
    key = serialization.load_pem_private_key(crt.with_suffix(".key").read_bytes(), PASSPHRASE)
    plain = crt.with_name(crt.stem + "-plain.key")
    plain.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Credentials(crt, plain, serial)


@pytest.fixture(scope="module")
def pierre(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Credentials:
    out = tmp_path_factory.mktemp("pierre")
    return issue(server, out, "person", "--rpps", RPPS, "--given-name", "Pierre",
                 "--surname", "Durand", "--mailbox", PIERRE, "--mailbox", CABINET)  # fmt: skip


@pytest.fixture(scope="module")
def secretariat(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Credentials:
    out = tmp_path_factory.mktemp("org")
    return issue(server, out, "org", "--service", "Secretariat", "--organisation",
                 "CH Hygie", "--siret", SIRET, "--mailbox", SECRETARIAT)  # fmt: skip


def context(server: ServerProcess, creds: Credentials | None) -> ssl.SSLContext:
    ctx = server.ssl_context()
    if creds is not None:
        ctx.load_cert_chain(creds.cert, creds.key)
    return ctx


def smtp(server: ServerProcess, creds: Credentials | None) -> smtplib.SMTP:
    conn = smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30)
    conn.starttls(context=context(server, creds))
    conn.ehlo("client.test")
    return conn


def s_client(server: ServerProcess, creds: Credentials | None, script: list[str]) -> str:
    """An SMTP dialogue through ``openssl s_client -starttls smtp``, one line at a time."""
    openssl = ensure_debian_tool("openssl")
    cmd = [openssl, "s_client", "-quiet", "-starttls", "smtp", "-connect",
           f"127.0.0.1:{server.smtp_port}", "-CAfile", str(server.ca_file)]  # fmt: skip
    if creds is not None:
        cmd += ["-cert", str(creds.cert), "-key", str(creds.key)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)  # fmt: skip
    assert proc.stdin is not None
    for line in script:
        try:
            proc.stdin.write(line.encode() + b"\r\n")
            proc.stdin.flush()
        except BrokenPipeError:  # the server ended the connection (a refused certificate)
            break
        time.sleep(0.4)
    out, _ = proc.communicate(timeout=30)
    return out.decode(errors="replace")


def test_s_client_with_practitioner_certificate(server: ServerProcess, pierre: Credentials) -> None:
    out = s_client(server, pierre, ["EHLO client.test", f"AUTH EXTERNAL {b64(CABINET)}",
                                    f"MAIL FROM:<{CABINET}>", "QUIT"])  # fmt: skip
    assert "250-AUTH EXTERNAL" in out
    assert "235 2.7.0 Authentication successful" in out
    assert "250 2.1.0 Sender OK" in out


def test_s_client_without_certificate_uses_other_mechanisms(server: ServerProcess) -> None:
    plain = b64(f"\0{READER}\0{PASSWORD}")
    out = s_client(server, None, ["EHLO client.test", "AUTH EXTERNAL =",
                                  f"AUTH PLAIN {plain}", "QUIT"])  # fmt: skip
    auth_line = next(line for line in out.splitlines() if line.startswith("250-AUTH"))
    assert "EXTERNAL" not in auth_line and "PLAIN" in auth_line
    assert "504 5.5.4" in out
    assert "235 2.7.0" in out


def b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


def test_one_identity_many_mailboxes_authzid_chooses(
    server: ServerProcess, pierre: Credentials
) -> None:
    conn = smtp(server, pierre)
    code, text = conn.docmd("AUTH", "EXTERNAL =")
    assert code == 535 and b"several mailboxes" in text
    code, text = conn.docmd("AUTH", f"EXTERNAL {b64(READER)}")
    assert code == 535 and b"not allowed to use this mailbox" in text
    code, _ = conn.docmd("AUTH", f"EXTERNAL {b64(PIERRE)}")
    assert code == 235
    # Logged in as PIERRE: sending as another of his mailboxes is refused.
    code, _ = conn.docmd("MAIL", f"FROM:<{CABINET}>")
    assert code == 553
    conn.quit()


def test_external_initial_response_that_is_not_ascii(
    server: ServerProcess, pierre: Credentials
) -> None:
    """Issue 17: bytes that are not base64 get 501 5.5.2 (not a 451 and a traceback)."""
    conn = smtp(server, pierre)
    conn.send(b"AUTH EXTERNAL \xee\xff\r\n")
    code, text = conn.getreply()
    assert (code, text[:5]) == (501, b"5.5.2")
    code, _ = conn.docmd("AUTH", f"EXTERNAL {b64(PIERRE)}")
    assert code == 235
    conn.quit()
    assert "Traceback" not in server.log_tail()


def test_curl_sends_and_imaplib_reads_with_certificates(
    server: ServerProcess, pierre: Credentials, secretariat: Credentials, tmp_path: Path
) -> None:
    curl = ensure_debian_tool("curl")
    marker = f"cert-login-{time.time_ns()}"
    message = tmp_path / "msg.eml"
    message.write_bytes(
        f"From: <{PIERRE}>\r\nTo: <{SECRETARIAT}>\r\nSubject: {marker}\r\n\r\nBonjour.\r\n".encode()
    )
    proc = subprocess.run(
        [curl, "--silent", "--show-error", "--ssl-reqd", f"smtp://127.0.0.1:{server.smtp_port}",
         "--cacert", str(server.ca_file), "--cert", str(pierre.cert), "--key", str(pierre.key),
         "--login-options", "AUTH=EXTERNAL", "--user", f"{PIERRE}:",
         "--mail-from", PIERRE, "--mail-rcpt", SECRETARIAT, "--upload-file", str(message)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr

    imap = imaplib.IMAP4_SSL("localhost", server.imap_tls_port,
                             ssl_context=context(server, secretariat))  # fmt: skip
    assert "AUTH=EXTERNAL" in imap.capabilities
    typ, _ = imap.authenticate("EXTERNAL", lambda _: b"")
    assert typ == "OK"
    imap.select("INBOX")
    typ, found = imap.search(None, "SUBJECT", marker)
    assert typ == "OK" and found[0], "the message sent with curl is not in the INBOX"
    imap.logout()


def test_swaks_presents_a_certificate(
    server: ServerProcess, pierre: Credentials, swaks: str, tmp_path: Path
) -> None:
    """swaks (20201014) has no EXTERNAL; it shows the certificate is accepted at TLS level and
    the session goes on with a password, and that another CA's certificate is refused."""
    base = [swaks, "--server", f"127.0.0.1:{server.smtp_port}", "--tls",
            "--from", READER, "--to", READER, "--quit-after", "AUTH",
            "--auth", "PLAIN", "--auth-user", READER, "--auth-password", PASSWORD]  # fmt: skip
    good = subprocess.run([*base, "--tls-cert", str(pierre.cert), "--tls-key", str(pierre.key)],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert good.returncode == 0, good.stdout + good.stderr
    assert "AUTH EXTERNAL" in good.stdout and "235 2.7.0" in good.stdout

    foreign = foreign_credentials(tmp_path)
    bad_args = [*base, "--tls-cert", str(foreign.cert), "--tls-key", str(foreign.key)]
    # TLS 1.2: the refusal is part of the handshake, and swaks prints the alert.
    bad = subprocess.run([*bad_args, "--tls-protocol", "tlsv1_2"],
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert bad.returncode != 0
    assert "alert unknown ca" in (bad.stdout + bad.stderr).lower(), bad.stdout + bad.stderr
    # TLS 1.3: the client finishes its side first and learns of the alert on its next read;
    # swaks reports the closed connection, and never gets to AUTH.
    bad = subprocess.run(bad_args, capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode != 0 and "235 2.7.0" not in bad.stdout


def foreign_credentials(directory: Path) -> Credentials:
    other = init_ca(directory / "other-ca", b"another operator's CA", operator="HYGIE")
    issued = other.issue_person(RPPS, "Pierre", "Durand")
    cert, key = certs.write_pair(directory / "foreign", "foreign", issued.certificate, issued)
    return Credentials(cert, key)


def bad_credentials(
    server: ServerProcess, directory: Path
) -> dict[str, tuple[Credentials, IssuedCertificate]]:
    ca = load_ca(server)
    good = ca.issue_person(RPPS, "Pierre", "Durand")
    made = {
        "expired": (certs.expired(ca, good), good),
        "not yet valid": (certs.not_yet_valid(ca, good), good),
        "server-only": (certs.server_only(ca, good), good),
    }
    out: dict[str, tuple[Credentials, IssuedCertificate]] = {}
    for name, (cert, issued) in made.items():
        c, k = certs.write_pair(directory, name.replace(" ", "-"), cert, issued)
        out[name] = (Credentials(c, k), issued)
    return out


def test_bad_certificates_are_refused_with_a_clear_reply(
    server: ServerProcess, pierre: Credentials, tmp_path: Path
) -> None:
    bad = bad_credentials(server, tmp_path)
    for name, reason in (("expired", b"certificate expired"),
                         ("not yet valid", b"certificate not yet valid")):  # fmt: skip
        conn = smtp(server, bad[name][0])
        code, text = conn.docmd("AUTH", f"EXTERNAL {b64(PIERRE)}")
        assert (code, reason in text) == (535, True), (name, code, text)
        conn.quit()
        imap = imaplib.IMAP4_SSL("localhost", server.imap_tls_port,
                                 ssl_context=context(server, bad[name][0]))  # fmt: skip
        with pytest.raises(imaplib.IMAP4.error, match=reason.decode()):
            imap.authenticate("EXTERNAL", lambda _: PIERRE.encode())
        imap.logout()
    # A serverAuth-only certificate, and another CA's: the TLS alert names the reason.
    for creds, alert in ((bad["server-only"][0], "unsupported certificate"),
                         (foreign_credentials(tmp_path), "unknown ca")):  # fmt: skip
        with pytest.raises((ssl.SSLError, smtplib.SMTPServerDisconnected)) as caught:
            conn = smtp(server, creds)
            conn.docmd("AUTH", "EXTERNAL =")
        assert alert in str(caught.value).lower().replace("_", " "), caught.value
        openssl_out = s_client(server, creds, ["EHLO client.test", "QUIT"])
        assert f"alert {alert}" in openssl_out.lower(), openssl_out


def test_unbound_certificate_logs_in_nowhere(server: ServerProcess, tmp_path: Path) -> None:
    loose = issue(server, tmp_path, "person", "--rpps", "10000000007", "--given-name", "Jean",
                  "--surname", "Libre")  # fmt: skip
    conn = smtp(server, loose)
    code, text = conn.docmd("AUTH", "EXTERNAL =")
    assert code == 535 and b"no mailbox is bound" in text
    conn.quit()


def test_revocation_applies_to_new_connections_within_5_seconds(
    server: ServerProcess, tmp_path: Path
) -> None:
    creds = issue(server, tmp_path, "org", "--service", "Laboratoire", "--organisation",
                  "CH Hygie", "--siret", SIRET, "--mailbox", READER)  # fmt: skip
    conn = smtp(server, creds)
    assert conn.docmd("AUTH", "EXTERNAL =")[0] == 235
    conn.quit()
    server.hygie("pki", "revoke", creds.serial, "--reason", "keyCompromise")
    revoked_at = time.monotonic()
    while True:
        conn = smtp(server, creds)
        code, text = conn.docmd("AUTH", "EXTERNAL =")
        conn.close()
        if code == 535:
            break
        assert time.monotonic() - revoked_at < 5, "revocation not applied within 5 s"
        time.sleep(0.2)
    assert b"certificate revoked" in text
    assert time.monotonic() - revoked_at < 5

    log = server.hygie("audit", "--action", "pki.").stdout.decode()
    lines = [line for line in log.splitlines() if creds.serial in line]
    assert any("pki.revoke" in line and "keyCompromise" in line for line in lines), log
    assert any("pki.issue" in line and READER in line for line in lines), log


def test_certificates_and_their_identities_stay_out_of_the_log(
    server: ServerProcess, pierre: Credentials
) -> None:
    conn = smtp(server, pierre)
    assert conn.docmd("AUTH", f"EXTERNAL {b64(PIERRE)}")[0] == 235
    conn.quit()
    text = server.log_tail(100_000)
    assert "8" + RPPS not in text
    cert = x509.load_pem_x509_certificate(pierre.cert.read_bytes())
    assert "Durand".upper() not in text and "Pierre" not in text
    assert f"{cert.serial_number:X}" in text  # the serial is how an operator traces a login
