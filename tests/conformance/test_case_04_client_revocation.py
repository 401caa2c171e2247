"""MSSanté reference (b) 4, the client side: "a server certificate that is expired, revoked or
not IGC-Santé aborts the connection (ECO.1.1.5/6/10); an expired CRL falls back to the last
valid one".

- Against a running ``hygie serve`` (host name ``localhost``, so that the CRL distribution
  point in its certificate resolves): ``hygie-client send`` works, then the operator revokes
  the server's certificate with ``hygie pki revoke`` and the next ``send`` stops before any
  credential is sent, saying the certificate is revoked.
- The fallback, with a CA of the test's own and its publication point on a real HTTP socket
  whose answers the test chooses: once a valid CRL has been seen, an expired CRL, a CRL
  signed by another CA or no CRL at all leave the last valid one in force; with none kept,
  ``revocation = "require"`` refuses and ``"check"`` lets the TLS checks decide.

Expired and foreign-CA server certificates: tests/pki/test_tls.py (the client trusts the
account's CA file alone) and tests/client/test_send_command.py (one-line failure).
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from bench.harness import ServerProcess
from client_tui.revocation import RevocationChecker, ServerRevoked
from pki.ca import CertificateAuthority, init_ca
from tests.conformance.client_support import client_config, hygie_client
from tests.support.servers import stop_server

pytestmark = pytest.mark.timeout(600)

DOCTOR = "paul.martin@hygie.test"
COLLEAGUE = "claire.martin@hygie.test"
PASSWORD = "case-4-password-1"


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    srv = ServerProcess(users={DOCTOR: PASSWORD, COLLEAGUE: PASSWORD}, hostname="localhost")
    try:
        srv.start()
        yield srv
    finally:
        stop_server(srv)


def test_a_revoked_server_certificate_stops_the_client(server: ServerProcess,
                                                       tmp_path: Path) -> None:  # fmt: skip
    config = client_config(tmp_path / "client.toml", server, DOCTOR)
    body = tmp_path / "body.txt"
    body.write_text("Bonjour\n", encoding="utf-8")
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    args = ["send", "--to", COLLEAGUE, "--subject", "x", "--body-file", str(body)]
    sent = hygie_client(config, *args, secret=PASSWORD, env=env)
    assert sent.returncode == 0, sent.stderr
    assert list((tmp_path / "cache" / "hygie-client" / "crl").glob("*.crl"))  # kept

    cert = x509.load_pem_x509_certificate((server.data_dir / "tls" / "server.crt").read_bytes())
    server.hygie("pki", "revoke", f"{cert.serial_number:X}", "--reason", "keyCompromise")
    refused = hygie_client(config, *args, secret=PASSWORD, env=env)
    assert refused.returncode == 1
    assert "revoked" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1


class Publication:
    """A CA's publication point (CRL, caIssuers) whose answers the test sets."""

    def __init__(self) -> None:
        self.crl = b""
        self.issuer = b""
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = outer.crl if self.path.endswith(".crl") else outer.issuer
                self.send_response(200 if body else 404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[CertificateAuthority, Publication, bytes, Path]]:
    publication = Publication()
    base = f"http://127.0.0.1:{publication.port}/pki"
    ca = init_ca(tmp_path / "pki", b"case-4 passphrase", base_url=base)
    publication.issuer = ca.intermediate_certificate.public_bytes(serialization.Encoding.DER)
    leaf = ca.issue_server(["mail.hygie.test"]).certificate
    yield ca, publication, leaf.public_bytes(serialization.Encoding.DER), ca.files.root_cert
    publication.httpd.shutdown()


def der(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(serialization.Encoding.DER)


def test_the_last_valid_crl_stays_in_force(
    world: tuple[CertificateAuthority, Publication, bytes, Path], tmp_path: Path
) -> None:
    ca, publication, leaf, root = world
    checker = RevocationChecker(root, tmp_path / "cache")
    publication.crl = der(ca.crl())
    checker.check(leaf)  # a valid CRL without it: the connection goes on
    ca.revoke(x509.load_der_x509_certificate(leaf).serial_number, x509.ReasonFlags.key_compromise)
    publication.crl = der(ca.crl())
    with pytest.raises(ServerRevoked, match="revoked"):
        checker.check(leaf)

    # Later the point serves an expired CRL, another CA's, or nothing readable: the last
    # valid CRL (which lists the certificate) still decides.
    past = datetime.now(UTC) - timedelta(days=3)
    other = init_ca(tmp_path / "other", b"another passphrase")
    for served in (der(ca.crl(now=past, next_update_hours=24)), der(other.crl()), b"garbage"):
        publication.crl = served
        with pytest.raises(ServerRevoked, match="revoked"):
            RevocationChecker(root, tmp_path / "cache").check(leaf)


def test_without_any_valid_crl(
    world: tuple[CertificateAuthority, Publication, bytes, Path], tmp_path: Path
) -> None:
    ca, publication, leaf, root = world
    publication.crl = der(ca.crl(now=datetime.now(UTC) - timedelta(days=3)))  # expired
    RevocationChecker(root, tmp_path / "empty").check(leaf)  # "check": TLS decides
    with pytest.raises(ServerRevoked, match="cannot be checked"):
        RevocationChecker(root, tmp_path / "empty", strict=True).check(leaf)
