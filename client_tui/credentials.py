"""How an account proves who it is: a password (SASL PLAIN, RFC 4616), a client certificate
(TLS, then SASL EXTERNAL, RFC 4422 Appendix A) or a bearer token from a command (SASL
OAUTHBEARER, RFC 7628); and the TLS context that trusts the configured CA alone.

Secrets live only in memory: the PKCS#12 key is written unencrypted for the instant
``load_cert_chain`` needs a file, in a 0600 file inside a 0700 temporary directory that is
removed at once (the ssl module reads keys from files only).
"""

from __future__ import annotations

import os
import shlex
import ssl
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

AUTH_KINDS = ("password", "certificate", "token")
KEYRING_SERVICE = "hygie-client"


class CredentialError(Exception):
    """A credential could not be loaded (bad passphrase, missing file, token command failed)."""


@dataclass(frozen=True)
class ClientCertificate:
    """A certificate chain and its key, as PEM held in memory."""

    chain_pem: bytes
    key_pem: bytes
    subject: str
    # The practitioner the certificate names (PER profile: GN, SN, serialNumber = IdNat, O),
    # for the author of a PDF wrapped in CDA.
    given: str = ""
    family: str = ""
    idnat: str = ""
    organisation: str = ""


def load_pkcs12(path: Path, passphrase: str) -> ClientCertificate:
    """The certificate and key of a PKCS#12 file (``hygie pki issue … --out``)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CredentialError(
            f"cannot read certificate file {path} (looked for {path.absolute()}): {exc.strerror}"
        ) from exc
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(data, passphrase.encode() or None)
    except ValueError as exc:
        raise CredentialError(f"cannot open {path.name}: wrong passphrase or not PKCS#12") from exc
    if key is None or cert is None:
        raise CredentialError(f"{path.name} holds no certificate and key")
    chain = cert.public_bytes(serialization.Encoding.PEM) + b"".join(
        c.public_bytes(serialization.Encoding.PEM) for c in extra or []
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )

    def part(oid: x509.ObjectIdentifier) -> str:
        values = cert.subject.get_attributes_for_oid(oid)
        return str(values[0].value) if values else ""

    return ClientCertificate(
        chain, key_pem, cert.subject.rfc4514_string(), given=part(NameOID.GIVEN_NAME),
        family=part(NameOID.SURNAME), idnat=part(NameOID.SERIAL_NUMBER),
        organisation=part(NameOID.ORGANIZATION_NAME),
    )  # fmt: skip


def tls_context(
    ca_file: Path | None, certificate: ClientCertificate | None = None
) -> ssl.SSLContext:
    """TLS 1.2+ with host-name checks, trusting ``ca_file`` alone when given (MSSanté clients
    trust IGC-Santé alone, Réf#2 ECO.1.1.10), presenting ``certificate`` when given."""
    if ca_file is not None and not ca_file.is_file():
        raise CredentialError(f"no CA file {ca_file} (looked for {ca_file.absolute()})")
    try:
        if ca_file is not None:
            context = ssl.create_default_context(cafile=str(ca_file))
        else:
            context = ssl.create_default_context()
    except (OSError, ssl.SSLError) as exc:
        raise CredentialError(f"cannot load CA file {ca_file}: {exc}") from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if certificate is not None:
        with tempfile.TemporaryDirectory(prefix="hygie-client-") as tmp:
            pem = Path(tmp) / "client.pem"
            fd = os.open(pem, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(certificate.key_pem + certificate.chain_pem)
            try:
                context.load_cert_chain(str(pem))
            except ssl.SSLError as exc:
                raise CredentialError(f"cannot use the client certificate: {exc}") from exc
    return context


def run_token_command(command: str, timeout: float = 60.0) -> str:
    """The bearer token a command prints (its first non-empty stdout line)."""
    try:
        proc = subprocess.run(
            shlex.split(command), capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
        raise CredentialError(f"token command failed: {exc}") from exc
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise CredentialError(f"token command exited {proc.returncode}: {last}")
    token = next((line.strip() for line in proc.stdout.splitlines() if line.strip()), "")
    if not token:
        raise CredentialError("token command printed no token")
    return token


def oauthbearer_initial_response(authzid: str, token: str, host: str, port: int) -> bytes:
    """RFC 7628 §3.1: ``n,a=user,^Ahost=…^Aport=…^Aauth=Bearer token^A^A``."""
    return f"n,a={authzid},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01".encode()


@dataclass(frozen=True)
class Credentials:
    """What a connection presents. ``address`` is the mailbox (the SASL authorisation identity);
    ``login`` the authentication identity for PLAIN (usually the same)."""

    kind: str
    address: str
    login: str = ""
    password: str = ""
    token: str = ""
    certificate: ClientCertificate | None = None

    def sasl(self, host: str = "localhost", port: int = 0) -> tuple[str, bytes]:
        """The SASL mechanism and its initial response."""
        if self.kind == "certificate":
            # Name the mailbox: one certificate may own several (docs/pki.md).
            return "EXTERNAL", self.address.encode()
        if self.kind == "token":
            return "OAUTHBEARER", oauthbearer_initial_response(self.address, self.token, host, port)
        login = self.login or self.address
        return "PLAIN", f"\x00{login}\x00{self.password}".encode()

    def tls_context(self, ca_file: Path | None) -> ssl.SSLContext:
        return tls_context(ca_file, self.certificate)


def keyring_available() -> bool:
    try:
        import keyring  # type: ignore[import-not-found,unused-ignore]  # noqa: F401
    except ImportError:
        return False
    return True


def keyring_secret(address: str) -> str | None:
    """The password or passphrase kept in the system keyring, when ``keyring`` is installed."""
    try:
        import keyring  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    try:
        value = keyring.get_password(KEYRING_SERVICE, address)
    except Exception:  # any backend failure means "not there": the user is asked instead
        return None
    return str(value) if value else None


def store_keyring_secret(address: str, secret: str) -> bool:
    try:
        import keyring  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return False
    try:
        keyring.set_password(KEYRING_SERVICE, address, secret)
    except Exception:  # no usable backend: the secret is simply not remembered
        return False
    return True
