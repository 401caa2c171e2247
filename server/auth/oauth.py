"""Bearer tokens for SASL OAUTHBEARER (RFC 7628) and XOAUTH2: JWT checks against the JWKS of one
configured OpenID provider, and Hygie's own development issuer (``hygie token issue``).

A token is accepted when its signature (RS256 or ES256, RFC 7518 §3.3/§3.4) verifies with a key
of the provider's JWKS (RFC 7517) chosen by ``kid``, and ``iss``, ``aud``, ``exp`` and ``nbf``
(RFC 7519 §4.1) hold. The subject claim then names the user (see
`server.auth.authenticator`). Tokens are never logged or stored: only the rejection reason is.

The JWKS is a file (re-read when it changes) or an https:// URL fetched off the event loop and
cached for ``jwks_refresh_seconds``; when a fetch fails the last good set is kept. An unknown
``kid`` triggers one early refresh (key rotation), at most once a minute.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Final

import jwt
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from server.config import Config

log = structlog.get_logger("hygie.oauth")
ALGORITHMS: Final = ("RS256", "ES256")
MIN_REFETCH_SECONDS: Final = 60.0
MAX_JWKS_BYTES: Final = 512 * 1024


class TokenRejected(Exception):
    """The token cannot log anyone in; ``reason`` is a short phrase safe to log and show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class JwksSource:
    """The provider's key set, from a file or an https:// URL."""

    def __init__(self, location: str, refresh_seconds: float, ca_file: Path | None = None) -> None:
        self.location = location
        self.refresh_seconds = refresh_seconds
        self.ca_file = ca_file
        self._keys: dict[str, jwt.PyJWK] = {}
        self._anonymous: list[jwt.PyJWK] = []
        self._stamp: object = None
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    @property
    def is_url(self) -> bool:
        return self.location.startswith("https://")

    async def key_for(self, kid: str | None) -> jwt.PyJWK:
        await self._refresh(force=False)
        key = self._lookup(kid)
        if key is None and time.monotonic() - self._fetched_at > MIN_REFETCH_SECONDS:
            await self._refresh(force=True)  # the provider may have rotated its keys
            key = self._lookup(kid)
        if key is None:
            raise TokenRejected("unknown signing key")
        return key

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is not None:
            return self._keys.get(kid)
        return self._anonymous[0] if len(self._anonymous) == 1 else None

    async def _refresh(self, *, force: bool) -> None:
        async with self._lock:
            if self.is_url:
                due = time.monotonic() - self._fetched_at > self.refresh_seconds
                if not (force or due or not self._keys):
                    return
                try:
                    raw = await asyncio.to_thread(_fetch, self.location, self.ca_file)
                    self._install(raw)
                except (OSError, ValueError, jwt.PyJWKError) as exc:
                    log.warning("jwks_fetch_failed", error=type(exc).__name__)
                finally:
                    self._fetched_at = time.monotonic()
                return
            try:
                st = os.stat(self.location)
            except OSError:
                raise TokenRejected("token login is not configured") from None
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp == self._stamp and not force:
                return
            try:
                raw = await asyncio.to_thread(Path(self.location).read_bytes)
                self._install(raw)
            except (OSError, ValueError, jwt.PyJWKError) as exc:
                log.warning("jwks_read_failed", error=type(exc).__name__)
            self._stamp = stamp
            self._fetched_at = time.monotonic()

    def _install(self, raw: bytes) -> None:
        data = json.loads(raw)
        keys: dict[str, jwt.PyJWK] = {}
        anonymous: list[jwt.PyJWK] = []
        for entry in data.get("keys", []):
            if entry.get("use", "sig") != "sig" or entry.get("alg", "RS256") not in ALGORITHMS:
                continue
            try:
                key = jwt.PyJWK(entry)
            except jwt.PyJWKError:
                continue
            if "kid" in entry:
                keys[str(entry["kid"])] = key
            else:
                anonymous.append(key)
        if not keys and not anonymous:
            raise ValueError("the JWKS holds no usable signing key")
        self._keys, self._anonymous = keys, anonymous


