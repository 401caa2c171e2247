"""Two-factor sign-in for patients (issue 11 item 3), on SQLite and PostgreSQL, with a clock the
test moves: enrolment, wrong and replayed codes refused, the token accepted by the SASL login
(and a page-session token not), rate limiting and audit; then app passwords: once enrolled, the
account password no longer opens IMAP/SMTP, an app password does until it is revoked."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import update

from server.auth.authenticator import Authenticator, AuthError, FailureLimiter
from server.auth.patient import (
    SESSION_AUDIENCE,
    PatientIssuer,
    PatientSignIn,
    PatientTokens,
    SecondFactorPasswords,
    SignInError,
    code_step,
)
from server.config import AuthSection, Config
from storage import audit
from storage.accounts import AccountInfo, create_account, hash_password
from storage.blobs import open_blob_store
from storage.crypto import MasterKey
from storage.db import Database, migrate
from storage.spaces import SpaceStore
from storage.transactions import ACCOUNTS
from tests.server.spaces_support import config, ins

PASSWORD = "mot-de-passe-patient-1"
PEER = "198.51.100.4"
NOW = dt.datetime(2026, 6, 1, 12, 0, 10, tzinfo=dt.UTC).timestamp()  # 10 s into a step


@dataclass
class World:
    db: Database
    spaces: SpaceStore
    auth: Authenticator
    signin: PatientSignIn
    patient: AccountInfo
    other: AccountInfo
    doctor: AccountInfo
    clock: list[float]


@pytest.fixture()
async def world(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    await migrate(database_url)
    limits = AuthSection(failure_delay_seconds=0, max_failures_per_minute=6)
    cfg: Config = replace(config(tmp_path), auth=limits)
    db = Database(database_url, open_blob_store("database", tmp_path / "b"))
    await db.start()
    master = MasterKey.create(tmp_path / "master.key")
    spaces = SpaceStore(db, master)
    auth = Authenticator(db, cfg.auth)
    issuer = PatientIssuer(cfg)
    auth.patient_tokens = PatientTokens(cfg, issuer)
    auth.password_filter = SecondFactorPasswords(db, spaces).filter
    clock = [NOW]
    signin = PatientSignIn(cfg, db, spaces, auth, issuer, clock=lambda: clock[0])
    patient, other, doctor = [
        await create_account(db, master, a, None)
        for a in (f"{ins(1)}@patient.hygie.test", f"{ins(2)}@patient.hygie.test",
                  "jean.dupont@hygie.test")
    ]  # fmt: skip
    # One argon2id hash for all (64 MiB and a fraction of a second each), as `user passwd` sets.
    await db.writer.run(lambda conn: conn.execute(
        update(ACCOUNTS).values(password_hash=_password_hash())))  # fmt: skip
    patient, other, doctor = (replace(a, has_password=True) for a in (patient, other, doctor))
    try:
        yield World(db, spaces, auth, signin, patient, other, doctor, clock)
    finally:
        await db.close()


@functools.cache
def _password_hash() -> str:
    return hash_password(PASSWORD)


def code_at(secret: str, when: float) -> str:
    return pyotp.TOTP(secret).at(int(when))


async def test_enrolment_sign_in_wrong_and_replayed_codes(world: World) -> None:
    w, address = world, world.patient.address
    enrolment = await w.signin.enrol(w.patient, PEER)
    assert enrolment.uri.startswith("otpauth://totp/Hygie:") and enrolment.secret in enrolment.uri
    assert (enrolment.svg().startswith("<svg") and "█" in enrolment.terminal()) or "▀" in (
        enrolment.terminal())  # fmt: skip
    secret = enrolment.secret
    with pytest.raises(SignInError) as refused:  # not confirmed yet: no two-factor sign-in
        await w.signin.sign_in(address, PASSWORD, code_at(secret, NOW), PEER)
    assert refused.value.status == 403

    with pytest.raises(SignInError, match="wrong code"):
        await w.signin.confirm(w.patient, "000000" if code_at(secret, NOW) != "000000"
                               else "111111", PEER)  # fmt: skip
    await w.signin.confirm(w.patient, code_at(secret, NOW - 30), PEER)  # one step of drift
    assert await w.spaces.totp_enrolled(w.patient.id)

    # The account password is now only the first factor: IMAP/SMTP refuse it.
    assert await w.auth.password(address, PASSWORD, PEER, "imap") is None
    assert (await w.auth.password(w.doctor.address, PASSWORD, PEER, "imap")) == w.doctor

    account = await w.signin.sign_in(address, PASSWORD, code_at(secret, NOW), PEER)
    assert account.id == w.patient.id
    with pytest.raises(SignInError, match="already used"):  # the same code, same 30 s
        await w.signin.sign_in(address, PASSWORD, code_at(secret, NOW), PEER)
    with pytest.raises(SignInError, match="already used"):  # an older step than the last
        await w.signin.sign_in(address, PASSWORD, code_at(secret, NOW - 30), PEER)
    with pytest.raises(SignInError, match="wrong code"):  # two steps ahead: out of the window
        await w.signin.sign_in(address, PASSWORD, code_at(secret, NOW + 60), PEER)
    w.auth.limiter = FailureLimiter(6)  # a minute later: the failures above are forgotten
    with pytest.raises(SignInError, match="wrong address or password"):
        await w.signin.sign_in(address, "not-the-password", code_at(secret, NOW + 30), PEER)
    assert code_step(secret, "12a456", NOW) is None

    w.clock[0] = NOW + 30
    account = await w.signin.sign_in(address, PASSWORD, code_at(secret, NOW + 30), PEER)
    token = w.signin.token(account)
    assert (await w.auth.token(token, "", PEER, "imap")).id == w.patient.id  # XOAUTH2 login
    session = w.signin.issuer.issue(address, audience=SESSION_AUDIENCE, ttl=60, acc=account.id)
    with pytest.raises(AuthError):  # a page session is not a login token
        await w.auth.token(session, "", PEER, "imap")
    no_otp = w.signin.issuer.issue(address, audience="hygie", ttl=60)
    with pytest.raises(AuthError):
        await w.auth.token(no_otp, "", PEER, "imap")

    actions = [e.action for e in await audit.entries(w.db, action_prefix="espace.")]
    assert actions.count("espace.signin.ok") == 2
    assert actions.count("espace.signin.failed") == 6
    assert "espace.2fa.confirmed" in actions and "espace.2fa.enrol" in actions
    for entry in await audit.entries(w.db, action_prefix="espace."):
        assert PASSWORD not in str(entry) and code_at(secret, NOW) not in str(entry.detail)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_attempts_are_rate_limited(world: World) -> None:
    w = world
    secret = (await w.signin.enrol(w.other, PEER)).secret
    await w.signin.confirm(w.other, code_at(secret, NOW), "203.0.113.9")
    for _ in range(6):
        with pytest.raises(SignInError) as wrong:
            await w.signin.sign_in(w.other.address, PASSWORD, "999999" if code_at(
                secret, NOW) != "999999" else "888888", "203.0.113.9")  # fmt: skip
        assert wrong.value.status == 401
    with pytest.raises(SignInError) as throttled:  # the right code, but too many failures
        await w.signin.sign_in(w.other.address, PASSWORD, code_at(secret, NOW + 30),
                               "203.0.113.9")  # fmt: skip
    assert throttled.value.status == 429
    assert [e.action for e in await audit.entries(w.db, action_prefix="espace.signin.throttled")]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_app_passwords_replace_the_account_password_for_mail_programs(world: World) -> None:
    w, address = world, world.patient.address
    # Not enrolled: the account password still works, as before issue 11.
    assert await w.auth.password(address, PASSWORD, PEER, "smtp") == w.patient
    secret = (await w.signin.enrol(w.patient, PEER)).secret
    await w.signin.confirm(w.patient, code_at(secret, NOW), PEER)

    first_id, first = await w.spaces.app_password_create(w.patient.id, "Thunderbird",
                                                         dt.datetime.now(dt.UTC))  # fmt: skip
    _, second = await w.spaces.app_password_create(w.patient.id, "Téléphone",
                                                   dt.datetime.now(dt.UTC))  # fmt: skip
    assert [label for _, label, _ in await w.spaces.app_passwords(w.patient.id)] == [
        "Thunderbird", "Téléphone"]  # fmt: skip
    assert (await w.auth.password(address, first, PEER, "imap")) == w.patient
    assert (await w.auth.password(address.upper(), second, PEER, "smtp")) == w.patient
    assert await w.auth.password(address, PASSWORD, PEER, "imap") is None
    assert await w.auth.password(w.other.address, first, PEER, "imap") is None  # not theirs

    assert await w.spaces.app_password_revoke(w.patient.id, first_id, dt.datetime.now(dt.UTC))
    assert not await w.spaces.app_password_revoke(w.other.id, first_id, dt.datetime.now(dt.UTC))
    assert await w.auth.password(address, first, PEER, "imap") is None
    assert (await w.auth.password(address, second, PEER, "imap")) == w.patient
    rows = await w.db.raw_rows("SELECT password_hash FROM app_passwords")
    assert all(first not in r[0] and r[0].startswith("sha256$") for r in rows)
    # Each change is audited in its own transaction (never a change without its entry); the
    # refused revocation of someone else's app password leaves none.
    trail = await audit.entries(w.db, action_prefix="espace.app_password.")
    assert [(e.action, e.target, e.detail) for e in reversed(trail)] == [
        ("espace.app_password.create", f"account:{w.patient.id}", {"id": first_id}),
        ("espace.app_password.create", f"account:{w.patient.id}", {"id": first_id + 1}),
        ("espace.app_password.revoke", f"account:{w.patient.id}", {"id": first_id}),
    ]
    assert all(first not in str(e) and second not in str(e) for e in trail)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_wrong_codes_have_a_daily_budget_per_account(world: World) -> None:
    """With the password known, the per-minute limit alone let anyone try 14,400 codes a day
    from one address (more from several): past CODE_FAILURES_PER_DAY wrong or replayed codes
    in 24 hours, even the right code is refused, from any address; audited."""
    from server.auth.patient import CODE_FAILURES_PER_DAY, TOO_MANY_CODES

    w = world
    w.auth.limiter = FailureLimiter(10_000)  # the per-minute limit out of the way
    secret = (await w.signin.enrol(w.other, PEER)).secret
    await w.signin.confirm(w.other, code_at(secret, NOW), PEER)
    wrong = "999999" if code_at(secret, NOW + 30) != "999999" else "888888"
    for n in range(CODE_FAILURES_PER_DAY):
        with pytest.raises(SignInError) as refused:
            await w.signin.sign_in(w.other.address, PASSWORD, wrong, f"203.0.113.{n % 200}")
        assert refused.value.status == 401
    with pytest.raises(SignInError) as throttled:
        await w.signin.sign_in(w.other.address, PASSWORD, code_at(secret, NOW + 30),
                               "198.51.100.77")  # fmt: skip
    assert (throttled.value.status, throttled.value.message) == (429, TOO_MANY_CODES)
    throttles = await audit.entries(w.db, action_prefix="espace.signin.throttled")
    assert throttles[0].detail == {"reason": "daily code budget"}
    # Another account is not affected.
    own = (await w.signin.enrol(w.patient, PEER)).secret
    await w.signin.confirm(w.patient, code_at(own, NOW), PEER)
    assert await w.signin.sign_in(w.patient.address, PASSWORD, code_at(own, NOW + 30), PEER)
