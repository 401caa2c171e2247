"""The certificate authority: creation, the files it leaves, loading, and SERV issuance."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import stat
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from pki.ca import CertificateAuthority, default_ca_name, init_ca, write_server_credentials
from pki.errors import PkiError
from tests.pki.conftest import HOSTNAMES, IPS, PASSPHRASE, Deployment

_E = TypeVar("_E", bound=x509.ExtensionType)

CA_FILES = ["intermediate-ca.crt", "intermediate-ca.key", "root-ca.crt", "root-ca.key"]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def extension(cert: x509.Certificate, kind: type[_E]) -> x509.Extension[_E]:
    return cert.extensions.get_extension_for_class(kind)


# --- creation and files on disk ---------------------------------------------------------------


def test_init_writes_the_ca_files_with_keys_private_and_encrypted(
    rsa_deployment: Deployment,
) -> None:
    pki_dir = rsa_deployment.ca.pki_dir
    assert sorted(p.name for p in pki_dir.iterdir()) == sorted([*CA_FILES, "ca.json", "issued"])
    for name in ("root-ca.key", "intermediate-ca.key"):
        pem = (pki_dir / name).read_bytes()
        assert mode(pki_dir / name) == 0o600
        assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        assert b"BEGIN PRIVATE KEY" not in pem
        assert b"BEGIN RSA PRIVATE KEY" not in pem
    for name in ("root-ca.crt", "intermediate-ca.crt"):
        assert mode(pki_dir / name) == 0o644
        assert (pki_dir / name).read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")


def test_keys_are_private_even_under_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        ca = init_ca(tmp_path / "pki", PASSPHRASE)
    finally:
        os.umask(old)
    assert mode(ca.files.root_key) == 0o600
    assert mode(ca.files.intermediate_key) == 0o600


def test_init_refuses_to_overwrite_an_existing_ca(rsa_deployment: Deployment) -> None:
    pki_dir = rsa_deployment.ca.pki_dir
    before = {name: (pki_dir / name).read_bytes() for name in CA_FILES}
    with pytest.raises(PkiError, match="refusing to overwrite the existing CA"):
        init_ca(pki_dir, PASSPHRASE)
    assert {name: (pki_dir / name).read_bytes() for name in CA_FILES} == before


def test_init_refuses_when_any_single_ca_file_exists(tmp_path: Path) -> None:
    (tmp_path / "intermediate-ca.key").write_bytes(b"keep me")
    with pytest.raises(PkiError, match=r"intermediate-ca\.key"):
        init_ca(tmp_path, PASSPHRASE)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["intermediate-ca.key"]
    assert (tmp_path / "intermediate-ca.key").read_bytes() == b"keep me"


def test_init_refuses_an_empty_passphrase(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match="passphrase must not be empty"):
        init_ca(tmp_path, b"")
    assert list(tmp_path.iterdir()) == []


def test_init_refuses_an_unknown_key_type(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match="unknown key type 'dsa'"):
        init_ca(tmp_path, PASSPHRASE, key_type="dsa")


# --- names and extensions ---------------------------------------------------------------------


def test_ca_names_follow_the_elementaire_range(tmp_path: Path) -> None:
    """Issue 24 item 3: each operator's CA is named after it, in the IGC-Santé style."""
    ca = init_ca(tmp_path, PASSPHRASE, operator="chu de  nullepart")
    assert ca.root_certificate.subject.rfc4514_string() == (
        "CN=AC RACINE CHU DE NULLEPART ELEMENTAIRE,OU=HYGIE-SANTE,O=CHU DE NULLEPART,C=FR"
    )
    assert ca.root_certificate.issuer == ca.root_certificate.subject
    assert ca.intermediate_certificate.subject.rfc4514_string() == (
        "CN=AC CHU DE NULLEPART ELEMENTAIRE ORGANISATIONS,OU=HYGIE-SANTE,O=CHU DE NULLEPART,C=FR"
    )
    assert ca.intermediate_certificate.issuer == ca.root_certificate.subject
    assert ca.operator == "CHU DE NULLEPART"
    responder, _ = ca.ocsp_responder()
    assert responder.subject.rfc4514_string() == (
        "CN=AC CHU DE NULLEPART ELEMENTAIRE ORGANISATIONS OCSP,O=CHU DE NULLEPART,C=FR"
    )


