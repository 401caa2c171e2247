"""The operator's certificate authority: a root and an intermediate CA, and issuance.

The hierarchy copies IGC-Santé's "Élémentaire" range (``AC RACINE IGC-SANTE ELEMENTAIRE`` over
``AC IGC-SANTE ELEMENTAIRE ORGANISATIONS``), named after the operator: ``AC RACINE <NAME>
ELEMENTAIRE`` over ``AC <NAME> ELEMENTAIRE ORGANISATIONS``, ``O=<NAME>``, where NAME is given
at ``hygie init`` (default: the mail domain in capitals), so that two operators' chains can be
told apart in logs, trace headers and trust settings (and a peer's issuer found by name,
`server.trust.PeerRevocation`). Certificates follow the
RFC 5280 profile (X.509 v3, §4.1 and §4.2); what each kind of certificate contains is a
`pki.profiles.Profile`. Both CA keys are stored encrypted with the operator's passphrase.

Files in the PKI directory (see `CaFiles`)::

    root-ca.crt          0644  root certificate: the trust anchor clients and peers install
    root-ca.key          0600  root key, PKCS #8 PEM encrypted with the CA passphrase
    intermediate-ca.crt  0644  intermediate certificate, sent by servers after their own
    intermediate-ca.key  0600  intermediate key, PKCS #8 PEM encrypted with the CA passphrase
    ocsp-responder.crt   0644  delegated OCSP responder (made on first use, renewed near expiry)
    ocsp-responder.key   0600  its key, encrypted with the CA passphrase
    ca.json, issued/     settings and the registry of issued certificates (`pki.registry`)
    crl/intermediate.crl the intermediate's CRL, DER (and ``.pem``), rewritten on revocation

Every end-entity certificate carries a CRL distribution point and an AIA (OCSP and caIssuers)
under the base URL kept in ``ca.json`` (`pki.registry.CaSettings`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import ipaddress
import os
import re
from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from pki import identity, pemfile
from pki.errors import PkiError, WrongPassphrase
from pki.keys import (
    PrivateKey,
    PublicKey,
    generate_private_key,
    is_encrypted,
    load_private_key,
    private_key_pem,
    signature_hash,
)
from pki.profiles import INTERMEDIATE_CA, OCSP, ORG, PER, ROOT_CA, SERV, Extension, Profile
from pki.registry import (
    DEFAULT_BASE_URL,
    CaSettings,
    IssuedRecord,
    Registry,
    check_base_url,
)

RANGE: Final = "HYGIE-SANTE"  # the OU of both CAs: the product's range, as IGC-SANTE is
COUNTRY: Final = "FR"
#: The longest CA name: "AC <NAME> ELEMENTAIRE ORGANISATIONS OCSP" must fit a CN (64).
CA_NAME_MAX: Final = 30


def root_cn(name: str) -> str:
    return f"AC RACINE {name} ELEMENTAIRE"


def intermediate_cn(name: str) -> str:
    return f"AC {name} ELEMENTAIRE ORGANISATIONS"


def ca_name(text: str) -> str:
    """An operator's CA name as it goes into the CA subjects: one line of printable
    characters, spaces folded, in capitals like IGC-SANTE. Raises `PkiError`."""
    name = " ".join(text.split()).upper()
    if not name or len(name) > CA_NAME_MAX or not name.isprintable():
        raise PkiError(f"the CA name must be 1 to {CA_NAME_MAX} printable characters, "
                       f"not {text!r}")  # fmt: skip
    return name


def default_ca_name(domain: str) -> str:
    """The CA name for an operator of ``domain``: the domain, or its first label if the
    domain is too long."""
    name = domain.strip().rstrip(".").upper()
    return name if len(name) <= CA_NAME_MAX else name.split(".")[0][:CA_NAME_MAX]


# Certificates are valid from a little before "now", so that a peer whose clock is slightly
# behind ours does not reject a certificate issued a second ago.
CLOCK_SKEW: Final = dt.timedelta(minutes=5)

# RFC 5280 Appendix A.1: ub-common-name.
UB_COMMON_NAME: Final = 64

_T = TypeVar("_T", bound=Hashable)

# RFC 1035 §2.3.1 / RFC 1123 §2.1: letters, digits and hyphens, not at either end.
_DNS_LABEL: Final = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


@dataclass(frozen=True)
class CaFiles:
    """Where a CA lives inside its PKI directory."""

    pki_dir: Path

    @property
    def root_cert(self) -> Path:
        return self.pki_dir / "root-ca.crt"

    @property
    def root_key(self) -> Path:
        return self.pki_dir / "root-ca.key"

    @property
    def intermediate_cert(self) -> Path:
        return self.pki_dir / "intermediate-ca.crt"

    @property
    def intermediate_key(self) -> Path:
        return self.pki_dir / "intermediate-ca.key"

    @property
    def ocsp_cert(self) -> Path:
        return self.pki_dir / "ocsp-responder.crt"

    @property
    def ocsp_key(self) -> Path:
        return self.pki_dir / "ocsp-responder.key"

    @property
    def crl_der(self) -> Path:
        return self.pki_dir / "crl" / "intermediate.crl"

    @property
    def crl_pem(self) -> Path:
        return self.pki_dir / "crl" / "intermediate.crl.pem"

    def all(self) -> tuple[Path, ...]:
        return (self.root_cert, self.root_key, self.intermediate_cert, self.intermediate_key)


@dataclass(frozen=True)
class IssuedCertificate:
    """An end-entity certificate, its private key, and the CA certificates above it.

    ``chain`` runs from the issuer up to, but not including, the root: what a TLS server sends
    after its own certificate (RFC 8446 §4.4.2 lets it omit the trust anchor).
    """

    certificate: x509.Certificate
    private_key: PrivateKey = field(repr=False)
    chain: tuple[x509.Certificate, ...] = ()

    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def chain_pem(self) -> bytes:
        """The certificate then its issuers, as a TLS server presents them."""
        return self.cert_pem() + b"".join(
            cert.public_bytes(serialization.Encoding.PEM) for cert in self.chain
        )

    def key_pem(self, passphrase: bytes | None = None) -> bytes:
        """PKCS #8 PEM private key, encrypted when a passphrase is given."""
        return private_key_pem(self.private_key, passphrase)

    def pkcs12(self, passphrase: bytes, friendly_name: bytes) -> bytes:
        """PKCS #12 (RFC 7292) with the key, the certificate and the chain, encrypted."""
        if not passphrase:
            raise PkiError("a PKCS #12 file needs a passphrase")
        return pkcs12.serialize_key_and_certificates(
            friendly_name,
            self.private_key,
            self.certificate,
            list(self.chain),
            serialization.BestAvailableEncryption(passphrase),
        )


