"""The server certificate's revocation, checked by the client (MSSanté ECO.1.1.5/6, reference
(b) case 4): right after the TLS handshake and before any credential is sent, the server's
certificate is looked up in its issuer's CRL, fetched from the certificate's CRL distribution
point (RFC 5280 §4.2.1.13, HTTP).

The CRL counts only when its signature is the issuer's: a certificate of the account's CA file,
or the intermediate CA named by the certificate's caIssuers (RFC 5280 §4.2.2.1), itself
signed by a certificate of the CA file. The last valid CRL of each distribution point is kept
in the cache directory: when a fresh one cannot be had (the point is down, or what it serves
is expired or badly signed), the last valid one is used. A revoked certificate ends the
connection. When no valid CRL can be had at all, ``strict`` refuses the connection; otherwise
the connection goes on (the server's own certificate checks, TLS and host name, still hold).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import ssl
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtensionOID

MAX_BYTES = 8 * 1024 * 1024
TIMEOUT = 10.0


class ServerRevoked(Exception):
    """The server's certificate is revoked, or its revocation cannot be checked (strict)."""


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hygie-client" / "crl"


def _get(url: str) -> bytes:
    if not url.startswith("http://") and not url.startswith("https://"):
        raise OSError(f"not an HTTP URL: {url}")
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:  # noqa: S310 (checked above)
        data: bytes = response.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise OSError(f"{url}: larger than {MAX_BYTES} bytes")
    return data


def _load_crl(data: bytes) -> x509.CertificateRevocationList:
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_crl(data)
    return x509.load_der_x509_crl(data)


def _urls(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> list[str]:
    try:
        extension = cert.extensions.get_extension_for_oid(oid).value
    except x509.ExtensionNotFound:
        return []
    urls: list[str] = []
    if isinstance(extension, x509.CRLDistributionPoints):
        for point in extension:
            names = point.full_name or []
            urls += [n.value for n in names if isinstance(n, x509.UniformResourceIdentifier)]
    elif isinstance(extension, x509.AuthorityInformationAccess):
        urls += [d.access_location.value for d in extension
                 if d.access_method == AuthorityInformationAccessOID.CA_ISSUERS
                 and isinstance(d.access_location, x509.UniformResourceIdentifier)]  # fmt: skip
    return urls


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


@dataclass
class RevocationChecker:
    ca_file: Path | None
    cache: Path
    strict: bool = False
    #: The issuers found for each issuer name, for the session's life (one caIssuers fetch).
    _issuers: dict[bytes, list[x509.Certificate]] = field(default_factory=dict)

    def anchors(self) -> list[x509.Certificate]:
        if self.ca_file is None:
            return []
        try:
            return x509.load_pem_x509_certificates(self.ca_file.read_bytes())
        except (OSError, ValueError):
            return []

    def issuers(self, cert: x509.Certificate) -> list[x509.Certificate]:
        """The certificates whose signature a CRL for ``cert`` may carry."""
        key = cert.issuer.public_bytes()
        if key not in self._issuers:
            self._issuers[key] = self._find_issuers(cert)
        return self._issuers[key]

    def _find_issuers(self, cert: x509.Certificate) -> list[x509.Certificate]:
        anchors = self.anchors()
        found = [a for a in anchors if a.subject == cert.issuer]
        if found:
            return found
        for url in _urls(cert, ExtensionOID.AUTHORITY_INFORMATION_ACCESS):
            try:
                data = _get(url)
                issuer = (x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data
                          else x509.load_der_x509_certificate(data))  # fmt: skip
            except (OSError, ValueError):
                continue
            if issuer.subject == cert.issuer and any(_issued_by(issuer, a) for a in anchors):
                return [issuer]
        return []

    def _valid(self, crl: x509.CertificateRevocationList, issuers: list[x509.Certificate],
               now: dt.datetime) -> bool:  # fmt: skip
        signed = any(crl.issuer == i.subject and crl.is_signature_valid(i.public_key())  # type: ignore[arg-type]
                     for i in issuers)  # fmt: skip
        return signed and (crl.next_update_utc is None or crl.next_update_utc > now)

    def crl(self, cert: x509.Certificate) -> x509.CertificateRevocationList | None:
        """A valid CRL for ``cert``: a fresh one (kept as the last valid), else the last valid
        one kept; None when there is neither."""
        issuers = self.issuers(cert)
        if not issuers:
            return None
        now = dt.datetime.now(dt.UTC)
        for url in _urls(cert, ExtensionOID.CRL_DISTRIBUTION_POINTS):
            kept = self.cache / (hashlib.sha256(url.encode()).hexdigest()[:32] + ".crl")
            try:
                data = _get(url)
                crl = _load_crl(data)
                if self._valid(crl, issuers, now):
                    self.cache.mkdir(parents=True, exist_ok=True)
                    tmp = kept.with_suffix(".tmp")
                    tmp.write_bytes(data)
                    os.replace(tmp, kept)
                    return crl
            except (OSError, ValueError):
                pass
            try:
                crl = _load_crl(kept.read_bytes())
            except (OSError, ValueError):
                continue
            # The last valid CRL: signed by the issuer, possibly past its nextUpdate now.
            if any(crl.issuer == i.subject and crl.is_signature_valid(i.public_key())  # type: ignore[arg-type]
                   for i in issuers):  # fmt: skip
                return crl
        return None

    def check(self, der: bytes | None) -> None:
        """Raise :class:`ServerRevoked` if the server certificate ``der`` is revoked (or, when
        strict, if no valid CRL says it is not). Blocking: run it in a thread."""
        if der is None:
            return
        cert = x509.load_der_x509_certificate(der)
        if not _urls(cert, ExtensionOID.CRL_DISTRIBUTION_POINTS):
            return  # a certificate without a distribution point: nothing to look up
        crl = self.crl(cert)
        if crl is None:
            if self.strict:
                raise ServerRevoked("the server certificate's revocation cannot be checked "
                                    "(no valid CRL)")  # fmt: skip
            return
        if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
            raise ServerRevoked("the server certificate is revoked (its CA's CRL lists it)")


def peer_certificate(ssl_object: object) -> bytes | None:
    if isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        return ssl_object.getpeercert(binary_form=True)
    return None