def test_two_operators_cas_have_different_names(tmp_path: Path) -> None:
    a = init_ca(tmp_path / "a", PASSPHRASE, operator=default_ca_name("sante-a.test"))
    b = init_ca(tmp_path / "b", PASSPHRASE, operator=default_ca_name("sante-b.test"))
    assert a.intermediate_certificate.subject != b.intermediate_certificate.subject
    assert a.root_certificate.subject.rfc4514_string().startswith(
        "CN=AC RACINE SANTE-A.TEST ELEMENTAIRE,"
    )


@pytest.mark.parametrize("name", ["", "   ", "X" * 31, "A\x1bB"])
def test_a_ca_name_must_fit_its_common_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(PkiError, match="the CA name must be 1 to 30 printable characters"):
        init_ca(tmp_path, PASSPHRASE, operator=name)


def test_a_long_domain_gives_its_first_label_as_ca_name() -> None:
    assert (
        default_ca_name("ght-hopitaux-de-bretagne-sud.sante.fr") == "GHT-HOPITAUX-DE-BRETAGNE-SUD"
    )


@pytest.mark.parametrize(("level", "path_length", "years"), [("root", 1, 20), ("inter", 0, 10)])
def test_ca_certificates_carry_the_ca_extensions(
    rsa_deployment: Deployment, level: str, path_length: int, years: int
) -> None:
    ca = rsa_deployment.ca
    cert = ca.root_certificate if level == "root" else ca.intermediate_certificate
    constraints = extension(cert, x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca
    assert constraints.value.path_length == path_length
    usage = extension(cert, x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_cert_sign
    assert usage.value.crl_sign
    assert not usage.value.digital_signature
    assert not usage.value.key_encipherment
    ski = extension(cert, x509.SubjectKeyIdentifier)
    assert ski.value == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    aki = extension(cert, x509.AuthorityKeyIdentifier).value
    root_ski = extension(ca.root_certificate, x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == root_ski.digest
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert abs(lifetime - dt.timedelta(days=365.25 * years)) < dt.timedelta(days=2)
    assert cert.version is x509.Version.v3
    key = cert.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    assert key.key_size == 2048
    assert cert.signature_hash_algorithm is not None
    assert cert.signature_hash_algorithm.name == "sha256"


# --- loading ----------------------------------------------------------------------------------


def test_ca_round_trips_through_load(rsa_deployment: Deployment) -> None:
    created = rsa_deployment.ca
    loaded = CertificateAuthority.load(created.pki_dir, PASSPHRASE)
    assert loaded.root_certificate == created.root_certificate
    assert loaded.intermediate_certificate == created.intermediate_certificate
    assert loaded.root_key.private_numbers() == created.root_key.private_numbers()
    assert loaded.intermediate_key.private_numbers() == created.intermediate_key.private_numbers()
    # The loaded CA still issues certificates that chain to the same root.
    issued = loaded.issue_server(["relay.hygie.test"])
    issued.certificate.verify_directly_issued_by(created.intermediate_certificate)


def test_load_with_a_wrong_passphrase_fails(rsa_deployment: Deployment) -> None:
    with pytest.raises(PkiError, match=r"^wrong CA passphrase: cannot decrypt .*root-ca\.key$"):
        CertificateAuthority.load(rsa_deployment.ca.pki_dir, b"not the passphrase")


def test_load_with_an_empty_passphrase_fails(rsa_deployment: Deployment) -> None:
    with pytest.raises(PkiError, match="no passphrase was given"):
        CertificateAuthority.load(rsa_deployment.ca.pki_dir, b"")


def test_load_from_an_empty_directory_names_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match=r"root CA certificate not found: .*root-ca\.crt"):
        CertificateAuthority.load(tmp_path, PASSPHRASE)


def test_load_without_the_intermediate_key_names_it(tmp_path: Path) -> None:
    init_ca(tmp_path, PASSPHRASE)
    (tmp_path / "intermediate-ca.key").unlink()
    with pytest.raises(PkiError, match=r"intermediate CA key not found: .*intermediate-ca\.key"):
        CertificateAuthority.load(tmp_path, PASSPHRASE)


def test_load_refuses_an_unencrypted_ca_key(tmp_path: Path) -> None:
    ca = init_ca(tmp_path, PASSPHRASE)
    key_file = ca.files.intermediate_key
    key_file.write_bytes(ca.issue_server(["x.hygie.test"]).key_pem())
    with pytest.raises(PkiError, match="is not encrypted; CA keys must be"):
        CertificateAuthority.load(tmp_path, PASSPHRASE)


def test_load_refuses_an_intermediate_from_another_root(tmp_path: Path) -> None:
    init_ca(tmp_path / "a", PASSPHRASE)
    init_ca(tmp_path / "b", PASSPHRASE)
    (tmp_path / "a" / "root-ca.crt").write_bytes((tmp_path / "b" / "root-ca.crt").read_bytes())
    (tmp_path / "a" / "root-ca.key").write_bytes((tmp_path / "b" / "root-ca.key").read_bytes())
    with pytest.raises(PkiError, match="was not issued by"):
        CertificateAuthority.load(tmp_path / "a", PASSPHRASE)


def test_load_refuses_a_key_that_does_not_match_its_certificate(tmp_path: Path) -> None:
    init_ca(tmp_path, PASSPHRASE)
    (tmp_path / "root-ca.key").write_bytes((tmp_path / "intermediate-ca.key").read_bytes())
    with pytest.raises(PkiError, match=r"root-ca\.key does not belong to .*root-ca\.crt"):
        CertificateAuthority.load(tmp_path, PASSPHRASE)


# --- SERV certificates ------------------------------------------------------------------------


def test_server_certificate_follows_the_serv_profile(rsa_deployment: Deployment) -> None:
    cert = x509.load_pem_x509_certificates(rsa_deployment.cert_file.read_bytes())[0]
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == HOSTNAMES[0]
    assert not extension(cert, x509.BasicConstraints).value.ca
    usage = extension(cert, x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert usage.value.key_encipherment
    assert not usage.value.key_cert_sign
    eku = extension(cert, x509.ExtendedKeyUsage)
    assert list(eku.value) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    san = extension(cert, x509.SubjectAlternativeName)
    assert not san.critical
    assert san.value.get_values_for_type(x509.DNSName) == HOSTNAMES
    assert san.value.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address(ip) for ip in IPS]
    assert cert.serial_number > 0
    assert cert.serial_number.bit_length() > 100
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(days=825) <= lifetime <= dt.timedelta(days=825, minutes=5)


def test_serials_differ_between_certificates(rsa_deployment: Deployment) -> None:
    serials = {
        rsa_deployment.ca.issue_server(["a.hygie.test"]).certificate.serial_number for _ in range(3)
    }
    assert len(serials) == 3


@pytest.mark.parametrize("deployment", ["rsa_deployment", "ec_deployment"])
def test_server_certificate_chains_to_the_root(
    request: pytest.FixtureRequest, deployment: str
) -> None:
    setup: Deployment = request.getfixturevalue(deployment)
    leaf, intermediate = x509.load_pem_x509_certificates(setup.cert_file.read_bytes())
    root = x509.load_pem_x509_certificate(setup.root_file.read_bytes())
    leaf.verify_directly_issued_by(intermediate)
    intermediate.verify_directly_issued_by(root)
    root.verify_directly_issued_by(root)
    # Full RFC 5280 path validation, as a TLS client does it, for a DNS and an IP name.
    for name in (x509.DNSName(HOSTNAMES[1]), x509.IPAddress(ipaddress.ip_address(IPS[0]))):
        verifier = PolicyBuilder().store(Store([root])).build_server_verifier(name)
        path = verifier.verify(leaf, [intermediate])
        assert path == [leaf, intermediate, root]


def test_a_certificate_from_another_ca_with_the_same_names_does_not_chain(
    rsa_deployment: Deployment, tmp_path: Path
) -> None:
    impostor = init_ca(tmp_path, PASSPHRASE)
    assert impostor.root_certificate.subject == rsa_deployment.ca.root_certificate.subject
    leaf = impostor.issue_server(["mail.hygie.test"]).certificate
    with pytest.raises(InvalidSignature):
        leaf.verify_directly_issued_by(rsa_deployment.ca.intermediate_certificate)
    verifier = (
        PolicyBuilder()
        .store(Store([rsa_deployment.ca.root_certificate]))
        .build_server_verifier(x509.DNSName("mail.hygie.test"))
    )
    with pytest.raises(VerificationError):
        verifier.verify(leaf, [impostor.intermediate_certificate])


def test_ec_ca_and_ec_server_certificate(ec_deployment: Deployment) -> None:
    ca = ec_deployment.ca
    for cert in (ca.root_certificate, ca.intermediate_certificate):
        key = cert.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        assert key.curve.name == "secp256r1"
    leaf = x509.load_pem_x509_certificates(ec_deployment.cert_file.read_bytes())[0]
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)
    usage = extension(leaf, x509.KeyUsage).value
    assert usage.digital_signature
    assert not usage.key_encipherment  # an EC key cannot encipher
    assert CertificateAuthority.load(ca.pki_dir, PASSPHRASE).root_certificate == (
        ca.root_certificate
    )


def test_an_rsa_ca_issues_an_ec_server_certificate(rsa_deployment: Deployment) -> None:
    issued = rsa_deployment.ca.issue_server(["mail.hygie.test"], key_type="ec")
    assert isinstance(issued.private_key, ec.EllipticCurvePrivateKey)
    issued.certificate.verify_directly_issued_by(rsa_deployment.ca.intermediate_certificate)


def test_host_names_are_normalised_and_deduplicated(rsa_deployment: Deployment) -> None:
    issued = rsa_deployment.ca.issue_server(
        ["Mail.Hygie.Test.", "mail.hygie.test", "hôpital.hygie.test"], ["127.0.0.1", "127.0.0.1"]
    )
    san = extension(issued.certificate, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["mail.hygie.test", "xn--hpital-ixa.hygie.test"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]


def test_a_host_name_longer_than_a_cn_is_only_in_the_san(rsa_deployment: Deployment) -> None:
    long_name = ("a" * 60 + ".") * 3 + "test"
    issued = rsa_deployment.ca.issue_server([long_name])
    assert issued.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME) == []
    san = extension(issued.certificate, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [long_name]


@pytest.mark.parametrize(
    ("hostnames", "ips", "message"),
    [
        ([], [], "at least one host name"),
        (["under_score.test"], [], "not a valid DNS host name"),
        (["-lead.test"], [], "not a valid DNS host name"),
        (["a..test"], [], "not a valid DNS host name"),
        (["*.hygie.test"], [], "not a valid DNS host name"),
        (["127.0.0.1"], [], "is an IP address: pass it in ip_addresses"),
        (["mail.hygie.test"], ["300.1.1.1"], "not an IP address"),
    ],
)
def test_issue_server_refuses_bad_names(
    rsa_deployment: Deployment, hostnames: list[str], ips: list[str], message: str
) -> None:
    with pytest.raises(PkiError, match=message):
        rsa_deployment.ca.issue_server(hostnames, ips)


def test_a_certificate_never_outlives_its_issuer(rsa_deployment: Deployment) -> None:
    issued = rsa_deployment.ca.issue_server(["mail.hygie.test"], days=100 * 365)
    assert issued.certificate.not_valid_after_utc == (
        rsa_deployment.ca.intermediate_certificate.not_valid_after_utc
    )


def test_issue_server_refuses_a_non_positive_lifetime(rsa_deployment: Deployment) -> None:
    with pytest.raises(PkiError, match="at least one day"):
        rsa_deployment.ca.issue_server(["mail.hygie.test"], days=0)


# --- PEM output and server credentials --------------------------------------------------------


def test_pem_forms_of_an_issued_certificate(rsa_deployment: Deployment) -> None:
    issued = rsa_deployment.ca.issue_server(["mail.hygie.test"])
    chain = x509.load_pem_x509_certificates(issued.chain_pem())
    assert chain == [issued.certificate, rsa_deployment.ca.intermediate_certificate]
    assert x509.load_pem_x509_certificate(issued.cert_pem()) == issued.certificate
    assert issued.key_pem().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert issued.key_pem(b"secret").startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert "private_key" not in repr(issued)


def test_server_credentials_are_written_key_private_and_loadable(
    rsa_deployment: Deployment,
) -> None:
    assert mode(rsa_deployment.key_file) == 0o600
    assert rsa_deployment.key_file.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert mode(rsa_deployment.cert_file) == 0o644
    assert len(x509.load_pem_x509_certificates(rsa_deployment.cert_file.read_bytes())) == 2


def test_rewriting_credentials_replaces_a_readable_key_with_a_private_one(
    rsa_deployment: Deployment, tmp_path: Path
) -> None:
    cert_file, key_file = tmp_path / "server.crt", tmp_path / "server.key"
    key_file.write_bytes(b"old key")
    key_file.chmod(0o644)
    issued = rsa_deployment.ca.issue_server(["mail.hygie.test"])
    write_server_credentials(issued, cert_file, key_file)
    assert mode(key_file) == 0o600
    assert key_file.read_bytes() == issued.key_pem()
    assert cert_file.read_bytes() == issued.chain_pem()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["server.crt", "server.key"]