@dataclass(frozen=True)
class CertificateAuthority:
    """A loaded root and intermediate CA, ready to issue (see `init_ca` and `load`)."""

    pki_dir: Path
    root_certificate: x509.Certificate
    root_key: PrivateKey = field(repr=False)
    intermediate_certificate: x509.Certificate
    intermediate_key: PrivateKey = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    # Kept to encrypt the OCSP responder's key, which the CA makes on first use.
    passphrase: bytes = field(default=b"", repr=False, compare=False)
    _cache: dict[str, tuple[x509.Certificate, PrivateKey]] = field(
        default_factory=dict, repr=False, compare=False
    )

    @property
    def files(self) -> CaFiles:
        return CaFiles(self.pki_dir)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the CA's lock (``ca.lock`` in its directory, ``flock``): the worker processes
        of one machine write a CRL (its number), a revocation or the OCSP responder one at a
        time."""
        fd = os.open(self.pki_dir / "ca.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    @property
    def operator(self) -> str:
        """The operator's name, as the ``O`` of the intermediate CA."""
        return _attribute(self.intermediate_certificate.subject, NameOID.ORGANIZATION_NAME)

    @classmethod
    def load(cls, pki_dir: Path, passphrase: bytes) -> CertificateAuthority:
        """Read the CA from ``pki_dir``, decrypting both keys and checking they fit together."""
        files = CaFiles(pki_dir)
        root_certificate = _load_certificate(files.root_cert, what="root CA certificate")
        intermediate_certificate = _load_certificate(
            files.intermediate_cert, what="intermediate CA certificate"
        )
        root_key = _load_ca_key(files.root_key, passphrase, what="root CA key")
        intermediate_key = _load_ca_key(
            files.intermediate_key, passphrase, what="intermediate CA key"
        )
        if root_key.public_key() != root_certificate.public_key():
            raise PkiError(f"{files.root_key} does not belong to {files.root_cert}")
        if intermediate_key.public_key() != intermediate_certificate.public_key():
            raise PkiError(f"{files.intermediate_key} does not belong to {files.intermediate_cert}")
        try:
            intermediate_certificate.verify_directly_issued_by(root_certificate)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise PkiError(
                f"{files.intermediate_cert} was not issued by {files.root_cert}: {exc}"
            ) from exc
        return cls(
            pki_dir=pki_dir,
            root_certificate=root_certificate,
            root_key=root_key,
            intermediate_certificate=intermediate_certificate,
            intermediate_key=intermediate_key,
            base_url=CaSettings.load(pki_dir).base_url,
            passphrase=passphrase,
        )

    def issue_server(
        self,
        hostnames: Sequence[str],
        ip_addresses: Sequence[str] = (),
        *,
        key_type: str = "rsa",
        days: int = SERV.days,
    ) -> IssuedCertificate:
        """A SERV certificate for a TLS server known by ``hostnames`` (and ``ip_addresses``).

        Every name goes in the subjectAltName, which is what TLS clients check (RFC 9525 §6.3);
        the first host name is also the subject CN, for people and older tools.
        """
        dns_names = _unique(_dns_name(hostname) for hostname in hostnames)
        ips = _unique(_ip_address(address) for address in ip_addresses)
        if not dns_names:
            raise PkiError("a server certificate needs at least one host name")
        attributes = [
            x509.NameAttribute(NameOID.COUNTRY_NAME, COUNTRY),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.operator),
        ]
        # Longer host names are still certified by the SAN; X.520 caps the CN at 64.
        if len(dns_names[0]) <= UB_COMMON_NAME:
            attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0]))
        alt_names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
        alt_names += [x509.IPAddress(ip) for ip in ips]
        return self.issue(SERV, x509.Name(attributes), alt_names, key_type=key_type, days=days)

    def issue_org(
        self,
        service_name: str,
        organisation: str,
        *,
        siret: str | None = None,
        finess: str | None = None,
        key_type: str = "rsa",
        days: int = ORG.days,
    ) -> IssuedCertificate:
        """An ORG certificate for a service of a structure known by its SIRET or FINESS."""
        subject = identity.org_subject(service_name, organisation, siret=siret, finess=finess)
        return self.issue(ORG, subject, key_type=key_type, days=days)

    def issue_person(
        self,
        rpps: str,
        given_name: str,
        surname: str,
        *,
        organisation: str | None = None,
        key_type: str = "rsa",
        days: int = PER.days,
    ) -> IssuedCertificate:
        """A PER certificate for the practitioner with this RPPS number (see `pki.identity`)."""
        subject = identity.person_subject(rpps, given_name, surname, organisation=organisation)
        return self.issue(PER, subject, key_type=key_type, days=days)

    def move_publication(self, base_url: str) -> CertificateAuthority:
        """Name ``base_url`` in the certificates issued from now on (CRL distribution point,
        OCSP, caIssuers); the CA as it then is. Certificates already issued keep the address
        they were signed with: re-issue those that relying parties check (the server
        certificate first). The CA certificates themselves name no address (their revocation
        is a change of trust anchors), so they stay."""
        base_url = check_base_url(base_url)
        settings = CaSettings.load(self.pki_dir)
        CaSettings(base_url=base_url, crl_number=settings.crl_number).save(self.pki_dir)
        return replace(self, base_url=base_url, _cache=self._cache)

    # --- registry and revocation ---------------------------------------------------------

    @property
    def registry(self) -> Registry:
        return Registry(self.pki_dir)

    def issued(self) -> list[IssuedRecord]:
        return self.registry.records()

    def find(self, serial: int | str) -> IssuedRecord | None:
        return self.registry.find(serial)

    def revoke(self, serial: int | str, reason: x509.ReasonFlags) -> IssuedRecord:
        """Mark a certificate revoked now and publish a new CRL."""
        with self.lock():
            record = self.registry.revoke(
                serial, reason, dt.datetime.now(dt.UTC).replace(microsecond=0)
            )
            self.write_crl()
        return record

    def crl(self, *, next_update_hours: int = 24) -> x509.CertificateRevocationList:
        """A new CRL of the intermediate CA (RFC 5280 §5), with the next CRL number."""
        if next_update_hours < 1:
            raise PkiError("a CRL's nextUpdate must be at least one hour ahead")
        settings = CaSettings.load(self.pki_dir)
        number = settings.crl_number + 1
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.intermediate_certificate.subject)
            .last_update(now)
            .next_update(now + dt.timedelta(hours=next_update_hours))
            .add_extension(x509.CRLNumber(number), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                    _key_identifier(self.intermediate_certificate)
                ),
                critical=False,
            )
        )
        for record in self.issued():
            if record.status != "revoked" or record.revoked_at is None:
                continue
            revoked = (
                x509.RevokedCertificateBuilder()
                .serial_number(record.serial)
                .revocation_date(record.revoked_at)
            )
            # RFC 5280 §5.3.1: omit reasonCode rather than say "unspecified".
            if record.reason not in (None, x509.ReasonFlags.unspecified):
                revoked = revoked.add_extension(x509.CRLReason(record.reason), critical=False)
            builder = builder.add_revoked_certificate(revoked.build())
        crl = builder.sign(self.intermediate_key, hashes.SHA256())
        CaSettings(base_url=settings.base_url, crl_number=number).save(self.pki_dir)
        return crl

    def write_crl(self, *, next_update_hours: int = 24) -> x509.CertificateRevocationList:
        """Make a new CRL and publish it as ``crl/intermediate.crl`` (DER) and ``.crl.pem``."""
        crl = self.crl(next_update_hours=next_update_hours)
        try:
            self.files.crl_der.parent.mkdir(mode=0o755, exist_ok=True)
            pemfile.replace(
                self.files.crl_der, crl.public_bytes(serialization.Encoding.DER), private=False
            )
            pemfile.replace(
                self.files.crl_pem, crl.public_bytes(serialization.Encoding.PEM), private=False
            )
        except OSError as exc:
            raise PkiError(f"cannot write the CRL: {exc}") from exc
        return crl

    def ocsp_responder(self) -> tuple[x509.Certificate, PrivateKey]:
        """The delegated OCSP responder, made (or renewed, a week before expiry) on demand."""
        now = dt.datetime.now(dt.UTC)
        cached = self._cache.get("ocsp")
        if cached is not None and cached[0].not_valid_after_utc - now >= dt.timedelta(days=7):
            return cached
        with self.lock():  # another worker may be making it: one key and certificate pair
            return self._ocsp_responder_locked(now, cached)

    def _ocsp_responder_locked(
        self, now: dt.datetime, cached: tuple[x509.Certificate, PrivateKey] | None
    ) -> tuple[x509.Certificate, PrivateKey]:
        files = self.files
        if files.ocsp_cert.exists():
            certificate = _load_certificate(files.ocsp_cert, what="OCSP responder certificate")
            key = _load_ca_key(files.ocsp_key, self.passphrase, what="OCSP responder key")
            cached = (certificate, key)
        if cached is None or cached[0].not_valid_after_utc - now < dt.timedelta(days=7):
            if not self.passphrase:
                raise PkiError("the CA passphrase is needed to make the OCSP responder")
            key = generate_private_key(
                "ec" if isinstance(self.intermediate_key, ec.EllipticCurvePrivateKey) else "rsa"
            )
            subject = x509.Name(
                [
                    x509.NameAttribute(NameOID.COUNTRY_NAME, COUNTRY),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.operator),
                    x509.NameAttribute(NameOID.COMMON_NAME, self._ocsp_cn()),
                ]
            )
            certificate = self.certify(OCSP, subject, key.public_key())
            try:
                pemfile.replace(files.ocsp_key, private_key_pem(key, self.passphrase), private=True)
                pemfile.replace(
                    files.ocsp_cert,
                    certificate.public_bytes(serialization.Encoding.PEM),
                    private=False,
                )
            except OSError as exc:
                raise PkiError(f"cannot write the OCSP responder: {exc}") from exc
            cached = (certificate, key)
        self._cache["ocsp"] = cached
        return cached

    def _ocsp_cn(self) -> str:
        issuer = self.intermediate_certificate.subject
        names = issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
        base = str(names[0].value) if names else self.operator
        return f"{base[: UB_COMMON_NAME - 5]} OCSP"

    def ocsp_response(self, request_der: bytes, *, next_update_hours: int = 1) -> bytes:
        """The DER OCSP response (RFC 6960) to a DER request; never raises on a bad request."""
        try:
            request = ocsp.load_der_ocsp_request(request_der)
            algorithm = request.hash_algorithm
            serial = request.serial_number
            name_hash, key_hash = request.issuer_name_hash, request.issuer_key_hash
        except (ValueError, TypeError):
            return ocsp.OCSPResponseBuilder.build_unsuccessful(
                ocsp.OCSPResponseStatus.MALFORMED_REQUEST
            ).public_bytes(serialization.Encoding.DER)
        responder, responder_key = self.ocsp_responder()
        try:
            # The issuer hashes of our intermediate, computed with the request's algorithm.
            ours = (
                ocsp.OCSPRequestBuilder()
                .add_certificate(responder, self.intermediate_certificate, algorithm)
                .build()
            )
        except (ValueError, TypeError):
            return ocsp.OCSPResponseBuilder.build_unsuccessful(
                ocsp.OCSPResponseStatus.MALFORMED_REQUEST
            ).public_bytes(serialization.Encoding.DER)
        record = None
        if (name_hash, key_hash) == (ours.issuer_name_hash, ours.issuer_key_hash):
            record = self.find(serial)
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        status, revoked_at, reason = ocsp.OCSPCertStatus.UNKNOWN, None, None
        if record is not None and record.status == "revoked":
            status, revoked_at, reason = (
                ocsp.OCSPCertStatus.REVOKED,
                record.revoked_at,
                record.reason,
            )
        elif record is not None:
            status = ocsp.OCSPCertStatus.GOOD
        builder = (
            ocsp.OCSPResponseBuilder()
            .add_response_by_hash(
                name_hash,
                key_hash,
                serial,
                algorithm,
                status,
                now,
                now + dt.timedelta(hours=next_update_hours),
                revoked_at,
                reason,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, responder)
            .certificates([responder])
        )
        try:
            nonce = request.extensions.get_extension_for_class(x509.OCSPNonce)
        except x509.ExtensionNotFound:
            pass
        else:
            builder = builder.add_extension(nonce.value, critical=False)
        response = builder.sign(responder_key, signature_hash(responder_key))
        return response.public_bytes(serialization.Encoding.DER)

    def _distribution_extensions(self) -> list[Extension]:
        settings = CaSettings(base_url=self.base_url)
        uri = x509.UniformResourceIdentifier
        return [
            (
                x509.CRLDistributionPoints(
                    [x509.DistributionPoint([uri(settings.crl_url)], None, None, None)]
                ),
                False,
            ),
            (
                x509.AuthorityInformationAccess(
                    [
                        x509.AccessDescription(
                            AuthorityInformationAccessOID.OCSP, uri(settings.ocsp_url)
                        ),
                        x509.AccessDescription(
                            AuthorityInformationAccessOID.CA_ISSUERS,
                            uri(settings.ca_issuers_url),
                        ),
                    ]
                ),
                False,
            ),
        ]

    def issue(
        self,
        profile: Profile,
        subject: x509.Name,
        alt_names: Sequence[x509.GeneralName] = (),
        *,
        key_type: str = "rsa",
        days: int | None = None,
    ) -> IssuedCertificate:
        """A new key pair and a certificate on it, from the intermediate CA, per ``profile``."""
        private_key = generate_private_key(key_type)
        certificate = self.certify(profile, subject, private_key.public_key(), alt_names, days=days)
        return IssuedCertificate(certificate, private_key, (self.intermediate_certificate,))

    def certify(
        self,
        profile: Profile,
        subject: x509.Name,
        public_key: PublicKey,
        alt_names: Sequence[x509.GeneralName] = (),
        *,
        days: int | None = None,
    ) -> x509.Certificate:
        """Sign a certificate for someone else's ``public_key`` (e.g. from a CSR)."""
        if profile.is_ca:
            raise PkiError(f"the intermediate CA does not issue {profile.name} certificates")
        certificate = _sign(
            profile,
            subject,
            public_key,
            alt_names,
            issuer=self.intermediate_certificate,
            issuer_key=self.intermediate_key,
            days=profile.days if days is None else days,
            # The responder is checked by no one (id-pkix-ocsp-nocheck): no CDP or AIA.
            extra=() if profile.ocsp_no_check else self._distribution_extensions(),
        )
        self.registry.add(certificate, profile.name)
        return certificate


