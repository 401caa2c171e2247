"""Two-factor sign-in for patients (issue 11 item 3): password plus a time-based one-time code
(TOTP, RFC 6238, 30-second steps, 6 digits, SHA-1 as every authenticator app expects), a short
token for XOAUTH2/OAUTHBEARER in exchange, and app passwords for standard mail programs.

- The tokens are JWTs (ES256) signed by the operator's **patient issuer**, a key of its own in
  the data directory (``oauth/patient-issuer.key``, made like the development issuer's key in
  `server.auth.oauth`), with ``iss = https://<hostname>/espace`` and ``amr = ["pwd", "otp"]``. The
  SASL login accepts them whatever ``[oauth]`` points at (Pro Santé Connect for professionals),
  because `server.auth.authenticator.Authenticator` picks this verifier by the token's issuer.
- A code is accepted in the step before, at, or after the server's (clock drift), and only
  once: the last step used is stored and must grow (RFC 6238 §5.2), so a replayed code, even
  within its 30 seconds, is refused.
- Failures count against the same per-address and per-account limiter as IMAP and SMTP logins
  (`server.auth.authenticator.FailureLimiter`); every attempt, good or bad, is in the audit
  log. Wrong or
  replayed codes also count against a daily budget per account (:data:`CODE_FAILURES_PER_DAY`):
  the per-minute limit alone let someone holding the password try 14,400 codes a day (a 4 %
  chance a day of hitting one of the three codes in force), the budget makes it 0.01 %.
- Once a patient has enrolled, their account password no longer opens IMAP or SMTP: mail
  programs use app passwords (random, 91 bits, shown once, stored as SHA-256, revocable)
  created after a two-factor sign-in. The account password stays the first factor of the sign-in.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
import pyotp
import segno
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from server.auth.authenticator import Authenticator, FailureLimiter
from server.auth.oauth import TokenRejected, TokenVerifier
from server.config import Config
from server.delivery.patients import is_patient_address
from storage import audit
from storage.accounts import AccountInfo, find_account, verify_password
from storage.db import Database
from storage.spaces import SpaceError, SpaceStore, check_app_password

log = structlog.get_logger("hygie.patient_auth")
STEP_SECONDS = 30
#: Audience of page sessions: never accepted by the SASL login (its audience is [oauth]'s).
SESSION_AUDIENCE = "hygie-espace"
ENROL_AUDIENCE = "hygie-espace-enrol"
KEY_FILE = "oauth/patient-issuer.key"
#: Wrong (or replayed) second-factor codes an account may send in 24 hours, whatever the
#: addresses they come from (in memory, per node: a restart starts a new day).
CODE_FAILURES_PER_DAY = 30
TOO_MANY_CODES = "too many wrong codes today; try again tomorrow"


class SignInError(Exception):
    """A refused sign-in: the HTTP status and a message fit for the person (no detail on
    which factor failed beyond "wrong code" once the password was right)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class PatientIssuer:
    """The ES256 key that signs patient tokens and page sessions."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.key_file = config.path(KEY_FILE)
        self.issuer = f"https://{config.server.hostname}/espace"
        self._key: ec.EllipticCurvePrivateKey | None = None

    def key(self) -> ec.EllipticCurvePrivateKey:
        if self._key is None:
            if not self.key_file.exists():
                self.key_file.parent.mkdir(parents=True, exist_ok=True)
                new = ec.generate_private_key(ec.SECP256R1())
                pem = new.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())  # fmt: skip
                try:
                    fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                except FileExistsError:
                    pass  # another process made it first
                else:
                    with os.fdopen(fd, "wb") as out:
                        out.write(pem)
            loaded = serialization.load_pem_private_key(self.key_file.read_bytes(), None)
            if not isinstance(loaded, ec.EllipticCurvePrivateKey):
                raise ValueError(f"{self.key_file} is not an EC key")
            self._key = loaded
        return self._key

    def issue(self, subject: str, *, audience: str, ttl: int, **claims: Any) -> str:
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": self.issuer, "aud": audience, "sub": subject, "iat": now, "nbf": now,
            "exp": now + ttl, "jti": uuid.uuid4().hex, **claims,
        }  # fmt: skip
        return jwt.encode(body, self.key(), algorithm="ES256")

    def verify(self, token: str, *, audience: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token, self.key().public_key(), algorithms=["ES256"], audience=audience,
                issuer=self.issuer, leeway=self.config.oauth.leeway_seconds,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )  # fmt: skip
        except jwt.ExpiredSignatureError:
            raise TokenRejected("token expired") from None
        except jwt.PyJWTError:
            raise TokenRejected("invalid token") from None
        return claims


class PatientTokens(TokenVerifier):
    """The SASL side: a patient token names the patient's mailbox address."""

    def __init__(self, config: Config, issuer: PatientIssuer) -> None:
        super().__init__(config)
        self.patient_issuer = issuer
        self.issuer = issuer.issuer

    async def subject(self, token: str) -> str:
        claims = self.patient_issuer.verify(token, audience=self.audience)
        subject = str(claims.get("sub", ""))
        if "otp" not in claims.get("amr", []) or not is_patient_address(subject):
            raise TokenRejected("not a two-factor patient token")
        return subject


