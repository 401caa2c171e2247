"""SASL EXTERNAL's certificate check: who a certificate speaks for, and every way it can be
refused (another CA, dates, usage, revocation) — with the CRL re-read when it changes."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pki import verify
from pki.ca import CertificateAuthority, init_ca
from pki.verify import CertificateRejected, ClientCertificateChecker
from tests.pki.conftest import PASSPHRASE
from tests.support import certs

RPPS = "10001234567"
SIRET = "73282932000074"


@pytest.fixture()
def ca(tmp_path: Path) -> CertificateAuthority:
    ca = init_ca(tmp_path / "pki", PASSPHRASE, base_url="http://pki.hygie.test/pki")
    ca.write_crl()
    return ca


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def checker(ca: CertificateAuthority) -> ClientCertificateChecker:
    return ClientCertificateChecker.for_ca(ca.pki_dir)


def refused(check: ClientCertificateChecker, cert: x509.Certificate) -> str:
    with pytest.raises(CertificateRejected) as caught:
        check.check(der(cert))
    return caught.value.reason


def test_practitioner_certificate_names_its_idnat(ca: CertificateAuthority) -> None:
    issued = ca.issue_person(RPPS, "Jeanne", "Martin")
    who = checker(ca).check(der(issued.certificate))
    assert (who.kind, who.idnat) == ("PER", "8" + RPPS)
    assert who.serial == issued.certificate.serial_number


def test_organisation_certificate_is_known_by_its_subject(ca: CertificateAuthority) -> None:
    issued = ca.issue_org("Secretariat Cardiologie", "CH Hygie", siret=SIRET, key_type="ec")
    who = checker(ca).check(der(issued.certificate))
    assert who.kind == "ORG" and who.idnat is None
    assert who.subject == issued.certificate.subject.rfc4514_string()
    assert "OU=3" + SIRET in who.subject


def test_dates_are_checked(ca: CertificateAuthority) -> None:
    good = ca.issue_person(RPPS, "Jeanne", "Martin")
    check = checker(ca)
    assert refused(check, certs.expired(ca, good)) == verify.EXPIRED
    assert refused(check, certs.not_yet_valid(ca, good)) == verify.NOT_YET_VALID


def test_server_certificates_cannot_log_in(ca: CertificateAuthority) -> None:
    serv = ca.issue_server(["mail.hygie.test"])
    # A relay certificate (serverAuth + clientAuth) names no practitioner or organisation…
    assert refused(checker(ca), serv.certificate) == verify.NO_IDENTITY
    # … and a practitioner's key certified for serverAuth only is the wrong usage.
    person = ca.issue_person(RPPS, "Jeanne", "Martin")
    assert refused(checker(ca), certs.server_only(ca, person)) == verify.WRONG_USAGE


def test_another_cas_certificate_is_refused(ca: CertificateAuthority, tmp_path: Path) -> None:
    # Same operator name, same subject: only the signature tells them apart.
    other = init_ca(tmp_path / "other", PASSPHRASE, base_url="http://pki.hygie.test/pki")
    forged = other.issue_person(RPPS, "Jeanne", "Martin")
    assert refused(checker(ca), forged.certificate) == verify.NOT_OURS
    assert refused(checker(ca), x509.load_der_x509_certificate(der(forged.certificate))) == (
        verify.NOT_OURS
    )


def test_garbage_is_refused(ca: CertificateAuthority) -> None:
    with pytest.raises(CertificateRejected):
        checker(ca).check(b"\x30\x03\x02\x01\x00")


def test_revocation_applies_to_a_running_checker(ca: CertificateAuthority) -> None:
    issued = ca.issue_person(RPPS, "Jeanne", "Martin")
    other = ca.issue_person("10000000007", "Jean", "Dupont")
    check = checker(ca)
    check.check(der(issued.certificate))  # loads the CRL once
    ca.revoke(issued.certificate.serial_number, x509.ReasonFlags.key_compromise)
    assert refused(check, issued.certificate) == verify.REVOKED
    assert check.check(der(other.certificate)).idnat == "810000000007"


def test_crl_rewritten_in_the_same_second_is_seen(ca: CertificateAuthority) -> None:
    """The CRL stamp includes the size, and a new CRL is never byte-identical (CRL number)."""
    issued = ca.issue_person(RPPS, "Jeanne", "Martin")
    check = checker(ca)
    check.check(der(issued.certificate))
    stat = os.stat(ca.files.crl_der)
    ca.revoke(issued.certificate.serial_number, x509.ReasonFlags.superseded)
    os.utime(ca.files.crl_der, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert refused(check, issued.certificate) == verify.REVOKED


def test_missing_or_forged_crl_fails_closed(ca: CertificateAuthority, tmp_path: Path) -> None:
    issued = ca.issue_person(RPPS, "Jeanne", "Martin")
    ca.files.crl_der.unlink()
    assert refused(checker(ca), issued.certificate) == verify.NO_CRL
    other = init_ca(tmp_path / "other", PASSPHRASE, base_url="http://pki.hygie.test/pki")
    forged = other.crl()
    ca.files.crl_der.write_bytes(forged.public_bytes(serialization.Encoding.DER))
    assert refused(checker(ca), issued.certificate) == verify.NO_CRL


def test_checked_at_a_given_time(ca: CertificateAuthority) -> None:
    issued = ca.issue_person(RPPS, "Jeanne", "Martin")
    later = issued.certificate.not_valid_after_utc + dt.timedelta(seconds=1)
    with pytest.raises(CertificateRejected, match="expired"):
        checker(ca).check(der(issued.certificate), now=later)