def init_ca(
    pki_dir: Path,
    passphrase: bytes,
    *,
    operator: str = "HYGIE",
    key_type: str = "rsa",
    base_url: str = DEFAULT_BASE_URL,
) -> CertificateAuthority:
    """Create the root and intermediate CAs in ``pki_dir`` and write them (see `CaFiles`),
    named after ``operator`` (`ca_name`).

    Refuses to run if any CA file is already there: replacing a CA silently would orphan every
    certificate it issued.
    """
    if not passphrase:
        raise PkiError("the CA passphrase must not be empty")
    operator = ca_name(operator)
    base_url = check_base_url(base_url)
    files = CaFiles(pki_dir)
    existing = [path.name for path in files.all() if path.exists() or path.is_symlink()]
    if existing:
        raise PkiError(
            f"refusing to overwrite the existing CA in {pki_dir} ({', '.join(existing)}); "
            "move it away first to create a new one"
        )

    root_key = generate_private_key(key_type)
    root_certificate = _sign(
        ROOT_CA,
        _ca_name(root_cn(operator), operator),
        root_key.public_key(),
        issuer=None,
        issuer_key=root_key,
        days=ROOT_CA.days,
    )
    intermediate_key = generate_private_key(key_type)
    intermediate_certificate = _sign(
        INTERMEDIATE_CA,
        _ca_name(intermediate_cn(operator), operator),
        intermediate_key.public_key(),
        issuer=root_certificate,
        issuer_key=root_key,
        days=INTERMEDIATE_CA.days,
    )

    try:
        pki_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise PkiError(f"cannot create the PKI directory {pki_dir}: {exc.strerror}") from exc
    contents = [
        (files.root_key, private_key_pem(root_key, passphrase), True),
        (files.intermediate_key, private_key_pem(intermediate_key, passphrase), True),
        (files.root_cert, root_certificate.public_bytes(serialization.Encoding.PEM), False),
        (
            files.intermediate_cert,
            intermediate_certificate.public_bytes(serialization.Encoding.PEM),
            False,
        ),
    ]
    written: list[Path] = []
    try:
        for path, data, private in contents:
            pemfile.write_new(path, data, private=private)
            written.append(path)
    except OSError as exc:
        # Leave no half-made CA behind: it would block the next attempt.
        for path in written:
            path.unlink(missing_ok=True)
        if isinstance(exc, FileExistsError):
            raise PkiError(f"refusing to overwrite the existing CA file {exc.filename}") from exc
        raise PkiError(f"cannot write the CA into {pki_dir}: {exc}") from exc
    CaSettings(base_url=base_url).save(pki_dir)

    return CertificateAuthority(
        pki_dir=pki_dir,
        root_certificate=root_certificate,
        root_key=root_key,
        intermediate_certificate=intermediate_certificate,
        intermediate_key=intermediate_key,
        base_url=base_url,
        passphrase=passphrase,
    )