@dataclass(frozen=True)
class Enrolment:
    secret: str
    uri: str  # otpauth://totp/...

    def qr(self) -> segno.QRCode:
        return segno.make(self.uri, error="m")

    def svg(self) -> str:
        """The QR code as an inline SVG (dark on white, for contrast)."""
        return str(self.qr().svg_inline(scale=5, dark="#000000", light="#ffffff",
                                        title="QR code"))  # fmt: skip

    def terminal(self) -> str:
        import io

        out = io.StringIO()
        self.qr().terminal(out=out, compact=True)
        return out.getvalue()


def code_step(secret: str, code: str, now: float) -> int | None:
    """The time step whose code this is (one step of drift either way), or None."""
    code = "".join(code.split())
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = int(now // STEP_SECONDS)
    found = None
    for step in (current - 1, current, current + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            found = step
    return found


class PatientSignIn:
    def __init__(
        self, config: Config, db: Database, spaces: SpaceStore, auth: Authenticator,
        issuer: PatientIssuer, clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self.config = config
        self.db = db
        self.spaces = spaces
        self.auth = auth
        self.issuer = issuer
        self.clock = clock
        self.code_failures = FailureLimiter(CODE_FAILURES_PER_DAY, 24 * 3600)

    def _keys(self, address: str, peer: str) -> list[str]:
        return [f"ip:{peer}", f"user:{address.strip().lower()}"]

    async def _fail(self, keys: list[str], peer: str, account: int | None, reason: str,
                    message: str, status: int = 401) -> SignInError:  # fmt: skip
        for key in keys:
            self.auth.limiter.record(key)
        await audit.record(self.db, f"account:{account}" if account else "unknown",
                           "espace.signin.failed", f"account:{account or '-'}", peer=peer,
                           detail={"reason": reason})  # fmt: skip
        log.info("patient_signin_failed", peer=peer, account=account, reason=reason)
        await asyncio.sleep(self.auth.config.failure_delay_seconds)
        return SignInError(status, message)

    async def first_factor(self, address: str, password: str, peer: str) -> AccountInfo:
        """The patient account if the password is right (rate limited, audited)."""
        keys = self._keys(address, peer)
        if any(self.auth.limiter.blocked(k) for k in keys):
            await audit.record(self.db, "unknown", "espace.signin.throttled", "-", peer=peer)
            raise SignInError(429, "too many attempts; try again in a minute")
        account = await verify_password(self.db, address, password)
        if account is None or not is_patient_address(account.address):
            raise await self._fail(keys, peer, None, "password", "wrong address or password")
        return account

    async def second_factor(self, account: AccountInfo, code: str, peer: str,
                            *, confirm: bool = False) -> None:  # fmt: skip
        keys = self._keys(account.address, peer)
        if any(self.auth.limiter.blocked(k) for k in keys):
            raise SignInError(429, "too many attempts; try again in a minute")
        budget = f"account:{account.id}"
        if self.code_failures.blocked(budget):
            await audit.record(self.db, f"account:{account.id}", "espace.signin.throttled",
                               f"account:{account.id}", peer=peer,
                               detail={"reason": "daily code budget"})  # fmt: skip
            raise SignInError(429, TOO_MANY_CODES)
        found = await self.spaces.totp_secret(account.id)
        if found is None:
            raise SignInError(409, "two-factor sign-in is not enrolled")
        secret, confirmed = found
        if confirmed == confirm:  # confirming an enrolled secret, or signing in with a new one
            raise SignInError(409, "enrolment already confirmed" if confirm else
                              "two-factor sign-in is not enrolled")  # fmt: skip
        step = code_step(secret, code, self.clock())
        if step is None:
            self.code_failures.record(budget)
            raise await self._fail(keys, peer, account.id, "wrong code", "wrong code")
        if not await self.spaces.totp_use_step(account.id, step, confirm=confirm):
            self.code_failures.record(budget)
            raise await self._fail(keys, peer, account.id, "replayed code",
                                   "this code was already used; wait for the next one")  # fmt: skip

    async def sign_in(self, address: str, password: str, code: str, peer: str) -> AccountInfo:
        account = await self.first_factor(address, password, peer)
        if not await self.spaces.totp_enrolled(account.id):
            raise await self._fail(self._keys(address, peer), peer, account.id, "not enrolled",
                                   "two-factor sign-in is not enrolled", 403)  # fmt: skip
        await self.second_factor(account, code, peer)
        await audit.record(self.db, f"account:{account.id}", "espace.signin.ok",
                           f"account:{account.id}", peer=peer)  # fmt: skip
        log.info("patient_signin_ok", peer=peer, account=account.id)
        return account

    def token(self, account: AccountInfo) -> str:
        """The token for XOAUTH2/OAUTHBEARER after a two-factor sign-in."""
        return self.issuer.issue(account.address, audience=self.config.oauth.audience,
                                 ttl=self.config.spaces.token_ttl_seconds,
                                 amr=["pwd", "otp"])  # fmt: skip

    async def enrol(self, account: AccountInfo, peer: str) -> Enrolment:
        """A new TOTP secret for the account (unconfirmed until a code from it is given)."""
        secret = pyotp.random_base32()
        try:
            await self.spaces.totp_begin(account.id, secret, dt.datetime.now(dt.UTC))
        except SpaceError as exc:
            raise SignInError(409, str(exc)) from None
        await audit.record(self.db, f"account:{account.id}", "espace.2fa.enrol",
                           f"account:{account.id}", peer=peer)  # fmt: skip
        return self.enrolment(account, secret)

    def enrolment(self, account: AccountInfo, secret: str) -> Enrolment:
        issuer = self.config.spaces.totp_issuer
        uri = pyotp.TOTP(secret).provisioning_uri(name=account.address, issuer_name=issuer)
        return Enrolment(secret, uri)

    async def confirm(self, account: AccountInfo, code: str, peer: str) -> None:
        await self.second_factor(account, code, peer, confirm=True)
        await audit.record(self.db, f"account:{account.id}", "espace.2fa.confirmed",
                           f"account:{account.id}", peer=peer)  # fmt: skip


class SecondFactorPasswords:
    """The password login of IMAP and SMTP for patients who enrolled: app passwords only."""

    def __init__(self, db: Database, spaces: SpaceStore) -> None:
        self.db = db
        self.spaces = spaces

    async def filter(
        self, username: str, password: str, account: AccountInfo | None
    ) -> AccountInfo | None:
        if account is not None:
            if is_patient_address(account.address) and await self.spaces.totp_enrolled(
                account.id
            ):
                log.info("account_password_refused", account=account.id,
                         reason="two-factor enrolled: app passwords only")  # fmt: skip
                return None
            return account
        found = await find_account(self.db, username)
        if found is None or found.disabled or not is_patient_address(found.address):
            return None
        for ident, stored in await self.spaces.app_password_hashes(found.id):
            if check_app_password(stored, password):
                log.info("app_password_ok", account=found.id, app_password=ident)
                return found
        return None


def token_response(token: str, ttl: int) -> bytes:
    return json.dumps({"access_token": token, "token_type": "Bearer",
                       "expires_in": ttl}).encode()  # fmt: skip
