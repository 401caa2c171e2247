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
- Attempts count against the same per-address and per-account limits as IMAP and SMTP logins
  (`server.auth.guard`, counted before the check); every attempt, good or bad, is in the
  audit log. Wrong or
  replayed codes also count against a daily budget per account (:data:`CODE_FAILURES_PER_DAY`):
  the per-minute limit alone let someone holding the password try 14,400 codes a day (a 4 %
  chance a day of hitting one of the three codes in force), the budget makes it 0.01 %.
- Once a patient has enrolled, their account password no longer opens IMAP or SMTP: mail
  programs use app passwords (random, 91 bits, shown once, stored as SHA-256, revocable)
  created after a two-factor sign-in. The account password stays the first factor of the sign-in.
- Every token names a session row (``sid``, `storage.patient_sessions`) and is accepted only
  while that row exists: a sign-out, a password change or a second-factor reset ends them all
  at once (issue 17 finding 7).
- Enrolling a second factor needs more than the password (issue 17 finding 8): the invitation
  code (the activation page leads straight to enrolment) or a one-time code sent to the
  patient's personal e-mail address (:meth:`PatientSignIn.send_enrol_code`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import jwt
import pyotp
import segno
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from directory.ins import is_patient_address
from server.auth.authenticator import Authenticator, FailureLimiter
from server.auth.guard import Throttled, Ticket
from server.auth.oauth import TokenRejected, TokenVerifier
from server.config import Config
from storage import audit
from storage.accounts import AccountInfo, check_password, find_account
from storage.db import Database
from storage.patient_sessions import ENROL, PAGE, TOKEN, VERIFY, PatientSessions
from storage.spaces import OPEN, SpaceError, SpaceStore, check_app_password, new_code

log = structlog.get_logger("hygie.patient_auth")
STEP_SECONDS = 30
KEY_FILE = "oauth/patient-issuer.key"
#: The one-time code e-mailed before an enrolment: its life, the wrong tries it allows, the
#: least time between two such mails for one account.
ENROL_CODE_SECONDS = 15 * 60
ENROL_CODE_ATTEMPTS = 5
ENROL_CODE_SPACING_SECONDS = 60
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
                # Whole under a name of its own, then linked into place (see CsrfTokens.key):
                # a worker starting meanwhile never reads half a key.
                tmp = self.key_file.with_name(f".{self.key_file.name}.{os.getpid()}")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as out:
                    out.write(pem)
                    out.flush()
                    os.fsync(out.fileno())
                try:
                    os.link(tmp, self.key_file)
                except FileExistsError:
                    pass  # another process made it first
                finally:
                    tmp.unlink()
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
    """The SASL side: a patient token names the patient's mailbox address, and lives only as
    long as its session row (``sid``)."""

    def __init__(self, config: Config, issuer: PatientIssuer, sessions: PatientSessions) -> None:
        super().__init__(config)
        self.patient_issuer = issuer
        self.issuer = issuer.issuer
        self.sessions = sessions

    async def account(self, token: str) -> AccountInfo:
        """The patient account of a live two-factor token; else :class:`TokenRejected`."""
        claims = self.patient_issuer.verify(token, audience=self.audience)
        subject = str(claims.get("sub", ""))
        if "otp" not in claims.get("amr", []) or not is_patient_address(subject):
            raise TokenRejected("not a two-factor patient token")
        found = await self.sessions.find(str(claims.get("sid", "")), (TOKEN,), None)
        if found is None or found.account.address != subject.lower():
            raise TokenRejected("token revoked")
        return found.account

    async def subject(self, token: str) -> str:
        return (await self.account(token)).address


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


