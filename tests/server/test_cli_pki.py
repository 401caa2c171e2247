"""`hygie pki issue|list|show|revoke|crl` on a fresh data directory."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from server.cli.main import main


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki") / "data"
    result = CliRunner().invoke(main, ["--data", str(d), "init", "--domain", "hygie.test"])
    assert result.exit_code == 0, result.output
    return d


def hygie(data: Path, *args: str, stdin: str | None = None) -> str:
    result = CliRunner().invoke(main, ["--data", str(data), *args], input=stdin)
    assert result.exit_code == 0, result.output
    return result.output


def test_issue_person_writes_key_chain_and_pkcs12(data: Path, tmp_path: Path) -> None:
    out = hygie(
        data, "pki", "issue", "person", "--rpps", "10003456789", "--given-name", "Jean",
        "--surname", "Dupont", "--out", str(tmp_path), "--passphrase-stdin",
        stdin="correct horse\n",
    )  # fmt: skip
    assert "issued serial" in out
    key = tmp_path / "810003456789.key"
    p12 = tmp_path / "810003456789.p12"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(p12.stat().st_mode) == 0o600
    text = subprocess.run(
        ["openssl", "x509", "-noout", "-subject", "-in", str(tmp_path / "810003456789.crt")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "Dupont" in text or "DUPONT" in text


def test_bad_identifiers_are_refused_with_one_line(data: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["--data", str(data), "pki", "issue", "org", "--service", "Secretariat",
         "--organisation", "Clinique", "--siret", "123", "--out", str(tmp_path),
         "--passphrase-stdin"],
        input="correct horse\n",
    )  # fmt: skip
    assert result.exit_code == 1
    assert result.output.startswith("hygie: error:")


def test_revoke_shows_in_list_show_and_crl(data: Path, tmp_path: Path) -> None:
    out = hygie(data, "pki", "issue", "server", "relay.hygie.test", "--out", str(tmp_path))
    serial = out.split("issued serial ", 1)[1].split(":", 1)[0]
    assert serial in hygie(data, "pki", "list")
    hygie(data, "pki", "revoke", serial, "--reason", "keyCompromise")
    assert "revoked" in hygie(data, "pki", "show", serial)
    crl = hygie(data, "pki", "crl")
    assert crl.startswith("-----BEGIN X509 CRL-----")
    listed = subprocess.run(
        ["openssl", "crl", "-noout", "-text"], input=crl, capture_output=True, text=True, check=True
    ).stdout
    assert serial.upper().lstrip("0") in listed.replace(":", "").upper()