def write_server_credentials(issued: IssuedCertificate, cert_file: Path, key_file: Path) -> None:
    """Write a server's chain PEM and its private key, replacing older ones atomically.

    The key is written unencrypted (mode 0600): ``hygie serve`` must start unattended, at boot
    or after a crash, with no one to type a passphrase, and a passphrase stored next to the
    key would protect nothing. File permissions are what guard it; the CA keys, which can
    mint new identities, stay encrypted.
    """
    try:
        pemfile.replace(key_file, issued.key_pem(), private=True)
        pemfile.replace(cert_file, issued.chain_pem(), private=False)
    except OSError as exc:
        raise PkiError(f"cannot write server credentials: {exc}") from exc


def _sign(
    profile: Profile,
    subject: x509.Name,
    public_key: PublicKey,
    alt_names: Sequence[x509.GeneralName] = (),
    *,
    issuer: x509.Certificate | None,
    issuer_key: PrivateKey,
    days: int,
    extra: Sequence[Extension] = (),
) -> x509.Certificate:
    """Build and sign one certificate; ``issuer=None`` makes it self-signed."""
    if days < 1:
        raise PkiError(f"a certificate must be valid for at least one day, not {days}")
    if profile.requires_alt_names and not alt_names:
        raise PkiError(f"a {profile.name} certificate needs at least one subjectAltName")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    not_after = now + dt.timedelta(days=days)
    if issuer is None:
        issuer_name = subject
        issuer_key_identifier = x509.SubjectKeyIdentifier.from_public_key(public_key)
    else:
        issuer_name = issuer.subject
        issuer_key_identifier = _key_identifier(issuer)
        # Nothing outlives its issuer (RFC 5280 §6.1.3 checks every certificate on the path).
        not_after = min(not_after, issuer.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(public_key)
        # RFC 5280 §4.1.2.2: positive, unique per CA, at most 20 octets; this is 159 random
        # bits, which also keeps serials unpredictable.
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(not_after)
    )
    for extension, critical in profile.extensions(
        public_key, issuer_key_identifier, alt_names, empty_subject=not list(subject)
    ):
        builder = builder.add_extension(extension, critical=critical)
    for extension, critical in extra:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(issuer_key, signature_hash(issuer_key))


