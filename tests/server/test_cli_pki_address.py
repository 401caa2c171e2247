"""Issue 24 item 2: where peers fetch the CA's CRL and OCSP answers.

`hygie init --pki-host/--pki-port` sets the address written into every certificate and says
so; `hygie pki` warns when the configuration and that address disagree, and
`hygie pki address --update` follows the configuration (new certificates, a new server
certificate). Item 3: `--ca-name` names the CA."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result
from cryptography import x509

from server.cli.main import main
from server.ops.pki_address import crl_points


def hygie(data: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--data", str(data), *args])


def server_cert(data: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate((data / "tls" / "server.crt").read_bytes())


def test_init_takes_the_public_address_and_the_ca_name(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = hygie(data, "init", "--domain", "sante-a.test", "--ca-name", "Santé A",
                   "--pki-host", "crl.sante-a.test", "--pki-port", "80")  # fmt: skip
    assert result.exit_code == 0, result.output
    url = "http://crl.sante-a.test:80/pki"
    # What init wrote, said once: the CA's names and where peers fetch its CRL.
    assert "CA:          AC RACINE SANTÉ A ELEMENTAIRE > AC SANTÉ A ELEMENTAIRE ORGANISATIONS" in (
        result.output
    )
    assert f"CRL and OCSP: {url}/ (written into every certificate" in result.output
    assert "served here on port 8080" in result.output
    assert f'pki_public_url = "{url}"' in (data / "hygie.toml").read_text()
    assert json.loads((data / "pki" / "ca.json").read_text())["base_url"] == url
    assert crl_points(server_cert(data)) == [f"{url}/crl/intermediate.crl"]
    assert (
        server_cert(data)
        .issuer.rfc4514_string()
        .startswith("CN=AC SANTÉ A ELEMENTAIRE ORGANISATIONS,OU=HYGIE-SANTE,O=SANTÉ A")
    )
    # The CA certificates name no address: moving it never needs new trust anchors.
    intermediate = x509.load_pem_x509_certificate(
        (data / "pki" / "intermediate-ca.crt").read_bytes()
    )
    assert crl_points(intermediate) == []
    assert hygie(data, "pki", "address").output.rstrip().endswith("they agree")


def test_init_refuses_a_bad_address_or_name_before_writing_anything(tmp_path: Path) -> None:
    for args, message in (
        (["--pki-host", "crl host"], "hygie: error: not a host name: 'crl host'"),
        (["--pki-port", "0"], "Invalid value for '--pki-port'"),
        (["--ca-name", "X" * 31], "hygie: error: the CA name must be 1 to 30 printable"),
    ):
        data = tmp_path / args[0].strip("-")
        result = hygie(data, "init", "--domain", "sante-a.test", *args)
        assert result.exit_code != 0 and message in result.output
        assert not (data / "hygie.toml").exists()


def test_a_changed_port_is_warned_about_and_followed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert hygie(data, "init", "--domain", "sante-a.test").exit_code == 0
    old = "http://mail.sante-a.test:8080/pki"
    issued = hygie(data, "pki", "issue", "server", "mx2.sante-a.test", "--out", str(tmp_path))
    stale_serial = issued.output.split("issued serial ", 1)[1].split(":", 1)[0]
    config = data / "hygie.toml"
    config.write_text(config.read_text().replace("pki_port = 8080", "pki_port = 8081"))

    # Every `hygie pki` command warns; `hygie pki address` says what disagrees.
    listed = hygie(data, "pki", "list")
    assert listed.exit_code == 0
    assert (
        f"hygie: warning: the CA writes {old}/ into its certificates but the configuration "
        "says peers reach http://mail.sante-a.test:8081/pki/"
    ) in listed.stderr
    assert "the server certificate names " in listed.stderr
    shown = hygie(data, "pki", "address")
    assert f"published:   {old}/" in shown.stdout
    assert "configured:  http://mail.sante-a.test:8081/pki/" in shown.stdout

    updated = hygie(data, "pki", "address", "--update")
    assert updated.exit_code == 0, updated.output
    new = "http://mail.sante-a.test:8081/pki"
    assert f"certificates issued from now on name {new}/" in updated.stdout
    assert "re-issued the server certificate" in updated.stdout
    assert "restart `hygie serve`" in updated.stdout
    assert "--reason superseded" in updated.stdout  # the replaced one, once it is unused
    # The certificate issued before the change is named, for re-issue.
    assert "1 other valid certificate(s) still name the old address" in updated.stdout
    assert stale_serial in updated.stdout
    cert = server_cert(data)
    assert crl_points(cert) == [f"{new}/crl/intermediate.crl"]
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [
        "mail.sante-a.test", "sante-a.test", "patient.sante-a.test", "localhost",
    ]  # fmt: skip
    # From now on nothing disagrees, and new certificates carry the new address.
    after = hygie(data, "pki", "list")
    assert after.stderr == ""
    hygie(data, "pki", "issue", "server", "mx3.sante-a.test", "--out", str(tmp_path))
    fresh = x509.load_pem_x509_certificate((tmp_path / "mx3.sante-a.test.crt").read_bytes())
    assert crl_points(fresh) == [f"{new}/crl/intermediate.crl"]
    assert (
        hygie(data, "pki", "address", "--update")
        .stdout.rstrip()
        .endswith("they agree: nothing to update")
    )
