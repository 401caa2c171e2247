"""The trust space of the MSSanté federation: which domains may exchange mail with us (the
"liste blanche") and whether a peer operator's certificate has been revoked.

**Trusted domains.** The list is an XML document whose domains are read with the XPath
``//Domaine/Nom`` in the namespace ``https://listeblanche.mssante.fr/schema`` (MSSanté
reference, "Domain whitelist"); some names are internationalised and are compared in their
ASCII (IDNA) form. It comes from a file or an https:// URL and is refreshed on a schedule; when
a refresh fails, the last good copy stays in force (and a copy of it is kept in the data
directory, so a restart without network still has it). XML is parsed with defusedxml: no
entities, no external references.

**Peer revocation.** A relay peer's certificate must chain to our trust anchors (checked by the
TLS handshake) and must not be on its issuer's CRL. The CRL is fetched from the certificate's
CRL distribution point (RFC 5280 §4.2.1.13, HTTP), its signature checked against the issuing CA
among the trust anchors, and cached until it is ``crl_refresh_seconds`` old or past its
``nextUpdate``. A CRL that cannot be had is a temporary failure (the peer retries), never a pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import ssl
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import structlog
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

log = structlog.get_logger("hygie.trust")
NAMESPACE: Final = "https://listeblanche.mssante.fr/schema"
MAX_LIST_BYTES: Final = 16 * 1024 * 1024
MAX_CRL_BYTES: Final = 16 * 1024 * 1024


class TrustError(Exception):
    """A trust source cannot be read; the message says which and why."""


def ascii_domain(domain: str) -> str:
    """The lower-case A-label form of ``domain`` (RFC 5890), for comparisons."""
    domain = domain.strip().rstrip(".").lower()
    if not domain:
        raise TrustError("empty domain name")
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise TrustError(f"not a valid domain name: {domain!r}") from None


def parse_trusted_domains(data: bytes) -> frozenset[str]:
    """The domains of a "liste blanche" document, ASCII form, lower case."""
    try:
        root = ElementTree.fromstring(data)
    except (ElementTree.ParseError, DefusedXmlException) as exc:
        raise TrustError(f"trusted-domain list is not valid XML: {exc}") from None
    names: set[str] = set()
    for element in root.iter():
        if _local(element.tag) != "Domaine":
            continue
        for child in element:
            if _local(child.tag) == "Nom" and child.text and child.text.strip():
                try:
                    names.add(ascii_domain(child.text))
                except TrustError as exc:
                    log.warning("trusted_domain_skipped", error=str(exc))
    if not names:
        raise TrustError("trusted-domain list names no domain (//Domaine/Nom)")
    return frozenset(names)


def _local(tag: object) -> str:
    text = str(tag)
    return text.rsplit("}", 1)[-1] if text.startswith("{") else text


def render_trusted_domains(domains: Iterable[str]) -> bytes:
    """A "liste blanche" document naming ``domains`` (for `hygie init` and tests)."""
    entries = "".join(f"  <Domaine><Nom>{d}</Nom></Domaine>\n" for d in sorted(domains))
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<ListeBlanche xmlns="{NAMESPACE}">\n'
        f"{entries}</ListeBlanche>\n"
    ).encode()


def _https_fetch(url: str, ca_file: Path | None, limit: int) -> bytes:
    if not url.startswith("https://"):
        raise TrustError(f"not an https URL: {url}")
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    request = urllib.request.Request(url)  # noqa: S310 (https only, checked above)
    with urllib.request.urlopen(request, timeout=20, context=context) as response:  # noqa: S310
        data: bytes = response.read(limit + 1)
    if len(data) > limit:
        raise TrustError(f"{url}: larger than {limit} bytes")
    return data


class TrustedDomains:
    """The current trusted-domain list, refreshed from its source."""

    def __init__(
        self,
        source: str,
        *,
        data_dir: Path,
        local_domains: Iterable[str],
        ca_file: Path | None = None,
    ) -> None:
        self.source = source
        self.is_url = source.startswith("https://")
        self.path = None if self.is_url else (Path(source) if Path(source).is_absolute()
                                              else data_dir / source)  # fmt: skip
        self.last_good = data_dir / "trust" / "liste-blanche.last-good.xml"
        self.ca_file = ca_file
        self.local = frozenset(ascii_domain(d) for d in local_domains)
        self.domains: frozenset[str] = frozenset()
        self._stamp: tuple[int, int] | None = None
        self.loaded_at: float | None = None
        #: The document last fetched from the URL (None: none, or the last fetch failed):
        #: what the fetching process shares with the others (``server.app.TrustFetching``).
        self.fetched: bytes | None = None

    def is_trusted(self, domain: str) -> bool:
        """True for our own domains and for those on the list."""
        try:
            name = ascii_domain(domain)
        except TrustError:
            return False
        return name in self.local or name in self.domains

    def is_local(self, domain: str) -> bool:
        try:
            return ascii_domain(domain) in self.local
        except TrustError:
            return False

    def refresh(self) -> bool:
        """Reload from the source (blocking: run it in a thread). True if the list changed.
        On failure the previous list stays and the error is logged."""
        try:
            if self.path is not None:
                st = os.stat(self.path)
                stamp = (st.st_mtime_ns, st.st_size)
                if stamp == self._stamp:
                    return False
                data = self.path.read_bytes()
                domains = parse_trusted_domains(data)
                self._stamp = stamp
            else:
                self.fetched = None
                data = _https_fetch(self.source, self.ca_file, MAX_LIST_BYTES)
                domains = parse_trusted_domains(data)
                self._save_last_good(data)
                self.fetched = data
        except (OSError, TrustError) as exc:
            log.warning("trusted_domains_refresh_failed", error=str(exc))
            if not self.domains and self.is_url and self.last_good.exists():
                try:
                    self.domains = parse_trusted_domains(self.last_good.read_bytes())
                    log.info("trusted_domains_last_good", count=len(self.domains))
                except (OSError, TrustError):
                    pass
            return False
        changed = domains != self.domains
        self.domains = domains
        self.loaded_at = time.time()
        if changed:
            log.info("trusted_domains_loaded", count=len(domains))
        return changed

    def load(self, data: bytes) -> bool:
        """Use a copy another process fetched (checked like a fetched one); False if it is
        not a valid list (the current one stays)."""
        try:
            domains = parse_trusted_domains(data)
        except TrustError as exc:
            log.warning("trusted_domains_copy_refused", error=str(exc))
            return False
        if domains != self.domains:
            log.info("trusted_domains_loaded", count=len(domains), source="cluster")
        self.domains = domains
        self.loaded_at = time.time()
        with contextlib.suppress(OSError):
            self._save_last_good(data)
        return True

    def _save_last_good(self, data: bytes) -> None:
        self.last_good.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.last_good.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, self.last_good)

    async def keep_fresh(self, every_seconds: float) -> None:
        while True:
            await asyncio.sleep(every_seconds if self.is_url else min(every_seconds, 5.0))
            await asyncio.to_thread(self.refresh)


# -- peer revocation -----------------------------------------------------------------------


class PeerRevoked(Exception):
    """The peer's certificate is revoked."""


