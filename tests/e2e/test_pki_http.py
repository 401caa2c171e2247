"""The CA's publication point: `openssl ocsp` and the CRL agree with `hygie pki revoke`,
across processes, while `hygie serve` runs (issue 4 item 3)."""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.servers import start_server, stop_server


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    srv = start_server(request, "sqlite", {})
    yield srv
    stop_server(srv)


def ocsp_status(server, leaf: Path, issuer: Path, chain: Path) -> str:  # type: ignore[no-untyped-def]
    out = subprocess.run(
        ["openssl", "ocsp", "-issuer", str(issuer), "-cert", str(leaf), "-CAfile", str(chain),
         "-url", f"http://127.0.0.1:{server.pki_http_port}/pki/ocsp"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "Response verify OK" in out.stderr + out.stdout, out
    return out.stdout.split(f"{leaf}: ", 1)[1].split()[0]


def test_ocsp_and_crl_follow_revocation(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    issued = server.hygie(
        "pki", "issue", "person", "--rpps", "10003456789", "--given-name", "Jean",
        "--surname", "Dupont", "--out", str(tmp_path), "--passphrase-stdin",
        input=b"correct horse\n",
    ).stdout.decode()  # fmt: skip
    serial = issued.split("issued serial ", 1)[1].split(":", 1)[0]
    leaf = tmp_path / "leaf.pem"
    subprocess.run(
        ["openssl", "x509", "-in", str(tmp_path / "810003456789.crt"), "-out", str(leaf)],
        check=True,
    )
    pki = server.data_dir / "pki"
    issuer = pki / "intermediate-ca.crt"
    chain = tmp_path / "chain.pem"
    chain.write_bytes((pki / "root-ca.crt").read_bytes() + issuer.read_bytes())

    assert ocsp_status(server, leaf, issuer, chain) == "good"
    server.hygie("pki", "revoke", serial, "--reason", "keyCompromise")
    assert ocsp_status(server, leaf, issuer, chain) == "revoked"

    base = f"http://127.0.0.1:{server.pki_http_port}/pki"
    crl = urllib.request.urlopen(f"{base}/crl/intermediate.crl", timeout=10).read()  # noqa: S310
    text = subprocess.run(
        ["openssl", "crl", "-inform", "DER", "-noout", "-text"],
        input=crl, capture_output=True, check=True,
    ).stdout.decode()  # fmt: skip
    assert serial in text.replace(":", "").upper()
    crl_pem = tmp_path / "crl.pem"
    subprocess.run(
        ["openssl", "crl", "-inform", "DER", "-out", str(crl_pem)], input=crl, check=True
    )
    verify = subprocess.run(
        ["openssl", "verify", "-crl_check", "-CAfile", str(chain), "-CRLfile", str(crl_pem),
         str(leaf)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert "certificate revoked" in verify.stdout + verify.stderr

    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{base}/nothing-here", timeout=10)  # noqa: S310
    assert missing.value.code == 404