class CodeUnsent(Exception):
    """The one-time code could not be mailed; ``reason`` is safe to log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


#: (personal address, code, minutes it lasts, now): mails the enrolment code, or raises
#: :class:`CodeUnsent`.
CodeSender = Callable[[str, str, int, dt.datetime], Awaitable[None]]


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
        self.sessions = PatientSessions(db)
        #: Mails the one-time enrolment code to a personal address (the patients' smarthost,
        #: wired by ``server.app``); None when no relay is configured.
        self.send_code: CodeSender | None = None

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock(), dt.UTC)

    def ttl(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.config.spaces.token_ttl_seconds)

    async def _admit(self, address: str, peer: str, *, pace: bool) -> Ticket:
        try:
            return await self.auth.guard.admit(peer, address, pace=pace)
        except Throttled:
            await audit.record(self.db, "unknown", "espace.signin.throttled", "-", peer=peer)
            raise SignInError(429, "too many attempts; try again in a minute") from None

    async def _fail(self, ticket: Ticket, peer: str, account: int | None, reason: str,
                    message: str, status: int = 401) -> SignInError:  # fmt: skip
        await self.auth.guard.settle(ticket, ok=False)
        await audit.record(self.db, f"account:{account}" if account else "unknown",
                           "espace.signin.failed", f"account:{account or '-'}", peer=peer,
                           detail={"reason": reason})  # fmt: skip
        log.info("patient_signin_failed", peer=peer, account=account, reason=reason)
        await asyncio.sleep(self.auth.config.failure_delay_seconds)
        return SignInError(status, message)

    async def first_factor(self, address: str, password: str, peer: str) -> AccountInfo:
        """The patient account if the password is right (rate limited, audited)."""
        ticket = await self._admit(address, peer, pace=True)
        check = await check_password(self.db, address, password,
                                     argon2_slot=self.auth.guard.checking(ticket))  # fmt: skip
        account = check.account
        if account is None or not is_patient_address(account.address):
            raise await self._fail(ticket, peer, None, "password", "wrong address or password")
        await self.auth.guard.settle(ticket, ok=True, account=account.address)
        return account

    async def second_factor(self, account: AccountInfo, code: str, peer: str,
                            *, confirm: bool = False) -> None:  # fmt: skip
        budget = f"account:{account.id}"
        if self.code_failures.blocked(budget):
            await audit.record(self.db, f"account:{account.id}", "espace.signin.throttled",
                               f"account:{account.id}", peer=peer,
                               detail={"reason": "daily code budget"})  # fmt: skip
            raise SignInError(429, TOO_MANY_CODES)
        ticket = await self._admit(account.address, peer, pace=False)
        # Counted against the daily budget before the check, like the attempt itself: codes
        # sent in parallel cannot all pass a check made before any of them failed.
        self.code_failures.record(budget)
        found = await self.spaces.totp_secret(account.id)
        if found is None:
            await self.auth.guard.settle(ticket, ok=True)
            self.code_failures.forget_last(budget)
            raise SignInError(409, "two-factor sign-in is not enrolled")
        secret, confirmed = found
        if confirmed == confirm:  # confirming an enrolled secret, or signing in with a new one
            await self.auth.guard.settle(ticket, ok=True)
            self.code_failures.forget_last(budget)
            raise SignInError(409, "enrolment already confirmed" if confirm else
                              "two-factor sign-in is not enrolled")  # fmt: skip
        step = code_step(secret, code, self.clock())
        if step is None:
            raise await self._fail(ticket, peer, account.id, "wrong code", "wrong code")
        if not await self.spaces.totp_use_step(account.id, step, confirm=confirm):
            raise await self._fail(ticket, peer, account.id, "replayed code",
                                   "this code was already used; wait for the next one")  # fmt: skip
        self.code_failures.forget_last(budget)
        await self.auth.guard.settle(ticket, ok=True, account=account.address)

    async def sign_in(self, address: str, password: str, code: str, peer: str) -> AccountInfo:
        account = await self.first_factor(address, password, peer)
        if not await self.spaces.totp_enrolled(account.id):
            ticket = await self._admit(address, peer, pace=False)
            raise await self._fail(ticket, peer, account.id, "not enrolled",
                                   "two-factor sign-in is not enrolled", 403)  # fmt: skip
        await self.second_factor(account, code, peer)
        await audit.record(self.db, f"account:{account.id}", "espace.signin.ok",
                           f"account:{account.id}", peer=peer)  # fmt: skip
        log.info("patient_signin_ok", peer=peer, account=account.id)
        return account

    async def token(self, account: AccountInfo) -> str:
        """The token for XOAUTH2/OAUTHBEARER after a two-factor sign-in: a session row of
        its own, named by the token's ``sid``."""
        sid = await self.sessions.start(account.id, TOKEN, self.now(), self.ttl())
        return self.issuer.issue(account.address, audience=self.config.oauth.audience,
                                 ttl=self.config.spaces.token_ttl_seconds,
                                 amr=["pwd", "otp"], sid=sid)  # fmt: skip

    async def start_session(self, account: AccountInfo, kind: str) -> str:
        """A page session (``enrol`` or ``page``) replacing the account's sessions on the way
        to it (the e-mailed code's, the enrolment's): the cookie's secret."""
        replacing = {ENROL: (VERIFY, ENROL), PAGE: (VERIFY, ENROL)}[kind]
        return await self.sessions.start(account.id, kind, self.now(), self.ttl(),
                                         replacing=replacing)  # fmt: skip

    async def sign_out(self, account: AccountInfo, peer: str) -> int:
        """End every session and token of the account (the pages' sign-out, the API's)."""
        ended = await self.sessions.end_all(account.id, actor=f"account:{account.id}",
                                            reason="sign-out", peer=peer)  # fmt: skip
        log.info("patient_signed_out", account=account.id, sessions=ended)
        return ended

    # -- the e-mailed code before an enrolment (issue 17 finding 8) ----------------------------

    async def send_enrol_code(self, account: AccountInfo, peer: str) -> str:
        """Send a one-time code to the patient's personal address and start the ``verify``
        session that waits for it; its secret. SignInError when no mail can go: no open
        space with an address, no smarthost, a code sent less than a minute ago, a failure."""
        space = await self.spaces.by_account(account.id)
        if space is None or space.state != OPEN or not space.email:
            raise SignInError(403, "no_personal_address")
        if self.send_code is None:
            raise SignInError(503, "no_personal_address")
        now = self.now()
        last = await self.sessions.last_started(account.id, VERIFY)
        if last is not None and now - last < dt.timedelta(seconds=ENROL_CODE_SPACING_SECONDS):
            raise SignInError(429, "code_recent")
        code = new_code(8)
        secret = await self.sessions.start(
            account.id, VERIFY, now, dt.timedelta(seconds=ENROL_CODE_SECONDS), code=code,
            replacing=(VERIFY,),
        )  # fmt: skip
        try:
            await self.send_code(space.email, code, ENROL_CODE_SECONDS // 60, now)
        except CodeUnsent as exc:
            await self.sessions.end(secret)
            log.warning("enrol_code_unsent", account=account.id, reason=exc.reason)
            raise SignInError(503, "code_unsent") from None
        await audit.record(self.db, f"account:{account.id}", "espace.2fa.code_sent",
                           f"account:{account.id}", peer=peer)  # fmt: skip
        return secret

    async def check_enrol_code(self, secret: str, account: AccountInfo, code: str,
                               peer: str) -> None:  # fmt: skip
        """The e-mailed code of the ``verify`` session ``secret``; SignInError if wrong."""
        ticket = await self._admit(account.address, peer, pace=False)
        right, left = await self.sessions.check_code(secret, code, self.now(),
                                                     ENROL_CODE_ATTEMPTS)  # fmt: skip
        if right:
            await self.auth.guard.settle(ticket, ok=True, account=account.address)
            await audit.record(self.db, f"account:{account.id}", "espace.2fa.code_ok",
                               f"account:{account.id}", peer=peer)  # fmt: skip
            return
        message = "wrong code" if left else "code_spent"
        raise await self._fail(ticket, peer, account.id, "wrong e-mailed code", message,
                               401 if left else 403)  # fmt: skip

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
