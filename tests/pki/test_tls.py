"""TLS contexts, tried with real handshakes over loopback TCP."""

from __future__ import annotations

import ssl
import warnings
from pathlib import Path

import pytest

from pki.ca import init_ca, write_server_credentials
from pki.errors import PkiError
from pki.tls import TLS12_CIPHERS, client_context, server_context
from tests.pki.conftest import HOSTNAMES, PASSPHRASE, Deployment
from tests.pki.handshake import GREETING, handshake


def server(setup: Deployment, min_version: str = "1.2") -> ssl.SSLContext:
    return server_context(setup.cert_file, setup.key_file, min_version=min_version)


def legacy_client(setup: Deployment, maximum: ssl.TLSVersion) -> ssl.SSLContext:
    """A client that would still speak TLS 1.0/1.1 if the server let it.

    Security level 0 lets this OpenSSL build send a TLS 1.1 hello at all, so that refusing it
    is the server's doing.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(setup.root_file)
    context.set_ciphers("ALL:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # setting TLSv1 warns, on purpose
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = maximum
    return context


def reason(error: BaseException | None) -> str | None:
    return error.reason if isinstance(error, ssl.SSLError) else None


@pytest.mark.parametrize("deployment", ["rsa_deployment", "ec_deployment"])
@pytest.mark.parametrize("hostname", [*HOSTNAMES, "127.0.0.1"])
def test_handshake_with_a_name_from_the_certificate(
    request: pytest.FixtureRequest, deployment: str, hostname: str
) -> None:
    setup: Deployment = request.getfixturevalue(deployment)
    outcome = handshake(server(setup), client_context(setup.root_file), hostname)
    assert outcome.ok, outcome
    assert outcome.version == "TLSv1.3"
    assert outcome.greeting == GREETING
    assert outcome.compression is None


@pytest.mark.parametrize("deployment", ["rsa_deployment", "ec_deployment"])
def test_a_tls12_client_gets_an_ecdhe_aead_suite(
    request: pytest.FixtureRequest, deployment: str
) -> None:
    setup: Deployment = request.getfixturevalue(deployment)
    client = client_context(setup.root_file)
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    outcome = handshake(server(setup), client, HOSTNAMES[0])
    assert outcome.ok, outcome
    assert outcome.version == "TLSv1.2"
    assert outcome.cipher in TLS12_CIPHERS
    key = "ECDSA" if deployment == "ec_deployment" else "RSA"
    assert outcome.cipher == f"ECDHE-{key}-AES256-GCM-SHA384"  # server preference wins


def test_a_tls11_client_is_refused(rsa_deployment: Deployment) -> None:
    outcome = handshake(
        server(rsa_deployment), legacy_client(rsa_deployment, ssl.TLSVersion.TLSv1_1), "localhost"
    )
    assert reason(outcome.server_error) == "UNSUPPORTED_PROTOCOL"
    assert reason(outcome.client_error) == "TLSV1_ALERT_PROTOCOL_VERSION"
    assert outcome.greeting == b""


def test_the_same_legacy_client_gets_in_with_tls12(rsa_deployment: Deployment) -> None:
    # Control for the test above: the refusal is about the version, not the client's setup.
    outcome = handshake(
        server(rsa_deployment), legacy_client(rsa_deployment, ssl.TLSVersion.TLSv1_2), "localhost"
    )
    assert outcome.ok, outcome
    assert outcome.version == "TLSv1.2"


def test_a_tls13_only_server_refuses_tls12(rsa_deployment: Deployment) -> None:
    client = client_context(rsa_deployment.root_file)
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    outcome = handshake(server(rsa_deployment, "1.3"), client, "localhost")
    assert reason(outcome.server_error) == "UNSUPPORTED_PROTOCOL"
    assert outcome.greeting == b""
    outcome = handshake(
        server(rsa_deployment, "1.3"), client_context(rsa_deployment.root_file), "localhost"
    )
    assert outcome.ok, outcome
    assert outcome.version == "TLSv1.3"


@pytest.mark.parametrize(
    "ciphers",
    [
        "ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA384",  # CBC
        "AES128-GCM-SHA256:AES256-GCM-SHA384",  # no forward secrecy
        "DHE-RSA-AES128-GCM-SHA256",  # finite-field DH
    ],
)
def test_tls12_suites_outside_the_list_are_refused(
    rsa_deployment: Deployment, ciphers: str
) -> None:
    client = legacy_client(rsa_deployment, ssl.TLSVersion.TLSv1_2)
    client.set_ciphers(f"{ciphers}:@SECLEVEL=0")
    outcome = handshake(server(rsa_deployment), client, "localhost")
    assert reason(outcome.server_error) == "NO_SHARED_CIPHER"


def test_a_wrong_host_name_fails_verification(rsa_deployment: Deployment) -> None:
    outcome = handshake(
        server(rsa_deployment), client_context(rsa_deployment.root_file), "smtp.elsewhere.test"
    )
    assert isinstance(outcome.client_error, ssl.SSLCertVerificationError)
    assert "Hostname mismatch" in outcome.client_error.verify_message
    assert outcome.greeting == b""


def test_a_client_trusting_another_root_refuses_the_server(
    rsa_deployment: Deployment, tmp_path: Path
) -> None:
    # Same names, different keys: only our own root is accepted (MSSanté ECO.1.1.10).
    other = init_ca(tmp_path / "pki", PASSPHRASE)
    outcome = handshake(server(rsa_deployment), client_context(other.files.root_cert), HOSTNAMES[0])
    assert isinstance(outcome.client_error, ssl.SSLCertVerificationError)
    assert outcome.greeting == b""


def test_a_client_ignores_the_system_trust_store(rsa_deployment: Deployment) -> None:
    assert client_context(rsa_deployment.root_file).cert_store_stats()["x509_ca"] == 1


def test_server_context_hardening(rsa_deployment: Deployment) -> None:
    context = server(rsa_deployment)
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    for option in (
        ssl.OP_NO_COMPRESSION,
        ssl.OP_NO_RENEGOTIATION,
        ssl.OP_CIPHER_SERVER_PREFERENCE,
        ssl.OP_NO_TICKET,
    ):
        assert context.options & option
    tls12 = {c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert tls12 == set(TLS12_CIPHERS)


# --- errors an operator can act on ------------------------------------------------------------


def test_server_context_names_a_missing_certificate(
    rsa_deployment: Deployment, tmp_path: Path
) -> None:
    with pytest.raises(PkiError, match=r"TLS certificate file not found: .*absent\.crt"):
        server_context(tmp_path / "absent.crt", rsa_deployment.key_file)


def test_server_context_names_a_missing_key(rsa_deployment: Deployment, tmp_path: Path) -> None:
    with pytest.raises(PkiError, match=r"TLS key file not found: .*absent\.key"):
        server_context(rsa_deployment.cert_file, tmp_path / "absent.key")


def test_server_context_refuses_a_file_that_is_not_a_certificate(
    rsa_deployment: Deployment, tmp_path: Path
) -> None:
    (tmp_path / "junk.crt").write_bytes(b"not a certificate\n")
    with pytest.raises(PkiError, match="holds no PEM certificate"):
        server_context(tmp_path / "junk.crt", rsa_deployment.key_file)


def test_server_context_refuses_an_encrypted_key(
    rsa_deployment: Deployment, tmp_path: Path
) -> None:
    issued = rsa_deployment.ca.issue_server(["mail.hygie.test"])
    (tmp_path / "s.crt").write_bytes(issued.chain_pem())
    (tmp_path / "s.key").write_bytes(issued.key_pem(b"secret"))
    with pytest.raises(PkiError, match="is encrypted; a server key must not be"):
        server_context(tmp_path / "s.crt", tmp_path / "s.key")


def test_server_context_refuses_a_key_from_another_certificate(
    rsa_deployment: Deployment, tmp_path: Path
) -> None:
    other = rsa_deployment.ca.issue_server(["other.hygie.test"])
    write_server_credentials(other, tmp_path / "other.crt", tmp_path / "other.key")
    with pytest.raises(PkiError, match="does not match the certificate"):
        server_context(rsa_deployment.cert_file, tmp_path / "other.key")


def test_server_context_refuses_an_unknown_minimum_version(rsa_deployment: Deployment) -> None:
    with pytest.raises(PkiError, match=r"unsupported TLS minimum version '1\.1'"):
        server(rsa_deployment, "1.1")


def test_client_context_names_a_missing_ca_file(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match=r"CA certificate file not found: .*root-ca\.crt"):
        client_context(tmp_path / "root-ca.crt")


def test_client_context_refuses_a_file_without_certificates(tmp_path: Path) -> None:
    (tmp_path / "root-ca.crt").write_bytes(b"nothing here\n")
    with pytest.raises(PkiError, match="holds no PEM certificate"):
        client_context(tmp_path / "root-ca.crt")
