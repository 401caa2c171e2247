"""Authentication shared by SMTP and IMAP (design.md §4), with rate limiting of failures per
client address and per account:

- passwords (SASL PLAIN/LOGIN, IMAP LOGIN): argon2id, verified off the event loop;
- TLS client certificates (SASL EXTERNAL, RFC 4422 Appendix A): `pki.verify` checks the
  certificate (issuer, validity, clientAuth, CRL); a PER certificate logs in to the mailboxes
  bound to its IdNat, an ORG/APP certificate to those bound to its subject;
- bearer tokens (SASL OAUTHBEARER, RFC 7628, and XOAUTH2): `server.auth.oauth` checks the JWT; its
  subject claim is a mailbox address or an IdNat bound to mailboxes.

When an identity owns several mailboxes the SASL authorisation identity picks one; it must be
one of them. SASL framing is parsed by each protocol (`server.auth.sasl` holds the shared parts);
this module answers "who is this?". Logs carry the client address and the account id, never
the login name, the password, the token or the certificate's identity.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable

import jwt
import structlog

from pki.verify import CertificateRejected, ClientCertificateChecker, ClientIdentity
from server.auth.oauth import TokenRejected, TokenVerifier
from server.config import AuthSection
from storage.accounts import (
    IDNAT,
    SUBJECT,
    AccountError,
    AccountInfo,
    accounts_for_identity,
    find_account,
    normalize_address,
    verify_password,
)
from storage.db import Database

log = structlog.get_logger("hygie.auth")
WINDOW_SECONDS = 60.0
#: After a password check: (login name, password, the account it opened or None) -> the
#: account to log in. Patients with two factors use app passwords (`server.auth.patient`).
PasswordFilter = Callable[[str, str, AccountInfo | None], Awaitable[AccountInfo | None]]


class AuthError(Exception):
    """Authentication cannot proceed; ``reason`` is one of the class constants."""

    DISABLED = "disabled"
    THROTTLED = "throttled"
    FAILED = "failed"

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        #: For FAILED: what the client is told (no secret, no identity).
        self.detail = detail


class FailureLimiter:
    """Sliding-window counter of failed logins."""

    def __init__(self, limit: int, window: float = WINDOW_SECONDS) -> None:
        self.limit = limit
        self.window = window
        self._by_key: defaultdict[str, deque[float]] = defaultdict(deque)

    def _trim(self, key: str, now: float) -> deque[float]:
        q = self._by_key[key]
        while q and q[0] <= now - self.window:
            q.popleft()
        if not q:
            del self._by_key[key]
            return deque()
        return q

    def blocked(self, key: str) -> bool:
        return len(self._trim(key, time.monotonic())) >= self.limit

    def record(self, key: str) -> None:
        now = time.monotonic()
        self._trim(key, now)
        self._by_key[key].append(now)


class Authenticator:
    def __init__(
        self,
        db: Database,
        config: AuthSection,
        *,
        certificates: ClientCertificateChecker | None = None,
        tokens: TokenVerifier | None = None,
    ) -> None:
        self.db = db
        self.config = config
        self.limiter = FailureLimiter(config.max_failures_per_minute)
        self.certificates = certificates if config.certificate_login else None
        self.tokens = tokens
        #: The patient issuer's verifier (issue 11), chosen by the token's ``iss``.
        self.patient_tokens: TokenVerifier | None = None
        self.password_filter: PasswordFilter | None = None

    def _throttle(self, *keys: str, protocol: str, peer: str) -> None:
        if any(self.limiter.blocked(k) for k in keys):
            log.warning("auth_throttled", protocol=protocol, peer=peer)
            raise AuthError(AuthError.THROTTLED)

    async def _fail(
        self, detail: str, *keys: str, protocol: str, peer: str, mechanism: str
    ) -> AuthError:
        for key in keys:
            self.limiter.record(key)
        log.info("auth_failed", protocol=protocol, peer=peer, mechanism=mechanism, reason=detail)
        await asyncio.sleep(self.config.failure_delay_seconds)
        return AuthError(AuthError.FAILED, detail)

    async def certificate(
        self, der: bytes | None, authzid: str, peer: str, protocol: str
    ) -> AccountInfo:
        """SASL EXTERNAL: the account the client certificate ``der`` may log in to.

        Raises :class:`AuthError` (FAILED with the reason to show, THROTTLED, DISABLED).
        """
        if self.certificates is None:
            raise AuthError(AuthError.DISABLED)
        ip_key = f"ip:{peer}"
        self._throttle(ip_key, protocol=protocol, peer=peer)
        if der is None:
            raise await self._fail(
                "no client certificate", ip_key, protocol=protocol, peer=peer, mechanism="external"
            )
        try:
            who: ClientIdentity = await asyncio.to_thread(self.certificates.check, der)
        except CertificateRejected as exc:
            raise await self._fail(
                exc.reason, ip_key, protocol=protocol, peer=peer, mechanism="external"
            ) from None
        if who.idnat is not None:
            candidates = await accounts_for_identity(self.db, IDNAT, who.idnat)
        else:
            candidates = await accounts_for_identity(self.db, SUBJECT, who.subject)
        account = await self._choose(
            candidates, authzid, ip_key, protocol=protocol, peer=peer, mechanism="external"
        )
        log.info(
            "auth_ok",
            protocol=protocol,
            peer=peer,
            account=account.id,
            mechanism="external",
            certificate=who.serial_hex,
        )
        return account

    async def token(self, token: str, authzid: str, peer: str, protocol: str) -> AccountInfo:
        """OAUTHBEARER / XOAUTH2: the account the bearer token may log in to."""
        verifier = self.tokens
        if self.patient_tokens is not None and _issuer(token) == self.patient_tokens.issuer:
            verifier = self.patient_tokens
        if verifier is None:
            raise AuthError(AuthError.DISABLED)
        ip_key = f"ip:{peer}"
        keys = [ip_key] + ([f"user:{authzid.strip().lower()}"] if authzid else [])
        self._throttle(*keys, protocol=protocol, peer=peer)
        try:
            subject = await verifier.subject(token)
        except TokenRejected as exc:
            raise await self._fail(
                exc.reason, *keys, protocol=protocol, peer=peer, mechanism="oauth"
            ) from None
        if "@" in subject:
            found = await find_account(self.db, subject)
            candidates = [found] if found is not None and not found.disabled else []
        else:
            candidates = await accounts_for_identity(self.db, IDNAT, subject)
        account = await self._choose(
            candidates, authzid, *keys, protocol=protocol, peer=peer, mechanism="oauth"
        )
        log.info("auth_ok", protocol=protocol, peer=peer, account=account.id, mechanism="oauth")
        return account

    async def _choose(
        self,
        candidates: list[AccountInfo],
        authzid: str,
        *keys: str,
        protocol: str,
        peer: str,
        mechanism: str,
    ) -> AccountInfo:
        """The mailbox the authorisation identity names among ``candidates`` (RFC 4422 §3.4.1:
        an empty authzid means the one the credentials name)."""
        fail = {"protocol": protocol, "peer": peer, "mechanism": mechanism}
        if authzid:
            try:
                wanted = normalize_address(authzid)
            except AccountError:
                raise await self._fail("not a mail address", *keys, **fail) from None
            for account in candidates:
                if account.address == wanted:
                    return account
            raise await self._fail("not allowed to use this mailbox", *keys, **fail)
        if not candidates:
            raise await self._fail("no mailbox is bound to these credentials", *keys, **fail)
        if len(candidates) > 1:
            raise await self._fail(
                "several mailboxes; name one as the authorization identity", *keys, **fail
            )
        return candidates[0]

    async def password(
        self, username: str, password: str, peer: str, protocol: str
    ) -> AccountInfo | None:
        """The account if the password is right, else ``None``. Raises :class:`AuthError`."""
        if not self.config.password_login:
            raise AuthError(AuthError.DISABLED)
        ip_key, user_key = f"ip:{peer}", f"user:{username.strip().lower()}"
        if self.limiter.blocked(ip_key) or self.limiter.blocked(user_key):
            log.warning("auth_throttled", protocol=protocol, peer=peer)
            raise AuthError(AuthError.THROTTLED)
        account = await verify_password(self.db, username, password)
        if self.password_filter is not None:
            account = await self.password_filter(username, password, account)
        if account is None:
            self.limiter.record(ip_key)
            self.limiter.record(user_key)
            log.info("auth_failed", protocol=protocol, peer=peer, mechanism="password")
            # The delay is in the reply, awaited: other sessions are served meanwhile.
            await asyncio.sleep(self.config.failure_delay_seconds)
            return None
        log.info("auth_ok", protocol=protocol, peer=peer, account=account.id)
        return account


def _issuer(token: str) -> str | None:
    """The unverified ``iss`` of a JWT: only to pick the verifier that then checks it all."""
    try:
        iss = jwt.decode(token, options={"verify_signature": False}).get("iss")
    except jwt.PyJWTError:
        return None
    return iss if isinstance(iss, str) else None