class RevocationUnknown(Exception):
    """The peer's revocation status cannot be established now (retry later)."""


@dataclass
class _CachedCrl:
    serials: frozenset[int]
    fetched: float
    next_update: dt.datetime | None


def load_anchors(paths: Iterable[Path]) -> list[x509.Certificate]:
    anchors: list[x509.Certificate] = []
    for path in paths:
        try:
            anchors += x509.load_pem_x509_certificates(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise TrustError(f"cannot read trust anchors from {path}: {exc}") from None
    return anchors


class PeerRevocation:
    """Checks peer certificates against the CRL their issuer publishes."""

    def __init__(self, anchors: list[x509.Certificate], refresh_seconds: float) -> None:
        self.anchors = anchors
        self.refresh_seconds = refresh_seconds
        self._cache: dict[str, _CachedCrl] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def issuer_of(self, cert: x509.Certificate) -> x509.Certificate | None:
        for anchor in self.anchors:
            if anchor.subject == cert.issuer:
                try:
                    cert.verify_directly_issued_by(anchor)
                except (ValueError, TypeError, InvalidSignature):
                    log.info("peer_issuer_mismatch")
                    continue
                return anchor
        return None

    async def check(self, der: bytes) -> None:
        """Raise :class:`PeerRevoked` or :class:`RevocationUnknown`; return if good."""
        cert = x509.load_der_x509_certificate(der)
        issuer = self.issuer_of(cert)
        if issuer is None:
            raise RevocationUnknown("issuer not among the trust anchors")
        try:
            points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        except x509.ExtensionNotFound:
            raise RevocationUnknown("certificate names no CRL distribution point") from None
        urls = [
            name.value
            for point in points
            for name in (point.full_name or [])
            if isinstance(name, x509.UniformResourceIdentifier)
            and name.value.startswith(("http://", "https://"))
        ]
        if not urls:
            raise RevocationUnknown("no HTTP CRL distribution point")
        serials = await self._serials(urls[0], issuer)
        if cert.serial_number in serials:
            raise PeerRevoked(f"certificate {cert.serial_number:X} revoked")

    async def _serials(self, url: str, issuer: x509.Certificate) -> frozenset[int]:
        lock = self._locks.setdefault(url, asyncio.Lock())
        async with lock:
            cached = self._cache.get(url)
            now = dt.datetime.now(dt.UTC)
            fresh = cached is not None and (
                time.monotonic() - cached.fetched < self.refresh_seconds
                and (cached.next_update is None or cached.next_update > now)
            )
            if cached is not None and fresh:
                return cached.serials
            try:
                data = await asyncio.to_thread(_http_get, url)
                crl = x509.load_der_x509_crl(data)
                if crl.issuer != issuer.subject or not crl.is_signature_valid(
                    issuer.public_key()  # type: ignore[arg-type]
                ):
                    raise RevocationUnknown("CRL not signed by the certificate's issuer")
                entry = _CachedCrl(
                    frozenset(r.serial_number for r in crl), time.monotonic(), crl.next_update_utc
                )
                self._cache[url] = entry
                return entry.serials
            except (OSError, ValueError) as exc:
                # Keep using a CRL that is still within its validity period.
                if cached is not None and (cached.next_update is None or cached.next_update > now):
                    log.warning("peer_crl_refresh_failed", error=type(exc).__name__)
                    return cached.serials
                raise RevocationUnknown(f"CRL unavailable: {type(exc).__name__}") from None


def _http_get(url: str) -> bytes:
    if url.startswith("https://"):
        return _https_fetch(url, None, MAX_CRL_BYTES)
    request = urllib.request.Request(url)  # noqa: S310 (CRLs are signed; http is the norm)
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        data: bytes = response.read(MAX_CRL_BYTES + 1)
    if len(data) > MAX_CRL_BYTES:
        raise ValueError("CRL too large")
    return data
