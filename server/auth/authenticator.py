"""Authentication shared by SMTP and IMAP (design.md §4), with failed-login limits per client
address and per account (`server.auth.guard`: each attempt is counted before its check):

- passwords (SASL PLAIN/LOGIN, IMAP LOGIN): argon2id, verified off the event loop, or a
  credential verified a moment ago (`storage.passwords.VerifiedCredentials`);
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
from server.auth.guard import Limits, LoginGuard, SharedRecords, Throttled, Ticket
from server.auth.oauth import TokenRejected, TokenVerifier
from server.config import AuthSection
from storage.accounts import (
    IDNAT,
    SUBJECT,
    AccountError,
    AccountInfo,
    accounts_for_identity,
    check_password,
    find_account,
    normalize_address,
)
from storage.db import Database
from storage.passwords import CREDENTIALS

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
    """Sliding-window counter of failures under arbitrary keys (the patient pages' invitation
    codes); logins use :class:`server.auth.guard.LoginGuard`."""

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

    def forget_last(self, key: str) -> None:
        """Take back the latest :meth:`record` (an attempt counted before its check, right)."""
        q = self._by_key.get(key)
        if q:
            q.pop()
            if not q:
                del self._by_key[key]


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
        # Failed logins are counted in the database: every worker and node shares the limits.
        self.guard = LoginGuard(
            Limits(config.max_failures_per_minute, config.max_failures_per_day), SharedRecords(db)
        )
        self.limiter = FailureLimiter(config.max_failures_per_minute)
        CREDENTIALS.ttl = config.credential_cache_seconds
        self.certificates = certificates if config.certificate_login else None
        self.tokens = tokens
        #: The patient issuer's verifier (issue 11), chosen by the token's ``iss``.
        self.patient_tokens: TokenVerifier | None = None
        self.password_filter: PasswordFilter | None = None

    async def _admit(
        self, peer: str, login: str | None, *, protocol: str, pace: bool = False
    ) -> Ticket:
        try:
            return await self.guard.admit(peer, login, pace=pace)
        except Throttled as exc:
            log.warning("auth_throttled", protocol=protocol, peer=peer, rule=exc.rule)
            raise AuthError(AuthError.THROTTLED) from None

    async def _fail(
        self, detail: str, ticket: Ticket, *, protocol: str, peer: str, mechanism: str
    ) -> AuthError:
        await self.guard.settle(ticket, ok=False)
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
        ticket = await self._admit(peer, None, protocol=protocol)
        if der is None:
            raise await self._fail(
                "no client certificate", ticket, protocol=protocol, peer=peer, mechanism="external"
            )
        try:
            who: ClientIdentity = await asyncio.to_thread(self.certificates.check, der)
        except CertificateRejected as exc:
            raise await self._fail(
                exc.reason, ticket, protocol=protocol, peer=peer, mechanism="external"
            ) from None
        if who.idnat is not None:
            candidates = await accounts_for_identity(self.db, IDNAT, who.idnat)
        else:
            candidates = await accounts_for_identity(self.db, SUBJECT, who.subject)
        account = await self._choose(
            candidates, authzid, ticket, protocol=protocol, peer=peer, mechanism="external"
        )
        await self.guard.settle(ticket, ok=True, account=account.address)
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
        ticket = await self._admit(peer, authzid or None, protocol=protocol)
        try:
            subject = await verifier.subject(token)
        except TokenRejected as exc:
            raise await self._fail(
                exc.reason, ticket, protocol=protocol, peer=peer, mechanism="oauth"
            ) from None
        if "@" in subject:
            found = await find_account(self.db, subject)
            candidates = [found] if found is not None and not found.disabled else []
        else:
            candidates = await accounts_for_identity(self.db, IDNAT, subject)
        account = await self._choose(
            candidates, authzid, ticket, protocol=protocol, peer=peer, mechanism="oauth"
        )
        await self.guard.settle(ticket, ok=True, account=account.address)
        log.info("auth_ok", protocol=protocol, peer=peer, account=account.id, mechanism="oauth")
        return account

    async def _choose(
        self,
        candidates: list[AccountInfo],
        authzid: str,
        ticket: Ticket,
        *,
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
                raise await self._fail("not a mail address", ticket, **fail) from None
            for account in candidates:
                if account.address == wanted:
                    return account
            raise await self._fail("not allowed to use this mailbox", ticket, **fail)
        if not candidates:
            raise await self._fail("no mailbox is bound to these credentials", ticket, **fail)
        if len(candidates) > 1:
            raise await self._fail(
                "several mailboxes; name one as the authorization identity", ticket, **fail
            )
        return candidates[0]

    async def password(
        self, username: str, password: str, peer: str, protocol: str
    ) -> AccountInfo | None:
        """The account if the password is right, else ``None``. Raises :class:`AuthError`.

        The attempt is counted before the check (`server.auth.guard`), so parallel guesses
        cannot all pass the limit; argon2id runs at most two at a time per source and per name.
        """
        if not self.config.password_login:
            raise AuthError(AuthError.DISABLED)
        ticket = await self._admit(peer, username, protocol=protocol, pace=True)
        check = await check_password(
            self.db, username, password, argon2_slot=self.guard.checking(ticket)
        )
        account = check.account
        if self.password_filter is not None:
            account = await self.password_filter(username, password, account)
        if account is None:
            await self.guard.settle(ticket, ok=False)
            log.info("auth_failed", protocol=protocol, peer=peer, mechanism="password",
                     paced=ticket.wait > 0)  # fmt: skip
            # The delay is in the reply, awaited: other sessions are served meanwhile.
            await asyncio.sleep(self.config.failure_delay_seconds)
            return None
        await self.guard.settle(ticket, ok=True, account=account.address)
        log.info("auth_ok", protocol=protocol, peer=peer, account=account.id,
                 mechanism="password", remembered=check.remembered,
                 paced=ticket.wait > 0)  # fmt: skip
        return account


def _issuer(token: str) -> str | None:
    """The unverified ``iss`` of a JWT: only to pick the verifier that then checks it all."""
    try:
        iss = jwt.decode(token, options={"verify_signature": False}).get("iss")
    except jwt.PyJWTError:
        return None
    return iss if isinstance(iss, str) else None