def _ca_name(common_name: str, operator: str) -> x509.Name:
    # RFC 5280 §4.1.2.4: the RDN sequence runs from the country down to the CN.
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, COUNTRY),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, operator),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, RANGE),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    values = name.get_attributes_for_oid(oid)
    if not values:
        raise PkiError(f"{name.rfc4514_string()} has no attribute {oid.dotted_string}")
    value = values[0].value
    return value if isinstance(value, str) else value.decode()


def _key_identifier(certificate: x509.Certificate) -> x509.SubjectKeyIdentifier:
    try:
        return certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(certificate.public_key())


def _dns_name(hostname: str) -> str:
    """``hostname`` as it must appear in a dNSName: lower case, A-labels (RFC 5280 §4.2.1.6)."""
    name = hostname.lower().removesuffix(".")
    try:
        ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        raise PkiError(f"{hostname!r} is an IP address: pass it in ip_addresses")
    try:
        # Python's codec is IDNA 2003 (RFC 3490); RFC 5280 §7.2 asks for A-labels either way.
        name = name.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise PkiError(f"not a valid DNS host name: {hostname!r}") from exc
    labels = name.split(".")
    if len(name) > 253 or not all(_DNS_LABEL.fullmatch(label) for label in labels):
        raise PkiError(f"not a valid DNS host name: {hostname!r}")
    return name


def _ip_address(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(address)
    except ValueError as exc:
        raise PkiError(f"not an IP address: {address!r}") from exc


def _unique(items: Iterable[_T]) -> list[_T]:
    """``items`` without repeats, first occurrence first."""
    return list(dict.fromkeys(items))


def _load_certificate(path: Path, *, what: str) -> x509.Certificate:
    pem = pemfile.read(path, what=what)
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise PkiError(f"{what} {path} is not a PEM certificate") from exc


def _load_ca_key(path: Path, passphrase: bytes, *, what: str) -> PrivateKey:
    pem = pemfile.read(path, what=what)
    if not is_encrypted(pem):
        # Design §4: CA private keys are encrypted at rest; an unprotected one is a mistake.
        raise PkiError(f"{what} {path} is not encrypted; CA keys must be")
    try:
        return load_private_key(pem, passphrase, what=f"{what} {path}")
    except WrongPassphrase as exc:
        raise PkiError(f"wrong CA passphrase: cannot decrypt {path}") from exc
