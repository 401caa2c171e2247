"""Client certificates that must be refused, made by signing with a CA's own key the way a
faulty or hostile issuer would: shifted validity dates, another CA, a server-only usage."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from pki.ca import CertificateAuthority, IssuedCertificate


def reissued(
    ca: CertificateAuthority,
    good: IssuedCertificate,
    not_before: dt.datetime,
    days: float,
    *,
    usage: x509.ExtendedKeyUsage | None = None,
) -> x509.Certificate:
    """``good``'s subject, key and extensions, signed again by ``ca``'s intermediate with
    another validity period (and serial), and optionally another extended key usage."""
    cert = good.certificate
    builder = (
        x509.CertificateBuilder()
        .subject_name(cert.subject)
        .issuer_name(cert.issuer)
        .public_key(cert.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + dt.timedelta(days=days))
    )
    for ext in cert.extensions:
        value = (
            usage
            if usage is not None and isinstance(ext.value, x509.ExtendedKeyUsage)
            else ext.value
        )
        builder = builder.add_extension(value, ext.critical)
    return builder.sign(ca.intermediate_key, hashes.SHA256())  # type: ignore[arg-type]


def expired(ca: CertificateAuthority, good: IssuedCertificate) -> x509.Certificate:
    return reissued(ca, good, dt.datetime.now(dt.UTC) - dt.timedelta(days=10), 5)


def not_yet_valid(ca: CertificateAuthority, good: IssuedCertificate) -> x509.Certificate:
    return reissued(ca, good, dt.datetime.now(dt.UTC) + dt.timedelta(days=2), 5)


def server_only(ca: CertificateAuthority, good: IssuedCertificate) -> x509.Certificate:
    """``good`` with serverAuth as its only extended key usage."""
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    return reissued(
        ca, good, now, 30, usage=x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])
    )


def write_pair(
    directory: Path,
    stem: str,
    certificate: x509.Certificate,
    issued: IssuedCertificate,
) -> tuple[Path, Path]:
    """PEM files a client presents: the certificate then the intermediate, and the key
    (unencrypted, as openssl/curl/swaks read it)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = directory / f"{stem}.crt", directory / f"{stem}.key"
    chain = certificate.public_bytes(serialization.Encoding.PEM) + b"".join(
        c.public_bytes(serialization.Encoding.PEM) for c in issued.chain
    )
    cert_file.write_bytes(chain)
    key_file.write_bytes(issued.key_pem())
    key_file.chmod(0o600)
    return cert_file, key_file
