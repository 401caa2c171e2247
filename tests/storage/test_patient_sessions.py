"""Patients' sessions in the database (issue 17 finding 7), on SQLite and PostgreSQL: migration
0020 upgrades a database of 0019 with accounts in it and downgrades cleanly, and its table is
the model's; sessions are found while they live, and every one of an account ends at once with
a password change, a second-factor reset or closing the space, never another account's."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from storage import audit
from storage.accounts import create_account, set_password
from storage.blobs import open_blob_store
from storage.crypto import MasterKey
from storage.db import Database, _alembic_config, make_engine, migrate
from storage.patient_sessions import ENROL, PAGE, SESSIONS, TOKEN, VERIFY, PatientSessions
from storage.spaces import SpaceStore, normalize_code
from tests.server.spaces_support import ins

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
TTL = dt.timedelta(minutes=10)


async def _alembic(url: str, step: Callable[..., None], revision: str) -> None:
    engine = make_engine(url, writer=True)
    try:
        async with engine.begin() as conn:

            def run(sync_conn: Connection) -> None:
                cfg = _alembic_config(url)
                cfg.attributes["connection"] = sync_conn
                step(cfg, revision)

            await conn.run_sync(run)
    finally:
        await engine.dispose()


async def _columns(url: str) -> dict[str, tuple[bool, set[str]]]:
    """The table's columns (nullable) and index names, as the database has them."""
    engine = make_engine(url, writer=True)
    try:
        async with engine.connect() as conn:

            def read(sync_conn: Connection) -> dict[str, tuple[bool, set[str]]]:
                found = inspect(sync_conn)
                if not found.has_table("patient_sessions"):
                    return {}
                indexes = {i["name"] or "" for i in found.get_indexes("patient_sessions")}
                return {c["name"]: (bool(c["nullable"]), indexes)
                        for c in found.get_columns("patient_sessions")}  # fmt: skip

            return await conn.run_sync(read)
    finally:
        await engine.dispose()


async def test_migration_0020_up_and_down(database_url: str, tmp_path: Path) -> None:
    # The account is made with today's models (at the head), then the schema goes back to
    # 0019 under it: the rows stay, the sessions table goes.
    await migrate(database_url)
    db = Database(database_url, open_blob_store("database", tmp_path / "b"))
    await db.start()
    try:
        kept = await create_account(db, MasterKey.create(tmp_path / "m.key"), "a@hygie.test", None)
    finally:
        await db.close()
    await _alembic(database_url, command.downgrade, "0019")
    assert await _columns(database_url) == {}
    await migrate(database_url)
    columns = await _columns(database_url)
    assert {name: nullable for name, (nullable, _) in columns.items()} == {
        c.name: c.nullable for c in SESSIONS.columns
    }
    assert next(iter(columns.values()))[1] >= {"ix_patient_sessions_account",
                                               "ix_patient_sessions_expires"}  # fmt: skip
    await _alembic(database_url, command.downgrade, "0019")
    assert await _columns(database_url) == {}
    await migrate(database_url)
    db = Database(database_url, open_blob_store("database", tmp_path / "b"))
    await db.start()
    try:
        sessions = PatientSessions(db)
        secret = await sessions.start(kept.id, PAGE, NOW, TTL)
        found = await sessions.find(secret, (PAGE,), NOW)
        assert found is not None and found.account.address == "a@hygie.test"
    finally:
        await db.close()


@pytest.fixture()
async def world(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[Database, MasterKey]]:
    await migrate(database_url)
    db = Database(database_url, open_blob_store("database", tmp_path / "b"))
    await db.start()
    try:
        yield db, MasterKey.create(tmp_path / "master.key")
    finally:
        await db.close()


async def test_sessions_live_and_end_together(world: tuple[Database, MasterKey]) -> None:
    db, master = world
    sessions = PatientSessions(db)
    me = await create_account(db, master, f"{ins(1)}@patient.hygie.test", "first-password-1")
    other = await create_account(db, master, f"{ins(2)}@patient.hygie.test", "first-password-2")
    page = await sessions.start(me.id, PAGE, NOW, TTL)
    token = await sessions.start(me.id, TOKEN, NOW, TTL)
    theirs = await sessions.start(other.id, PAGE, NOW, TTL)
    assert (await sessions.find(page, (PAGE,), NOW)) is not None
    assert await sessions.find(page, (ENROL,), NOW) is None  # a page session enrols nothing
    assert await sessions.find(page, (PAGE,), NOW + TTL) is None  # expired
    assert await sessions.find(token, (TOKEN,), None) is not None  # the JWT carries the expiry
    assert await sessions.find("not-a-session", (PAGE, TOKEN), NOW) is None
    assert page not in str(await db.raw_rows("SELECT * FROM patient_sessions"))  # digests only

    await set_password(db, me.address, "second-password-1")
    assert await sessions.find(page, (PAGE,), NOW) is None
    assert await sessions.find(token, (TOKEN,), None) is None
    assert await sessions.find(theirs, (PAGE,), NOW) is not None  # another account's stays
    ended = await audit.entries(db, action_prefix="espace.sessions.ended")
    assert [(e.target, e.detail) for e in ended] == [
        (f"account:{me.id}", {"reason": "password", "count": 2})]  # fmt: skip

    spaces = SpaceStore(db, master)
    await spaces.totp_begin(other.id, "JBSWY3DPEHPK3PXP", NOW)
    assert await spaces.totp_reset(other.id)
    assert await sessions.find(theirs, (PAGE,), NOW) is None

    again = await sessions.start(me.id, TOKEN, NOW, TTL)
    assert await sessions.purge_expired(NOW + TTL + dt.timedelta(seconds=1)) == 1
    assert await sessions.find(again, (TOKEN,), None) is None


async def test_an_emailed_code_is_tried_five_times(world: tuple[Database, MasterKey]) -> None:
    db, master = world
    sessions = PatientSessions(db)
    me = await create_account(db, master, f"{ins(3)}@patient.hygie.test", "first-password-3")
    first = await sessions.start(me.id, VERIFY, NOW, TTL, code="ABCD2345")
    assert await sessions.check_code(first, "abcd 2345", NOW + TTL, 5) == (False, 0)  # expired
    assert await sessions.check_code(first, "ABCD2345", NOW, 5) == (True, 0)
    assert await sessions.find(first, (VERIFY,), NOW) is None  # used up: the caller enrols

    second = await sessions.start(me.id, VERIFY, NOW, TTL, code="EFGH6789")
    assert normalize_code("efgh-6789") == "EFGH6789"
    for left in (4, 3, 2, 1, 0):
        assert await sessions.check_code(second, "ZZZZZZZZ", NOW, 5) == (False, left)
    assert await sessions.check_code(second, "EFGH6789", NOW, 5) == (False, 0)  # spent
    assert await sessions.find(second, (VERIFY,), NOW) is None
    assert await sessions.last_started(me.id, VERIFY) == NOW  # still spaces the next mail
    third = await sessions.start(me.id, VERIFY, NOW, TTL, code="JKMN2345", replacing=(VERIFY,))
    assert await sessions.last_started(me.id, VERIFY) == NOW
    assert len(await db.raw_rows("SELECT id FROM patient_sessions")) == 1
    assert await sessions.find(third, (VERIFY,), NOW) is not None
