"""MSSanté reference (b) 16, the local IGC: "issues SERV SSL_SERV (serverAuth, SAN=FQDN) and
ORG AUTH_CLI (clientAuth, OU=3<SIRET>); publishes a daily CRL; answers OCSP; revocation shows
up in both within one cycle".

Against a running ``hygie serve`` whose clock the test moves (``[server] test_mode`` and
``test_clock_file``): the CRL published at ``/pki/crl/intermediate.crl`` is valid 24 hours;
it is kept while more than 12 hours are left, and a new one (next CRL number, issued at the
new time, 24 hours again) is written once fewer are; a revocation is in the CRL and the OCSP
answer at once. The certificates' profiles are tests/pki/test_ca.py's (docs/conformance.md).
"""

from __future__ import annotations

import datetime as dt
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from bench.harness import ServerProcess
from tests.support.servers import start_server, stop_server

pytestmark = pytest.mark.timeout(600)

START = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=1)


@pytest.fixture(scope="module")
def clock(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clock") / "now"
    path.write_text(START.isoformat(), "ascii")
    return path


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest, clock: Path) -> Iterator[ServerProcess]:
    env = {"HYGIE_SERVER_TEST_MODE": "true", "HYGIE_SERVER_TEST_CLOCK_FILE": str(clock)}
    srv = start_server(request, "sqlite", {}, env)
    yield srv
    stop_server(srv)


def fetch_crl(server: ServerProcess) -> x509.CertificateRevocationList:
    url = f"http://127.0.0.1:{server.pki_http_port}/pki/crl/intermediate.crl"
    with urllib.request.urlopen(url, timeout=30) as response:
        return x509.load_der_x509_crl(response.read())


def number(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def test_the_crl_is_reissued_daily(server: ServerProcess, clock: Path) -> None:
    # The first request at START finds the CRL written at start-up (real time) short of 12
    # hours from START, and writes the CRL of START's day.
    first = fetch_crl(server)
    assert first.last_update_utc == START
    assert first.next_update_utc == START + dt.timedelta(hours=24)

    clock.write_text((START + dt.timedelta(hours=11, minutes=59)).isoformat(), "ascii")
    assert number(fetch_crl(server)) == number(first)  # 12 hours and more left: kept

    later = START + dt.timedelta(hours=12, minutes=1)
    clock.write_text(later.isoformat(), "ascii")
    second = fetch_crl(server)
    assert number(second) == number(first) + 1
    assert second.last_update_utc == later
    assert second.next_update_utc == later + dt.timedelta(hours=24)
    clock.write_text((later + dt.timedelta(hours=1)).isoformat(), "ascii")
    assert number(fetch_crl(server)) == number(second)


def ocsp_status(server: ServerProcess, leaf: x509.Certificate,
                issuer: x509.Certificate) -> ocsp.OCSPCertStatus:  # fmt: skip
    request = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1()).build()  # noqa: S303
    http = urllib.request.Request(
        f"http://127.0.0.1:{server.pki_http_port}/pki/ocsp",
        data=request.public_bytes(serialization.Encoding.DER),
        headers={"Content-Type": "application/ocsp-request"},
    )
    with urllib.request.urlopen(http, timeout=30) as response:  # noqa: S310
        answer = ocsp.load_der_ocsp_response(response.read())
    assert answer.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    return answer.certificate_status


def test_a_revocation_shows_in_the_crl_and_ocsp_at_once(server: ServerProcess,
                                                        tmp_path: Path) -> None:  # fmt: skip
    out = server.hygie(
        "pki", "issue", "person", "--rpps", "10003456789", "--given-name", "Jean",
        "--surname", "Dupont", "--out", str(tmp_path), "--passphrase-stdin",
        input=b"correct horse\n",
    ).stdout.decode()  # fmt: skip
    serial = out.split("issued serial ", 1)[1].split(":", 1)[0]
    leaf = x509.load_pem_x509_certificate((tmp_path / "810003456789.crt").read_bytes())
    issuer = x509.load_pem_x509_certificate(
        (server.data_dir / "pki" / "intermediate-ca.crt").read_bytes()
    )
    assert ocsp_status(server, leaf, issuer) == ocsp.OCSPCertStatus.GOOD
    assert fetch_crl(server).get_revoked_certificate_by_serial_number(leaf.serial_number) is None
    server.hygie("pki", "revoke", serial, "--reason", "keyCompromise")
    assert ocsp_status(server, leaf, issuer) == ocsp.OCSPCertStatus.REVOKED
    revoked = fetch_crl(server).get_revoked_certificate_by_serial_number(leaf.serial_number)
    assert revoked is not None
