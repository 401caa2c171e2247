"""TLS contexts for Hygie's servers and clients: TLS 1.3 (RFC 8446) preferred, TLS 1.2
(RFC 5246) the minimum, as MSSanté requires (SC.MSS/CONF.01; TLS 1.0/1.1 are forbidden,
RFC 8996).

TLS 1.2 is limited to forward-secret AEAD suites: ECDHE key exchange (RFC 8422) with AES-GCM
(RFC 5288, RFC 5289) or ChaCha20-Poly1305 (RFC 7905), in the order of the ANSSI TLS guide
(AES-256 first). TLS 1.3 suites are all AEAD with (EC)DHE already; Python cannot restrict them
and OpenSSL's defaults are the three we would pick. Compression (CRIME), renegotiation and
stateless session tickets (whose key would undo forward secrecy until rotated) are off.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Final, NoReturn

from cryptography import x509

from pki import pemfile
from pki.errors import PkiError
from pki.keys import is_encrypted, load_private_key

TLS12_CIPHERS: Final = (
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
)

MIN_VERSIONS: Final = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}

#: OpenSSL's X509_V_FLAG_NO_CHECK_TIME (x509_vfy.h), which Python does not name: the handshake
#: then accepts an expired or not-yet-valid client certificate, and `pki.verify` refuses it at
#: SASL time with a reply that says so, instead of a TLS alert most mail programs hide.
VERIFY_NO_CHECK_TIME: Final = 0x200000

_HARDENING: Final = (
    ssl.OP_NO_COMPRESSION
    | ssl.OP_NO_RENEGOTIATION
    # With TLS 1.3, OpenSSL then resumes from its server-side cache instead of tickets.
    | ssl.OP_NO_TICKET
)


def server_context(
    cert_file: Path,
    key_file: Path,
    *,
    min_version: str = "1.2",
    client_ca_files: tuple[Path, ...] = (),
) -> ssl.SSLContext:
    """A server context presenting ``cert_file`` (leaf then intermediates) and ``key_file``.

    The key must be unencrypted (see `pki.ca.write_server_credentials`): a server starts
    unattended.

    With ``client_ca_files`` (our root and intermediate), the server asks for a client
    certificate but does not require one (``CERT_OPTIONAL``): a client without one goes on to
    other SASL mechanisms, while a certificate that is presented must chain to those CAs, or
    the handshake ends with the ``unknown_ca`` alert. Validity dates, the clientAuth usage and
    revocation are checked at SASL EXTERNAL time (`pki.verify`), so that the client is told
    which check failed and a new CRL applies without rebuilding this context.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _restrict(context, min_version)
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_SINGLE_ECDH_USE
    _check_credentials(cert_file, key_file)
    try:
        context.load_cert_chain(cert_file, key_file, password=_no_passphrase)
    except (ssl.SSLError, OSError) as exc:
        raise PkiError(f"cannot load TLS credentials {cert_file}, {key_file}: {exc}") from exc
    if client_ca_files:
        for path in client_ca_files:
            pem = pemfile.read(path, what="client CA certificate file")
            try:
                context.load_verify_locations(cadata=pem.decode("ascii"))
            except (ssl.SSLError, UnicodeDecodeError) as exc:
                raise PkiError(f"client CA file {path} holds no PEM certificate") from exc
        context.verify_mode = ssl.CERT_OPTIONAL
        context.verify_flags |= ssl.VERIFY_X509_STRICT | VERIFY_NO_CHECK_TIME
    return context


def client_context(ca_file: Path, *, min_version: str = "1.2") -> ssl.SSLContext:
    """A client context that trusts only the root in ``ca_file`` and checks the host name.

    No system trust store: MSSanté clients accept IGC-Santé alone (Réf#2 ECO.1.1.10), and a
    Hygie client accepts its operator's root alone.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, check_hostname
    _restrict(context, min_version)
    # Reject certificates that break RFC 5280 rules OpenSSL otherwise tolerates.
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    pem = pemfile.read(ca_file, what="CA certificate file")
    try:
        context.load_verify_locations(cadata=pem.decode("ascii"))
    except (ssl.SSLError, UnicodeDecodeError) as exc:
        raise PkiError(f"CA certificate file {ca_file} holds no PEM certificate") from exc
    return context


def _restrict(context: ssl.SSLContext, min_version: str) -> None:
    try:
        context.minimum_version = MIN_VERSIONS[min_version]
    except KeyError:
        raise PkiError(
            f"unsupported TLS minimum version {min_version!r}: choose one of "
            + ", ".join(MIN_VERSIONS)
        ) from None
    context.maximum_version = ssl.TLSVersion.MAXIMUM_SUPPORTED
    context.set_ciphers(":".join(TLS12_CIPHERS))
    context.options |= _HARDENING


def _check_credentials(cert_file: Path, key_file: Path) -> None:
    """Fail with a message an operator can act on, rather than OpenSSL's "PEM lib"."""
    cert_pem = pemfile.read(cert_file, what="TLS certificate file")
    key_pem = pemfile.read(key_file, what="TLS key file")
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError as exc:
        raise PkiError(f"TLS certificate file {cert_file} holds no PEM certificate") from exc
    if is_encrypted(key_pem):
        raise PkiError(f"TLS key file {key_file} is encrypted; a server key must not be")
    key = load_private_key(key_pem, None, what=f"TLS key file {key_file}")
    if key.public_key() != chain[0].public_key():
        raise PkiError(f"TLS key file {key_file} does not match the certificate in {cert_file}")


def _no_passphrase() -> NoReturn:
    # OpenSSL would otherwise prompt on the terminal of a server starting unattended.
    raise PkiError("the TLS key file is encrypted; a server key must not be")
