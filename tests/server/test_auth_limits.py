"""Abuse resistance (issue 4 item 6): failed logins are limited per client address and per
account, whatever the mechanism; the delay is awaited in the reply, so other sessions are
served meanwhile, and argon2id runs off the event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.auth.authenticator import Authenticator, AuthError
from server.auth.oauth import TokenVerifier
from server.config import AuthSection, Config
from storage.accounts import create_account
from storage.blobs import open_blob_store
from storage.crypto import MasterKey
from storage.db import Database, migrate

ALICE, BOB = "alice@hygie.test", "bob@hygie.test"
PASSWORD = "right-password-1"


@pytest.fixture()
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'hygie.db'}"
    await migrate(url)
    database = Database(url, open_blob_store("file", tmp_path / "blobs"))
    await database.start()
    master = MasterKey.create(tmp_path / "master.key")
    await create_account(database, master, ALICE, PASSWORD)
    await create_account(database, master, BOB, PASSWORD)
    try:
        yield database
    finally:
        await database.close()


def authenticator(db: Database, tmp_path: Path, **settings: float) -> Authenticator:
    config = AuthSection(
        max_failures_per_minute=int(settings.get("limit", 3)),
        failure_delay_seconds=settings.get("delay", 0.05),
    )
    tokens = TokenVerifier(Config(data_dir=tmp_path))  # no JWKS file: every token fails
    return Authenticator(db, config, tokens=tokens)


async def test_limited_per_address_and_per_account(db: Database, tmp_path: Path) -> None:
    auth = authenticator(db, tmp_path)
    for _ in range(3):
        assert await auth.password(ALICE, "wrong", "10.0.0.1", "imap") is None
    # The address is blocked, whatever the account …
    with pytest.raises(AuthError) as caught:
        await auth.password(BOB, PASSWORD, "10.0.0.1", "imap")
    assert caught.value.reason == AuthError.THROTTLED
    # … and the account is blocked, whatever the address (a distributed guesser).
    with pytest.raises(AuthError):
        await auth.password(ALICE, PASSWORD, "10.0.0.2", "smtp")
    # Others are not.
    assert await auth.password(BOB, PASSWORD, "10.0.0.2", "smtp") is not None


async def test_token_and_certificate_failures_count_too(db: Database, tmp_path: Path) -> None:
    auth = authenticator(db, tmp_path)
    for _ in range(3):
        with pytest.raises(AuthError) as caught:
            await auth.token("not-a-token", ALICE, "10.0.0.3", "smtp")
        assert caught.value.reason == AuthError.FAILED
    with pytest.raises(AuthError) as caught:
        await auth.password(BOB, PASSWORD, "10.0.0.3", "smtp")
    assert caught.value.reason == AuthError.THROTTLED
    # The token named ALICE: her account is limited as well.
    with pytest.raises(AuthError) as caught:
        await auth.password(ALICE, PASSWORD, "10.0.0.4", "smtp")
    assert caught.value.reason == AuthError.THROTTLED


async def test_failures_do_not_stall_other_sessions(db: Database, tmp_path: Path) -> None:
    """Eight failing logins (argon2id + a 1 s delay each) while a ticker measures how late
    the event loop runs: it must keep ticking, and a good login completes meanwhile."""
    auth = authenticator(db, tmp_path, limit=100, delay=1.0)
    gaps: list[float] = []

    async def ticker(stop: asyncio.Event) -> None:
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    stop = asyncio.Event()
    ticking = asyncio.create_task(ticker(stop))
    started = time.monotonic()
    finished: list[float] = []

    async def failing_login(i: int) -> object:
        result = await auth.password(ALICE, "wrong", f"10.1.0.{i}", "imap")
        finished.append(time.monotonic() - started)
        return result

    failing = [asyncio.create_task(failing_login(i)) for i in range(8)]
    await asyncio.sleep(0.05)
    good = await auth.password(BOB, PASSWORD, "10.2.0.1", "imap")
    good_after = time.monotonic() - started
    assert good is not None
    assert all(r is None for r in await asyncio.gather(*failing))
    stop.set()
    await ticking
    assert max(gaps) < 0.25, f"the event loop stalled for {max(gaps):.3f} s"
    # The good login waited for argon2 slots, never for the failures' 1 s delays: had a failure
    # kept its slot through its delay, the good login would finish after the last failure.
    # (Compared with the failures' own times, not a wall-clock bound: the machine may be busy.)
    assert good_after < max(finished), (good_after, sorted(finished))