def _fetch(url: str, ca_file: Path | None) -> bytes:
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not url.startswith("https://"):
        raise ValueError("the JWKS URL must use https")
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=10, context=context) as response:  # noqa: S310
        data: bytes = response.read(MAX_JWKS_BYTES + 1)
    if len(data) > MAX_JWKS_BYTES:
        raise ValueError("JWKS too large")
    return data


class TokenVerifier:
    def __init__(self, config: Config) -> None:
        self.issuer = config.oauth_issuer
        self.audience = config.oauth.audience
        self.subject_claim = config.oauth.subject_claim
        self.leeway = config.oauth.leeway_seconds
        location = config.oauth.jwks
        if not location.startswith("https://"):
            location = str(config.path(location))
        ca_file = config.path(config.oauth.jwks_ca_file) if config.oauth.jwks_ca_file else None
        self.jwks = JwksSource(location, config.oauth.jwks_refresh_seconds, ca_file)

    async def subject(self, token: str) -> str:
        """The value of the subject claim of a valid token."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRejected("malformed token") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise TokenRejected("unsupported signature algorithm")
        kid = header.get("kid")
        key = await self.jwks.key_for(str(kid) if kid is not None else None)
        if key.algorithm_name != alg:
            raise TokenRejected("signature algorithm does not match the key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenRejected("token expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenRejected("token not yet valid") from None
        except jwt.InvalidAudienceError:
            raise TokenRejected("token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise TokenRejected("token from another issuer") from None
        except jwt.InvalidSignatureError:
            raise TokenRejected("bad token signature") from None
        except jwt.PyJWTError:
            raise TokenRejected("invalid token") from None
        value = claims.get(self.subject_claim)
        if not isinstance(value, str) or not value:
            raise TokenRejected("token names no user")
        return value


class DevIssuer:
    """Hygie's development OpenID issuer: an ES256 key in the data directory and its JWKS.

    For development and tests only (design.md §4); production points ``[oauth]`` at the real
    provider.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.key_file = config.path(config.oauth.dev_issuer_key)
        self.jwks_file = config.path(config.oauth.jwks)

    def ensure(self) -> None:
        """Create the key and write its JWKS if they do not exist yet."""
        if self.key_file.exists():
            return
        self.key_file.parent.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        self._write_jwks(key)

    def _kid(self, key: ec.EllipticCurvePrivateKey) -> str:
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return uuid.uuid5(uuid.NAMESPACE_OID, der.hex()).hex[:16]

    def _write_jwks(self, key: ec.EllipticCurvePrivateKey) -> None:
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
        jwk.update({"kid": self._kid(key), "use": "sig", "alg": "ES256"})
        if self.config.oauth.jwks.startswith("https://"):
            return  # the operator serves another provider's keys; nothing to write
        self.jwks_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.jwks_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"keys": [jwk]}, indent=2) + "\n")
        tmp.replace(self.jwks_file)

    def _key(self) -> ec.EllipticCurvePrivateKey:
        self.ensure()
        key = serialization.load_pem_private_key(self.key_file.read_bytes(), None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{self.key_file} is not an EC key")
        return key

    def issue(
        self,
        subject: str,
        *,
        ttl_seconds: int,
        audience: str | None = None,
        issuer: str | None = None,
        not_before: int | None = None,
    ) -> str:
        """A signed JWT for ``subject`` valid ``ttl_seconds`` from now."""
        key = self._key()
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": issuer or self.config.oauth_issuer,
            "aud": audience or self.config.oauth.audience,
            "sub": subject,
            "iat": now,
            "nbf": now if not_before is None else not_before,
            "exp": now + ttl_seconds,
            "jti": uuid.uuid4().hex,
        }
        claims.setdefault(self.config.oauth.subject_claim, subject)
        return jwt.encode(claims, key, algorithm="ES256", headers={"kid": self._kid(key)})
