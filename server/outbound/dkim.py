"""DKIM (RFC 6376) for mail between operators, with dkimpy: outbound messages are signed per
sender domain (RSA-SHA256, or Ed25519-SHA256 per RFC 8463), inbound relayed messages verified,
and the verdict written in an ``Authentication-Results`` field (RFC 8601).

Keys live in ``<data>/dkim/<domain>.key`` (0600, like the TLS key: a server starts unattended);
``hygie dkim record DOMAIN`` prints the TXT record to publish at
``<selector>._domainkey.<domain>``. Public keys are looked up in DNS, after a local directory
``<data>/dkim/peers/`` of ``<selector>._domainkey.<domain>.txt`` files, for peers whose DNS the
operator cannot reach (or tests). A failed signature is recorded, not refused: between MSSanté
operators the mutually authenticated TLS is what admits a message.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Final

import dkim
import dns.exception
import dns.resolver
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

log = structlog.get_logger("hygie.dkim")

#: Header fields signed, as RFC 6376 §5.4.1 recommends, plus the MSSanté ones.
SIGNED_HEADERS: Final = (
    b"from", b"to", b"cc", b"subject", b"date", b"message-id", b"in-reply-to", b"references",
    b"reply-to", b"mime-version", b"content-type", b"content-transfer-encoding",
    b"disposition-notification-to", b"x-mss-nil", b"x-mss-codecda", b"x-mss-ins", b"x-mss-mes",
)  # fmt: skip
ALGORITHMS: Final = ("rsa", "ed25519")


class DkimError(Exception):
    pass


def key_path(directory: Path, domain: str) -> Path:
    return directory / f"{domain.lower()}.key"


def ensure_key(directory: Path, domain: str, algorithm: str = "rsa") -> Path:
    """Create the signing key of ``domain`` if it has none."""
    if algorithm not in ALGORITHMS:
        raise DkimError(f"DKIM algorithm must be one of {', '.join(ALGORITHMS)}")
    path = key_path(directory, domain)
    if path.exists():
        return path
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    key = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if algorithm == "rsa"
        else ed25519.Ed25519PrivateKey.generate()
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    return path


def _load(path: Path) -> rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), None)
    if not isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise DkimError(f"{path}: not an RSA or Ed25519 key")
    return key


def dns_record(path: Path) -> str:
    """The TXT record publishing ``path``'s public key (RFC 6376 §3.6.1, RFC 8463 §4)."""
    key = _load(path)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


class DkimSigner:
    """Signs outbound mail with the key of the sender's domain, when there is one."""

    def __init__(self, directory: Path, selector: str, domains: Iterable[str]) -> None:
        self.selector = selector.encode()
        self.keys: dict[str, tuple[bytes, bytes]] = {}
        for domain in domains:
            path = key_path(directory, domain)
            if not path.exists():
                continue
            key = _load(path)
            if isinstance(key, ed25519.Ed25519PrivateKey):
                raw = key.private_bytes(
                    serialization.Encoding.Raw,
                    serialization.PrivateFormat.Raw,
                    serialization.NoEncryption(),
                )
                self.keys[domain.lower()] = (base64.b64encode(raw), b"ed25519-sha256")
            else:
                self.keys[domain.lower()] = (path.read_bytes(), b"rsa-sha256")

    def sign(self, raw: bytes, domain: str) -> bytes:
        """``raw`` with a DKIM-Signature for ``domain`` on top (unchanged if no key)."""
        entry = self.keys.get(domain.lower())
        if entry is None:
            return raw
        key, algorithm = entry
        present = {
            name.lower()
            for name in re.findall(rb"^([!-9;-~]+):", raw.split(b"\r\n\r\n", 1)[0], re.M)
        }
        headers = [h for h in SIGNED_HEADERS if h in present] or [b"from"]
        signature: bytes = dkim.sign(
            raw, self.selector, domain.lower().encode(), key,
            signature_algorithm=algorithm, include_headers=headers,
            canonicalize=(b"relaxed", b"relaxed"),
        )  # fmt: skip
        return signature + raw


class DkimVerifier:
    def __init__(self, peers_dir: Path) -> None:
        self.peers_dir = peers_dir

    def _txt(self, name: bytes, timeout: int = 5) -> bytes | None:
        label = name.decode("ascii", "replace").rstrip(".").lower()
        local = self.peers_dir / f"{label}.txt"
        if "/" not in label and local.is_file():
            return local.read_bytes().strip()
        try:
            answer = dns.resolver.resolve(label, "TXT", lifetime=timeout)
        except (dns.exception.DNSException, OSError):
            return None
        for record in answer:
            return b"".join(record.strings)
        return None

    def verify(self, raw: bytes) -> tuple[str, str | None, str | None]:
        """(result, signing domain, selector): result is pass, fail, permerror (a signature
        that cannot be checked: malformed, no key) or none (RFC 8601 §2.7.1). Blocking (DNS):
        run it in a thread."""
        if not re.search(rb"^dkim-signature:", raw.split(b"\r\n\r\n", 1)[0], re.I | re.M):
            return "none", None, None
        checker = dkim.DKIM(raw)
        missing: list[bytes] = []

        def lookup(name: bytes, timeout: int = 5) -> bytes | None:
            record = self._txt(name, timeout)
            if record is None:
                missing.append(name)
            return record

        try:
            verdict = "pass" if checker.verify(dnsfunc=lookup) else "fail"
        except dkim.ValidationError:  # e.g. the body hash does not match: altered in transit
            verdict = "fail"
        except dkim.DKIMException as exc:
            log.info("dkim_error", error=type(exc).__name__)
            verdict = "permerror"
        if missing:  # no public key to check with (RFC 8601 §2.7.1)
            verdict = "permerror"
        domain = checker.domain.decode() if getattr(checker, "domain", None) else None
        selector = checker.selector.decode() if getattr(checker, "selector", None) else None
        return verdict, domain, selector


def authentication_results(authserv_id: str, results: Iterable[str]) -> bytes:
    """An RFC 8601 field: ``authserv-id; method=result …`` folded one result per line."""
    body = ";\r\n\t".join([authserv_id, *results])
    return f"Authentication-Results: {body}\r\n".encode()


def strip_forged_results(raw: bytes, authserv_id: str) -> bytes:
    """Remove Authentication-Results fields claiming to be ours (RFC 8601 §5)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    kept: list[bytes] = []
    skipping = False
    pattern = re.compile(rb"^authentication-results:\s*" + re.escape(authserv_id.encode())
                         + rb"\s*(;|$)", re.I)  # fmt: skip
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                kept.append(line)
            continue
        skipping = bool(pattern.match(line))
        if not skipping:
            kept.append(line)
    return b"\r\n".join(kept) + sep + body
