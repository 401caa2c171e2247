"""ORG and PER certificates, PKCS #12, CDP/AIA, the registry, the CRL and OCSP."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pki.ca import CertificateAuthority, IssuedCertificate, init_ca
from pki.errors import PkiError
from pki.identity import luhn_ok
from tests.pki.conftest import PASSPHRASE

SIRET = "73282932000074"
FINESS = "750712184"
RPPS = "10001234567"
BASE = "http://pki.hygie.test/pki"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return init_ca(tmp_path_factory.mktemp("rev") / "pki", PASSPHRASE, base_url=BASE)


def attrs(cert: x509.Certificate) -> list[tuple[str, str]]:
    return [(a.oid.dotted_string, str(a.value)) for a in cert.subject]


def test_org_subject_and_extensions(ca: CertificateAuthority) -> None:
    assert luhn_ok(SIRET)
    cert = ca.issue_org("Secrétariat", "Clinique X", siret=SIRET).certificate
    assert cert.subject.rfc4514_string() == "CN=Secrétariat,OU=373282932000074,O=Clinique X,C=FR"
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    by_finess = ca.issue_org("Labo", "Hôpital", finess=FINESS, key_type="ec").certificate
    assert by_finess.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == (
        "1" + FINESS
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"siret": "73282932000075"},
        {"siret": "1234"},
        {"finess": "75071218"},
        {"finess": "75071218X"},
        {},
        {"siret": SIRET, "finess": FINESS},
    ],
)
def test_bad_structure_identifiers_are_refused(
    ca: CertificateAuthority, kwargs: dict[str, str]
) -> None:
    with pytest.raises(PkiError):
        ca.issue_org("S", "O", siret=kwargs.get("siret"), finess=kwargs.get("finess"))


@pytest.mark.parametrize("rpps", ["1000123456", "100012345678", "1000123456a"])
def test_bad_rpps_is_refused(ca: CertificateAuthority, rpps: str) -> None:
    with pytest.raises(PkiError):
        ca.issue_person(rpps, "Jean", "Dupont")


def test_person_subject(ca: CertificateAuthority) -> None:
    cert = ca.issue_person(RPPS, "Jean", "Dupont", organisation="Cabinet").certificate
    assert attrs(cert) == [
        ("2.5.4.6", "FR"),
        ("2.5.4.10", "Cabinet"),
        ("2.5.4.3", "Jean DUPONT"),
        ("2.5.4.42", "Jean"),
        ("2.5.4.4", "DUPONT"),
        ("2.5.4.5", "8" + RPPS),
        ("0.9.2342.19200300.100.1.1", "8" + RPPS),
    ]
    bare = ca.issue_person(RPPS, "Anne", "Martin").certificate
    assert not bare.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)


def test_pkcs12_round_trip(ca: CertificateAuthority) -> None:
    issued = ca.issue_person(RPPS, "Jean", "Dupont")
    blob = issued.pkcs12(b"secret", b"Jean DUPONT")
    loaded = pkcs12.load_pkcs12(blob, b"secret")
    assert loaded.cert is not None and loaded.cert.certificate == issued.certificate
    assert loaded.cert.friendly_name == b"Jean DUPONT"
    assert loaded.key is not None and loaded.key.public_key() == issued.private_key.public_key()
    assert [c.certificate for c in loaded.additional_certs] == [ca.intermediate_certificate]
    with pytest.raises(ValueError):
        pkcs12.load_pkcs12(blob, b"wrong")


def test_cdp_and_aia_in_every_end_entity(ca: CertificateAuthority) -> None:
    for issued in (
        ca.issue_server(["mail.hygie.test"]),
        ca.issue_org("S", "O", siret=SIRET),
        ca.issue_person(RPPS, "Jean", "Dupont"),
    ):
        ext = issued.certificate.extensions
        cdp = ext.get_extension_for_class(x509.CRLDistributionPoints).value
        assert cdp[0].full_name == [x509.UniformResourceIdentifier(f"{BASE}/crl/intermediate.crl")]
        aia = {
            (d.access_method, d.access_location.value)
            for d in ext.get_extension_for_class(x509.AuthorityInformationAccess).value
        }
        assert aia == {
            (x509.oid.AuthorityInformationAccessOID.OCSP, f"{BASE}/ocsp"),
            (x509.oid.AuthorityInformationAccessOID.CA_ISSUERS, f"{BASE}/intermediate-ca.cer"),
        }


def test_registry_survives_load_and_revocation(tmp_path: Path) -> None:
    ca = init_ca(tmp_path / "pki", PASSPHRASE, base_url=BASE)
    issued = ca.issue_person(RPPS, "Jean", "Dupont")
    serial = issued.certificate.serial_number
    again = CertificateAuthority.load(tmp_path / "pki", PASSPHRASE)
    assert again.base_url == BASE
    record = again.find(f"{serial:x}")
    assert record is not None and record.profile == "PER" and record.status == "valid"
    assert [r.serial for r in again.issued()] == [serial]
    revoked = again.revoke(serial, x509.ReasonFlags.key_compromise)
    assert revoked.status == "revoked" and revoked.reason == x509.ReasonFlags.key_compromise
    third = CertificateAuthority.load(tmp_path / "pki", PASSPHRASE)
    assert third.find(serial) == revoked
    with pytest.raises(PkiError, match="already revoked"):
        third.revoke(serial, x509.ReasonFlags.superseded)
    with pytest.raises(PkiError, match="no certificate"):
        third.revoke(12345, x509.ReasonFlags.superseded)


def openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, check=False)


def test_crl_and_openssl_verify(tmp_path: Path) -> None:
    ca = init_ca(tmp_path / "pki", PASSPHRASE)
    good = ca.issue_person(RPPS, "Jean", "Dupont")
    bad = ca.issue_org("S", "O", siret=SIRET)
    first = ca.write_crl()
    ca.revoke(bad.certificate.serial_number, x509.ReasonFlags.key_compromise)
    crl = x509.load_der_x509_crl(ca.files.crl_der.read_bytes())
    numbers = [
        c.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number for c in (first, crl)
    ]
    assert numbers[1] > numbers[0]
    assert crl.is_signature_valid(ca.intermediate_certificate.public_key())  # type: ignore[arg-type]
    entry = crl.get_revoked_certificate_by_serial_number(bad.certificate.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == (
        x509.ReasonFlags.key_compromise
    )
    assert crl.get_revoked_certificate_by_serial_number(good.certificate.serial_number) is None
    text = openssl("crl", "-inform", "DER", "-in", ca.files.crl_der, "-noout", "-text").stdout
    assert f"{bad.certificate.serial_number:X}" in text.replace(":", "").upper()
    assert "Key Compromise" in text

    cafile = tmp_path / "cas.pem"
    cafile.write_bytes(ca.files.root_cert.read_bytes() + ca.files.intermediate_cert.read_bytes())
    for name, issued in (("good", good), ("bad", bad)):
        (tmp_path / f"{name}.pem").write_bytes(issued.cert_pem())
    args = ("verify", "-crl_check", "-CAfile", cafile, "-CRLfile", ca.files.crl_pem)
    ok = openssl(*args, tmp_path / "good.pem")
    assert ok.returncode == 0 and "OK" in ok.stdout
    ko = openssl(*args, tmp_path / "bad.pem")
    assert ko.returncode != 0 and "certificate revoked" in ko.stdout + ko.stderr


def ask(
    ca: CertificateAuthority, cert: x509.Certificate, nonce: bytes | None = None
) -> ocsp.OCSPResponse:
    builder = ocsp.OCSPRequestBuilder().add_certificate(
        cert, ca.intermediate_certificate, hashes.SHA256()
    )
    if nonce:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    der = builder.build().public_bytes(serialization.Encoding.DER)
    return ocsp.load_der_ocsp_response(ca.ocsp_response(der))


def test_ocsp_good_revoked_unknown_and_malformed(tmp_path: Path) -> None:
    ca = init_ca(tmp_path / "pki", PASSPHRASE)
    good = ca.issue_person(RPPS, "Jean", "Dupont")
    bad = ca.issue_person(RPPS, "Anne", "Martin")
    ca.revoke(bad.certificate.serial_number, x509.ReasonFlags.cessation_of_operation)

    response = ask(ca, good.certificate, nonce=b"0123456789abcdef")
    assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == (
        b"0123456789abcdef"
    )
    assert response.next_update_utc is not None
    assert response.next_update_utc > response.this_update_utc
    responder = response.certificates[0]
    assert list(responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.OCSP_SIGNING
    ]
    responder.extensions.get_extension_for_class(x509.OCSPNoCheck)
    responder.verify_directly_issued_by(ca.intermediate_certificate)
    key = responder.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(
        response.signature,
        response.tbs_response_bytes,
        padding.PKCS1v15(),
        response.signature_hash_algorithm or hashes.SHA256(),
    )
    assert b"ENCRYPTED" in ca.files.ocsp_key.read_bytes()

    revoked = ask(ca, bad.certificate)
    assert revoked.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert revoked.revocation_reason == x509.ReasonFlags.cessation_of_operation
    assert revoked.revocation_time_utc is not None

    other = init_ca(tmp_path / "other", PASSPHRASE).issue_person(RPPS, "X", "Y")
    foreign = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(other.certificate, other.chain[0], hashes.SHA256())
        .build()
        .public_bytes(serialization.Encoding.DER)
    )
    unknown = ocsp.load_der_ocsp_response(ca.ocsp_response(foreign))
    assert unknown.certificate_status == ocsp.OCSPCertStatus.UNKNOWN

    # A responder made on first use is found again after a reload.
    again = CertificateAuthority.load(tmp_path / "pki", PASSPHRASE)
    assert ask(again, good.certificate).certificates[0] == responder

    malformed = ocsp.load_der_ocsp_response(ca.ocsp_response(b"\x30\x03garbage"))
    assert malformed.response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_openssl_ocsp_agrees(tmp_path: Path) -> None:
    ca = init_ca(tmp_path / "pki", PASSPHRASE)
    good: IssuedCertificate = ca.issue_person(RPPS, "Jean", "Dupont")
    bad = ca.issue_person(RPPS, "Anne", "Martin")
    ca.revoke(bad.certificate.serial_number, x509.ReasonFlags.key_compromise)
    cafile = tmp_path / "cas.pem"
    cafile.write_bytes(ca.files.root_cert.read_bytes() + ca.files.intermediate_cert.read_bytes())
    for name, issued, expected in (("good", good, ": good"), ("bad", bad, ": revoked")):
        cert = tmp_path / f"{name}.pem"
        cert.write_bytes(issued.cert_pem())
        req, resp = tmp_path / f"{name}.req", tmp_path / f"{name}.resp"
        made = openssl(
            "ocsp",
            "-issuer",
            ca.files.intermediate_cert,
            "-cert",
            cert,
            "-reqout",
            req,
            "-no_nonce",
        )
        assert made.returncode == 0, made.stderr
        resp.write_bytes(ca.ocsp_response(req.read_bytes()))
        checked = openssl(
            "ocsp",
            "-respin",
            resp,
            "-issuer",
            ca.files.intermediate_cert,
            "-cert",
            cert,
            "-CAfile",
            cafile,
        )
        assert checked.returncode == 0, checked.stderr
        assert "Response verify OK" in checked.stderr + checked.stdout
        assert expected in checked.stdout
