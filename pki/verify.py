"""Checking a TLS client certificate for SASL EXTERNAL (RFC 4422 Appendix A) against our CA.

The TLS handshake (OpenSSL, see `pki.tls.server_context`) checks only that the certificate
chains to our root (else the ``unknown_ca`` alert ends it). The rest is checked here, at
authentication time, so that the client gets a reply naming what is wrong ("certificate
expired") and the session may still log in another way: the validity period (of the
certificate and of our intermediate), the clientAuth extended key usage, and revocation against
the CRL file that `CertificateAuthority.revoke` rewrites. That file is re-read whenever its
modification time or size changes, so a ``hygie pki revoke`` in another process takes effect
for the next login (design.md §4: CRL "reloaded when it changes").

The issuer signature is checked again too, so that this module is correct on its own,
whatever TLS stack hands it a certificate.

Identity (IGC-Santé subject rules, see `pki.identity`): a PER certificate names the
practitioner's IdNat in ``UID``/``serialNumber``; an ORG certificate is identified by its whole
subject (RFC 4514 string), to which the operator binds a mailbox.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pki.errors import PkiError
from pki.identity import RPPS_PREFIX


class CertificateRejected(PkiError):
    """The certificate cannot authenticate anyone; ``reason`` is a short fixed phrase."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


#: Reasons, as shown to the client.
NOT_OURS: Final = "certificate not issued by this operator's CA"
EXPIRED: Final = "certificate expired"
NOT_YET_VALID: Final = "certificate not yet valid"
REVOKED: Final = "certificate revoked"
WRONG_USAGE: Final = "certificate not valid for client authentication"
NO_IDENTITY: Final = "certificate names no practitioner or organisation"
NO_CRL: Final = "revocation status unavailable"


@dataclass(frozen=True)
class ClientIdentity:
    """Who a valid client certificate speaks for."""

    serial: int
    kind: str  # "PER" or "ORG"
    subject: str  # RFC 4514
    idnat: str | None  # PER only: "8" + RPPS (or "0" + ADELI)

    @property
    def serial_hex(self) -> str:
        return f"{self.serial:X}"


def subject_string(name: x509.Name) -> str:
    """The RFC 4514 form used to bind ORG certificates to mailboxes."""
    return name.rfc4514_string()


class ClientCertificateChecker:
    """Validates client certificates issued by the intermediate CA in ``pki_dir``."""

    def __init__(self, intermediate: x509.Certificate, crl_file: Path) -> None:
        self.intermediate = intermediate
        self.crl_file = crl_file
        self._lock = threading.Lock()
        self._crl_stamp: tuple[int, int] | None = None
        self._revoked: frozenset[int] = frozenset()

    @classmethod
    def for_ca(cls, pki_dir: Path) -> ClientCertificateChecker:
        from pki.ca import CaFiles  # the CA module is heavy; this keeps imports one-way

        files = CaFiles(pki_dir)
        try:
            intermediate = x509.load_pem_x509_certificate(files.intermediate_cert.read_bytes())
        except (OSError, ValueError) as exc:
            raise PkiError(f"cannot read the intermediate CA certificate: {exc}") from exc
        return cls(intermediate, files.crl_der)

    # -- revocation -------------------------------------------------------------------------

    def revoked_serials(self) -> frozenset[int]:
        """The serials on the current CRL, re-read if the file changed since last time."""
        try:
            st = os.stat(self.crl_file)
        except FileNotFoundError:
            raise CertificateRejected(NO_CRL) from None
        stamp = (st.st_mtime_ns, st.st_size)
        with self._lock:
            if stamp != self._crl_stamp:
                self._revoked = self._load_crl()
                self._crl_stamp = stamp
            return self._revoked

    def _load_crl(self) -> frozenset[int]:
        try:
            crl = x509.load_der_x509_crl(self.crl_file.read_bytes())
        except (OSError, ValueError):
            raise CertificateRejected(NO_CRL) from None
        issuer_key = self.intermediate.public_key()
        if crl.issuer != self.intermediate.subject or not crl.is_signature_valid(
            issuer_key  # type: ignore[arg-type]
        ):
            raise CertificateRejected(NO_CRL)
        return frozenset(entry.serial_number for entry in crl)

    # -- the check ------------------------------------------------------------------------

    def check(self, der: bytes, *, now: dt.datetime | None = None) -> ClientIdentity:
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError:
            raise CertificateRejected(NOT_OURS) from None
        self._check_issuer(cert)
        now = now or dt.datetime.now(dt.UTC)
        for checked in (cert, self.intermediate):
            if now < checked.not_valid_before_utc:
                raise CertificateRejected(NOT_YET_VALID)
            if now > checked.not_valid_after_utc:
                raise CertificateRejected(EXPIRED)
        try:
            eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            raise CertificateRejected(WRONG_USAGE) from None
        if ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
            raise CertificateRejected(WRONG_USAGE)
        if cert.serial_number in self.revoked_serials():
            raise CertificateRejected(REVOKED)
        return identity_of(cert)

    def _check_issuer(self, cert: x509.Certificate) -> None:
        if cert.issuer != self.intermediate.subject:
            raise CertificateRejected(NOT_OURS)
        key = self.intermediate.public_key()
        try:
            if isinstance(key, rsa.RSAPublicKey):
                assert cert.signature_hash_algorithm is not None
                key.verify(
                    cert.signature,
                    cert.tbs_certificate_bytes,
                    padding.PKCS1v15(),
                    cert.signature_hash_algorithm,
                )
            elif isinstance(key, ec.EllipticCurvePublicKey):
                assert cert.signature_hash_algorithm is not None
                key.verify(
                    cert.signature,
                    cert.tbs_certificate_bytes,
                    ec.ECDSA(cert.signature_hash_algorithm),
                )
            else:
                raise CertificateRejected(NOT_OURS)
        except (InvalidSignature, AssertionError):
            raise CertificateRejected(NOT_OURS) from None


def identity_of(cert: x509.Certificate) -> ClientIdentity:
    """PER when the subject carries an IdNat in ``UID``, else ORG when it has an ``OU``."""
    subject = cert.subject
    uids = subject.get_attributes_for_oid(NameOID.USER_ID)
    if uids:
        idnat = str(uids[0].value)
        if idnat[:1] in (RPPS_PREFIX, "0") and idnat[1:].isdigit():
            return ClientIdentity(cert.serial_number, "PER", subject_string(subject), idnat)
    if subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME):
        return ClientIdentity(cert.serial_number, "ORG", subject_string(subject), None)
    raise CertificateRejected(NO_IDENTITY)
