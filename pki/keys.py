"""Key pairs for the certificate authority and the certificates it issues.

RSA-2048 and ECDSA P-256 (the IGC-Santé templates use RSA-2048 with SHA-256; P-256 is the
TLS 1.3 mandatory-to-implement curve, RFC 8446 §9.1). Private keys travel as PKCS #8 PEM
(RFC 5958, RFC 7468 §10/§11), encrypted with the best scheme `cryptography` offers when a
passphrase is given.
"""

from __future__ import annotations

from typing import Final, TypeAlias

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pki.errors import PkiError, WrongPassphrase

PrivateKey: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey: TypeAlias = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

KEY_TYPES: Final = ("rsa", "ec")
RSA_KEY_SIZE: Final = 2048
RSA_PUBLIC_EXPONENT: Final = 65537


def generate_private_key(key_type: str) -> PrivateKey:
    """A fresh key pair: ``"rsa"`` (RSA-2048) or ``"ec"`` (ECDSA P-256)."""
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=RSA_PUBLIC_EXPONENT, key_size=RSA_KEY_SIZE)
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    raise PkiError(f"unknown key type {key_type!r}: choose one of {', '.join(KEY_TYPES)}")


def signature_hash(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512:
    """The digest to sign with: SHA-256, or the one matching a larger EC curve (RFC 5480 §4)."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.key_size > 384:
            return hashes.SHA512()
        if key.curve.key_size > 256:
            return hashes.SHA384()
    return hashes.SHA256()


def private_key_pem(key: PrivateKey, passphrase: bytes | None = None) -> bytes:
    """PKCS #8 PEM; encrypted (``BEGIN ENCRYPTED PRIVATE KEY``) when a passphrase is given."""
    encryption: serialization.KeySerializationEncryption
    if passphrase is None:
        encryption = serialization.NoEncryption()
    elif not passphrase:
        raise PkiError("an empty passphrase cannot protect a private key")
    else:
        encryption = serialization.BestAvailableEncryption(passphrase)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def is_encrypted(pem: bytes) -> bool:
    """Whether a PEM private key is passphrase-protected (PKCS #8, or legacy RFC 1421 headers)."""
    return b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in pem or b"Proc-Type: 4,ENCRYPTED" in pem


def load_private_key(pem: bytes, passphrase: bytes | None, *, what: str) -> PrivateKey:
    """Parse a PEM private key; ``what`` names it in error messages (e.g. the file path)."""
    encrypted = is_encrypted(pem)
    if encrypted and not passphrase:
        raise PkiError(f"{what} is encrypted and no passphrase was given")
    try:
        key = serialization.load_pem_private_key(pem, passphrase if encrypted else None)
    except ValueError as exc:
        if encrypted:
            raise WrongPassphrase(f"wrong passphrase for {what} (or the file is damaged)") from exc
        raise PkiError(f"{what} is not a readable PEM private key") from exc
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise PkiError(f"{what} holds a {type(key).__name__}; only RSA and EC keys are supported")
    return key
