"""Login protection (issue 17 findings 2 and 3, issue 19 item 1), on the Authenticator that
IMAP and SMTP call: attempts counted before the check, limits that do not lock the owner out,
and the memory of verified credentials that never opens more than argon2id would."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from argon2 import PasswordHasher
from sqlalchemy import delete, update

from server.auth.authenticator import Authenticator, AuthError
from server.auth.guard import MAX_WAIT, Counts, Limits, decide, source_of, spacing
from server.config import AuthSection
from storage import passwords
from storage.accounts import check_password, create_account, set_password
from storage.blobs import open_blob_store
from storage.crypto import MasterKey
from storage.db import Database, migrate
from storage.transactions import ACCOUNTS

ALICE, BOB, CAROL = "alice@hygie.test", "bob@hygie.test", "carol@hygie.test"
PASSWORD = "right-password-1"


@pytest.fixture()
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'hygie.db'}"
    await migrate(url)
    database = Database(url, open_blob_store("file", tmp_path / "blobs"))
    await database.start()
    master = MasterKey.create(tmp_path / "master.key")
    for address in (ALICE, BOB, CAROL):
        await create_account(database, master, address, PASSWORD)
    try:
        yield database
    finally:
        await database.close()


def authenticator(db: Database, per_minute: int = 3, per_day: int = 100) -> Authenticator:
    config = AuthSection(
        max_failures_per_minute=per_minute, max_failures_per_day=per_day, failure_delay_seconds=0
    )
    return Authenticator(db, config)


async def outcome(auth: Authenticator, login: str, password: str, peer: str) -> str:
    """What a client would be told: "ok", "failed" or "throttled"."""
    try:
        account = await auth.password(login, password, peer, "imap")
    except AuthError as exc:
        assert exc.reason == AuthError.THROTTLED
        return "throttled"
    return "ok" if account is not None else "failed"


async def set_row(db: Database, address: str, **values: Any) -> None:
    """Change an account's row as another process would (nothing forgotten in this one)."""
    query = update(ACCOUNTS).where(ACCOUNTS.c.address == address).values(**values)
    await db.writer.run(lambda conn: conn.execute(query))


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == name]


# -- finding 2: parallel guesses ---------------------------------------------------------------


async def test_parallel_guesses_are_counted_before_the_check(db: Database) -> None:
    """40 wrong passwords sent at once from one address: only the limit's worth is checked.
    Before the fix the limit was read before and counted after argon2id: all 40 were."""
    auth = authenticator(db, per_minute=10)
    with structlog.testing.capture_logs() as logs:
        told = await asyncio.gather(
            *(outcome(auth, ALICE, f"guess-{i:02d}", "192.0.2.7") for i in range(40))
        )
    assert told.count("failed") == 10 and told.count("throttled") == 30, told
    assert len(events(logs, "auth_failed")) == 10
    assert len(events(logs, "auth_throttled")) == 30


