"""Certificate profiles: what each kind of certificate says about its key (RFC 5280 §4.2).

A `Profile` is the data half of an IGC-Santé "gabarit": basic constraints, key usage, extended
key usage, and a default lifetime. It stamps the extensions that depend only on the profile and
the keys; the subject (and its rules: CN = host for SERV, ``OU`` = "3" + SIRET for ORG, IdNat for
PER) is built by the issuing method in `pki.ca`, and CA-wide extensions that depend on
configuration (CRL distribution points, OCSP in the AIA) are added there too.

Profiles here: the two CA levels of the "Élémentaire" range, SERV (IGC-Santé offer SERV, usage
SSL_SERV), ORG and PER (usage AUTH_CLI, ``clientAuth``), and OCSP (the delegated responder,
RFC 6960 §4.2.2.2, with ``id-pkix-ocsp-nocheck``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal, get_args

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from pki.keys import PublicKey

# RFC 5280 §4.2.1.3, as `cryptography.x509.KeyUsage` names its arguments.
KeyUsageBit = Literal[
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
]
Extension = tuple[x509.ExtensionType, bool]  # (value, critical)


@dataclass(frozen=True)
class Profile:
    """One kind of certificate.

    ``key_usage`` applies to every key type; ``rsa_key_usage`` adds bits that only make sense
    for an RSA key (keyEncipherment: RSA key transport, RFC 5246 §7.4.7.1; an EC key cannot
    encipher, RFC 5480 §3).
    """

    name: str
    days: int
    key_usage: frozenset[KeyUsageBit]
    rsa_key_usage: frozenset[KeyUsageBit] = frozenset()
    extended_key_usage: tuple[x509.ObjectIdentifier, ...] = ()
    is_ca: bool = False
    path_length: int | None = None  # RFC 5280 §4.2.1.9 pathLenConstraint, CA profiles only
    requires_alt_names: bool = False
    ocsp_no_check: bool = False  # RFC 6960 §4.2.2.2.1: id-pkix-ocsp-nocheck

    def key_usage_for(self, public_key: PublicKey) -> x509.KeyUsage:
        """The KeyUsage extension for a certificate on ``public_key``."""
        bits = self.key_usage | (
            self.rsa_key_usage if isinstance(public_key, rsa.RSAPublicKey) else frozenset()
        )
        flags = {bit: bit in bits for bit in get_args(KeyUsageBit)}
        return x509.KeyUsage(**flags, encipher_only=False, decipher_only=False)

    def extensions(
        self,
        public_key: PublicKey,
        issuer_key_identifier: x509.SubjectKeyIdentifier,
        alt_names: Sequence[x509.GeneralName] = (),
        *,
        empty_subject: bool = False,
    ) -> list[Extension]:
        """The extensions this profile puts in a certificate on ``public_key``.

        ``issuer_key_identifier`` is the issuer's own SubjectKeyIdentifier (the subject's, for
        a self-signed certificate): the AuthorityKeyIdentifier must repeat it exactly for path
        building to find the issuer (RFC 5280 §4.2.1.1).
        """
        extensions: list[Extension] = [
            # RFC 5280 §4.2.1.9: MUST be critical in CA certificates; critical here in all.
            (
                x509.BasicConstraints(
                    ca=self.is_ca, path_length=self.path_length if self.is_ca else None
                ),
                True,
            ),
            # RFC 5280 §4.2.1.3: SHOULD be critical.
            (self.key_usage_for(public_key), True),
        ]
        if self.extended_key_usage:
            # RFC 5280 §4.2.1.12: non-critical, so a relying party may ignore it.
            extensions.append((x509.ExtendedKeyUsage(list(self.extended_key_usage)), False))
        if self.ocsp_no_check:
            extensions.append((x509.OCSPNoCheck(), False))
        if alt_names:
            # RFC 5280 §4.2.1.6: critical only when the subject is empty.
            extensions.append((x509.SubjectAlternativeName(list(alt_names)), empty_subject))
        extensions += [
            # RFC 5280 §4.2.1.2 and §4.2.1.1: both MUST NOT be critical.
            (x509.SubjectKeyIdentifier.from_public_key(public_key), False),
            (
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                    issuer_key_identifier
                ),
                False,
            ),
        ]
        return extensions


CA_KEY_USAGE: Final[frozenset[KeyUsageBit]] = frozenset({"key_cert_sign", "crl_sign"})

# "AC RACINE": signs only the intermediates, each of which signs end entities (path length 1).
ROOT_CA: Final = Profile(
    name="ROOT", days=20 * 365 + 5, key_usage=CA_KEY_USAGE, is_ca=True, path_length=1
)

# "AC … ORGANISATIONS": signs end-entity certificates only.
INTERMEDIATE_CA: Final = Profile(
    name="INTERMEDIATE", days=10 * 365 + 2, key_usage=CA_KEY_USAGE, is_ca=True, path_length=0
)

# SERV / SSL_SERV: a TLS server, named by its host or mail domain in the SAN (RFC 9525 §6.4).
# It also carries clientAuth: an MSSanté operator presents the same certificate as a client
# when it relays to another operator over mutual TLS (design.md §2.5), and OpenSSL checks the
# client's purpose.
# 825 days is the longest lifetime TLS clients still accept from a CA outside the public
# Web PKI (Apple's limit, which others follow).
SERV: Final = Profile(
    name="SERV",
    days=825,
    key_usage=frozenset({"digital_signature"}),
    rsa_key_usage=frozenset({"key_encipherment"}),
    extended_key_usage=(ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH),
    requires_alt_names=True,
)

# ORG / AUTH_CLI: a service of a health structure (software, shared mailbox), 3 years.
ORG: Final = Profile(
    name="ORG",
    days=3 * 365,
    key_usage=frozenset({"digital_signature"}),
    extended_key_usage=(ExtendedKeyUsageOID.CLIENT_AUTH,),
)

# PER / AUTH_CLI: a practitioner identified by the IdNat, 3 years.
PER: Final = Profile(
    name="PER",
    days=3 * 365,
    key_usage=frozenset({"digital_signature"}),
    extended_key_usage=(ExtendedKeyUsageOID.CLIENT_AUTH,),
)

# The delegated OCSP responder: short-lived, renewed by the CA on use.
OCSP: Final = Profile(
    name="OCSP",
    days=90,
    key_usage=frozenset({"digital_signature"}),
    extended_key_usage=(ExtendedKeyUsageOID.OCSP_SIGNING,),
    ocsp_no_check=True,
)