async def test_checks_run_two_at_a_time_per_address(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Concurrent argon2id checks are bounded per address: three logins at once from one
    address, the third waits for one of the first two (seen by when each check ends)."""
    auth = authenticator(db, per_minute=100)
    running = 0
    most = 0
    real_verify = passwords.verify

    def counting_verify(stored: str, password: str) -> bool:
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            time.sleep(0.05)
            return real_verify(stored, password)
        finally:
            running -= 1

    monkeypatch.setattr(passwords, "verify", counting_verify)
    monkeypatch.setattr(passwords, "VERIFY_SLOTS", 8)  # the process-wide bound out of the way
    await asyncio.gather(*(outcome(auth, ALICE, f"g{i}", "192.0.2.8") for i in range(6)))
    assert most == 2, most


# -- finding 3: the owner is not locked out -----------------------------------------------------


async def test_owner_logs_in_from_another_address_while_the_attacker_is_refused(
    db: Database,
) -> None:
    auth = authenticator(db, per_minute=10)
    for _ in range(10):
        assert await outcome(auth, ALICE, "guess", "203.0.113.66") == "failed"
    assert await outcome(auth, ALICE, PASSWORD, "203.0.113.66") == "throttled"
    # Before the fix: throttled, from every address, for a minute.
    assert await outcome(auth, ALICE, PASSWORD, "198.51.100.20") == "ok"
    assert await outcome(auth, ALICE, "guess", "203.0.113.66") == "throttled"


async def test_ipv6_clients_are_counted_by_their_64(db: Database) -> None:
    """One host or site holds a whole /64: changing the last 64 bits is no new address."""
    assert (
        source_of("2001:db8:1:2:aaaa::1")
        == source_of("2001:db8:1:2:ffff::9")
        == ("2001:db8:1:2::/64")
    )
    assert source_of("::ffff:192.0.2.1") == "192.0.2.1"
    auth = authenticator(db, per_minute=3)
    for i in range(3):
        assert await outcome(auth, ALICE, "guess", f"2001:db8:1:2::{i + 1:x}") == "failed"
    assert await outcome(auth, ALICE, PASSWORD, "2001:db8:1:2:dead:beef:0:1") == "throttled"
    assert await outcome(auth, ALICE, PASSWORD, "2001:db8:1:3::1") == "ok"


async def test_staff_behind_one_nat_are_not_refused_for_a_neighbour(db: Database) -> None:
    """A hospital's staff share one address. Past the per-address limit, names that never
    logged in from there are refused; a colleague who did is not."""
    auth = authenticator(db, per_minute=3)
    nat = "192.0.2.100"
    assert await outcome(auth, BOB, PASSWORD, nat) == "ok"  # Bob works there
    for _ in range(3):
        assert await outcome(auth, ALICE, "guess", nat) == "failed"  # someone sprays
    assert await outcome(auth, CAROL, PASSWORD, nat) == "throttled"  # never logged in here
    assert await outcome(auth, BOB, PASSWORD, nat) == "ok"
    assert await outcome(auth, ALICE, PASSWORD, nat) == "throttled"  # the guessed name


async def test_distributed_guessing_is_paced_then_budgeted(db: Database) -> None:
    """Guesses from many addresses on one name: past the per-minute count in a day, checks
    from unknown addresses are spaced (growing); past the daily budget, addresses that failed
    on the name may not try again today, while a clean address still gets in; the owner's
    usual address is never slowed."""
    now = [1_000_000.0]
    auth = authenticator(db, per_minute=3, per_day=6)
    auth.guard.clock = lambda: now[0]
    assert await outcome(auth, ALICE, PASSWORD, "198.51.100.1") == "ok"  # her usual address
    for i in range(3):
        assert await outcome(auth, ALICE, "guess", f"203.0.113.{i + 1}") == "failed"
    # Paced: one check per second for this name from unknown addresses.
    started = time.monotonic()
    assert await outcome(auth, ALICE, "guess", "203.0.113.4") == "failed"
    assert await outcome(auth, ALICE, "guess", "203.0.113.5") == "failed"
    assert time.monotonic() - started >= 0.9
    assert await outcome(auth, ALICE, "guess", "203.0.113.6") == "failed"  # 6: the budget
    now[0] += 120  # two minutes on: the per-minute counts are gone, the day's are not
    assert await outcome(auth, ALICE, PASSWORD, "203.0.113.1") == "throttled"  # failed today
    with structlog.testing.capture_logs() as logs:
        assert await outcome(auth, ALICE, PASSWORD, "198.51.100.1") == "ok"
    assert events(logs, "auth_ok")[0]["paced"] is False
    now[0] += 60  # past the pacing slots
    assert await outcome(auth, ALICE, PASSWORD, "198.51.100.99") == "ok"  # a clean address
    now[0] += 24 * 3600
    assert await outcome(auth, ALICE, PASSWORD, "203.0.113.1") == "ok"  # the next day


def test_pacing_rules() -> None:
    limits = Limits(per_minute=10, per_day=100)
    assert [spacing(f, limits) for f in (0, 9, 10, 19, 20, 30, 60, 70, 1000)] == [
        0, 0, 1, 1, 2, 4, 32, 60, 60,
    ]  # fmt: skip
    busy = Counts(account_day=50, next_slot=100.0 + MAX_WAIT + 1)
    assert not decide(busy, limits, 100.0, has_login=True, pace=True).admitted
    known = Counts(account_day=500, pair_day=3, source_minute=50, known=True, next_slot=1e9)
    assert decide(known, limits, 100.0, has_login=True, pace=True).start == 100.0
    assert not decide(Counts(pair_minute=10, known=True), limits, 0, has_login=True,
                      pace=True).admitted  # fmt: skip


# -- issue 19 item 1: verified credentials remembered -------------------------------------------


async def test_a_repeated_login_skips_argon2id(db: Database) -> None:
    auth = authenticator(db)
    first = await check_password(db, ALICE, PASSWORD)
    again = await check_password(db, ALICE, PASSWORD)
    assert first.account is not None and not first.remembered
    assert again.account == first.account and again.remembered
    started = time.process_time()
    for _ in range(200):
        assert (await check_password(db, ALICE, PASSWORD)).remembered
    per_login = (time.process_time() - started) / 200
    assert per_login < 0.002, f"{per_login * 1000:.2f} ms of CPU per remembered check"
    # A wrong password never matches what is remembered, and counts as a failure.
    wrong = await check_password(db, ALICE, PASSWORD + "x")
    assert wrong.account is None and not wrong.remembered
    assert await outcome(auth, ALICE, PASSWORD.upper(), "192.0.2.1") == "failed"
    assert await outcome(auth, ALICE, PASSWORD, "192.0.2.1") == "ok"


async def test_a_new_password_disabling_or_deletion_take_effect_at_once(
    db: Database, tmp_path: Path
) -> None:
    assert (await check_password(db, ALICE, PASSWORD)).account is not None
    assert (await check_password(db, ALICE, PASSWORD)).remembered
    # `hygie user passwd` in this process …
    await set_password(db, ALICE, "second-password-2")
    assert (await check_password(db, ALICE, PASSWORD)).account is None
    assert (await check_password(db, ALICE, "second-password-2")).account is not None
    # … or a new hash written by another process (nothing forgotten here): the remembered
    # credential names the stored hash it was verified against.
    assert (await check_password(db, ALICE, "second-password-2")).remembered
    third = passwords.hash_password("third-password-3")
    await set_row(db, ALICE, password_hash=third)
    assert (await check_password(db, ALICE, "second-password-2")).account is None
    # Disabled or deleted by another process: refused with a remembered credential.
    assert (await check_password(db, BOB, PASSWORD)).account is not None
    await set_row(db, BOB, disabled=True)
    refused = await check_password(db, BOB, PASSWORD)
    assert refused.account is None and refused.remembered
    assert (await check_password(db, CAROL, PASSWORD)).account is not None
    await db.writer.run(lambda c: c.execute(delete(ACCOUNTS).where(ACCOUNTS.c.address == CAROL)))
    assert (await check_password(db, CAROL, PASSWORD)).account is None


async def test_old_parameters_still_verify_and_are_upgraded(db: Database) -> None:
    """A hash from before (RFC 9106's 64 MiB, t=3, p=4) opens the account, and is replaced by
    one with the OWASP parameters at that login."""
    old = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=4).hash(PASSWORD)
    await set_row(db, ALICE, password_hash=old)
    assert (await check_password(db, ALICE, PASSWORD)).account is not None
    rows = await db.raw_rows("SELECT password_hash FROM accounts WHERE address = ?", ALICE)
    assert rows[0][0] != old and rows[0][0].startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert (await check_password(db, ALICE, PASSWORD)).remembered
    assert (await check_password(db, ALICE, "not-it-at-all")).account is None


async def test_unknown_names_cost_a_check_with_the_current_parameters(db: Database) -> None:
    """Timing does not tell whether an address exists: an unknown name is checked against a
    hash made like every new one, and is counted and limited like any name."""
    assert not passwords.needs_rehash(passwords.dummy_hash())
    auth = authenticator(db, per_minute=3)
    started = time.process_time()
    for _ in range(3):
        assert await outcome(auth, "nobody@hygie.test", PASSWORD, "192.0.2.9") == "failed"
    assert (time.process_time() - started) / 3 > 0.005  # argon2id ran (~25 ms), not a lookup
    assert await outcome(auth, "nobody@hygie.test", PASSWORD, "192.0.2.9") == "throttled"


async def test_remembering_can_be_switched_off(db: Database) -> None:
    Authenticator(db, AuthSection(credential_cache_seconds=0))
    try:
        await check_password(db, ALICE, PASSWORD)
        assert not (await check_password(db, ALICE, PASSWORD)).remembered
    finally:
        Authenticator(db, AuthSection())
