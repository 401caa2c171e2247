"""Patient spaces opened by opt-out (issue 11 items 1 and 6), on SQLite and PostgreSQL, with a
clock the test moves: 1,000 patients invited from a CSV file, 100 refuse with the code from
their invitation, the job runner is restarted before the period ends, two runners race when
it ends, and exactly the 900 others open, once; then a space is closed and deleted after the
retention period.

The 1,000 invitations go through the jobs' mail path to a recording smarthost (the real SMTP
smarthost is in test_spaces_notify.py): 1,000 SMTP sessions would test nothing more."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from email.message import Message
from pathlib import Path

import pytest
from sqlalchemy import func, select

from server.config import Config
from server.espace.notify import Smarthost
from server.espace.spaces import InviteFileError, SpaceJobs, invite, parse_invite_file
from storage import audit
from storage.blobs import open_blob_store
from storage.crypto import MasterKey
from storage.db import Database, migrate
from storage.models import Account
from storage.spaces import SpaceStore
from tests.server.spaces_support import Clock, config, ins, invitation_code, invite_csv

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


class RecordingSmarthost(Smarthost):
    """Takes every mail, as a smarthost that always answers 250 would."""

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.mails: list[Message] = []

    @property
    def configured(self) -> bool:
        return True

    async def send(self, msg: Message) -> None:
        self.mails.append(msg)


class Operator:
    """One process's view: a database handle, the store and the job runner."""

    def __init__(self, url: str, tmp: Path, cfg: Config, master: MasterKey, clock: Clock):
        self.db = Database(url, open_blob_store("database", tmp / "b"))
        self.store = SpaceStore(self.db, master)
        self.smarthost = RecordingSmarthost(cfg)
        self.jobs = SpaceJobs(cfg, self.store, self.smarthost, clock)

    async def __aenter__(self) -> Operator:
        await self.db.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.db.close()


@pytest.fixture()
async def setup(
    database_url: str, tmp_path: Path
) -> AsyncIterator[tuple[str, Path, Config, MasterKey]]:
    await migrate(database_url)
    yield database_url, tmp_path, config(tmp_path), MasterKey.create(tmp_path / "master.key")


async def _patient_accounts(db: Database) -> int:
    async with db.read() as session:
        n = await session.scalar(
            select(func.count()).select_from(Account)
            .where(Account.address.like("%@patient.hygie.test"))
        )  # fmt: skip
    return int(n or 0)


async def test_thousand_invited_hundred_refuse_the_rest_open_once(
    setup: tuple[str, Path, Config, MasterKey],
) -> None:
    url, tmp, cfg, master = setup
    clock = Clock(T0)
    data = invite_csv(range(1000)) + invite_csv(range(1000, 1010), status="VALI").split("\n", 1)[1]

    async with Operator(url, tmp, cfg, master, clock) as op:
        result, not_qualified = await invite(op.store, cfg, data, clock())
        assert (result.created, result.already_known, not_qualified) == (1000, 0, 10)
        again, _ = await invite(op.store, cfg, invite_csv(range(5)), clock())
        assert (again.created, again.already_known) == (0, 5)  # never invited twice
        assert await op.store.counts() == {"pending": 1000, "open": 0, "refused": 0, "closed": 0}

        report = await op.jobs.run_once()  # the invitations leave; nothing opens yet
        assert (report.sent, report.opened) == (1000, 0)
        codes = {m["To"]: invitation_code(m) for m in op.smarthost.mails}
        assert len(codes) == 1000 and len(set(codes.values())) == 1000
        assert (await op.jobs.run_once()).sent == 0  # each invitation is sent once

        clock.advance(days=10)
        refusing = [f"patient{n}@example.org" for n in range(0, 1000, 10)]
        done = await asyncio.gather(*(op.store.refuse(codes[email], clock(), peer="192.0.2.7")
                                      for email in refusing))  # fmt: skip
        assert all(d is not None for d in done)
        assert await op.store.refuse(codes[refusing[0]], clock()) is None  # one-time
        assert await op.store.refuse("ZZZZZZZZZZ", clock()) is None
        entries = await audit.entries(op.db, action_prefix="space.refuse", limit=200)
        assert len(entries) == 100 and all(ins(0) not in str(e) for e in entries)

    clock.advance(days=31)  # 41 days: a restarted runner opens nothing yet
    async with Operator(url, tmp, cfg, master, clock) as op:
        assert (await op.jobs.run_once()).opened == 0
        assert await _patient_accounts(op.db) == 0

    clock.advance(days=1, seconds=1)  # the period is over: two runners race for the spaces
    async with Operator(url, tmp, cfg, master, clock) as a, \
            Operator(url, tmp, cfg, master, clock) as b:  # fmt: skip
        first, second = await asyncio.gather(a.jobs.run_once(), b.jobs.run_once())
        assert first.opened + second.opened == 900
        assert (await a.jobs.run_once()).opened == 0  # runs once
        assert await a.store.counts() == {"pending": 0, "open": 900, "refused": 100, "closed": 0}
        assert await _patient_accounts(a.db) == 900
        refused = await a.store.by_ins(ins(0))
        assert refused is not None and refused.state == "refused" and refused.account_id is None
        opened = await a.store.by_ins(ins(1))
        assert opened is not None and opened.state == "open" and opened.account_id is not None
        # Too late to refuse once open; the refusal of a refused space stays.
        assert await a.store.refuse(codes["patient1@example.org"], clock()) is None
        assert (await a.store.by_ins(ins(0))) == refused


async def test_close_then_delete_after_retention(
    setup: tuple[str, Path, Config, MasterKey],
) -> None:
    url, tmp, cfg, master = setup
    clock = Clock(T0)
    async with Operator(url, tmp, cfg, master, clock) as op:
        await invite(op.store, cfg, invite_csv(range(3)), clock(), period_days=0)
        await invite(op.store, cfg, invite_csv(range(3, 4)), clock())
        report = await op.jobs.run_once()
        assert (report.sent, report.opened) == (4, 3)  # invitations first, with their codes
        space = await op.store.by_ins(ins(1))
        assert space is not None and space.account_id is not None
        codes = {m["To"]: invitation_code(m) for m in op.smarthost.mails}
        # The code of an open space sets its first password, once; a pending one's cannot.
        assert await op.store.activate(codes["patient1@example.org"], "$argon2id$x", clock())
        assert not await op.store.activate(codes["patient1@example.org"], "$argon2id$y", clock())
        assert not await op.store.activate(codes["patient3@example.org"], "$argon2id$z", clock())
        async with op.db.read() as session:
            stored = await session.scalar(
                select(Account.password_hash).where(Account.address == space.address)
            )
        assert stored == "$argon2id$x"
        retention = dt.timedelta(days=cfg.spaces.retention_days)
        closed = await op.store.close(ins(1), clock(), retention)
        assert closed is not None
        assert await op.store.close(ins(1), clock(), retention) is None  # already closed
        address = space.address
        async with op.db.read() as session:
            assert await session.scalar(select(Account.disabled).where(Account.address == address))

    clock.advance(days=29)
    async with Operator(url, tmp, cfg, master, clock) as op:
        assert (await op.jobs.run_once()).purged == 0
        clock.advance(days=1)
        assert (await op.jobs.run_once()).purged == 1
        assert (await op.jobs.run_once()).purged == 0
        async with op.db.read() as session:
            assert await session.scalar(
                select(func.count()).select_from(Account).where(Account.address == address)
            ) == 0  # fmt: skip
        assert await op.store.counts() == {"pending": 1, "open": 2, "refused": 0, "closed": 1}
        assert [e.action for e in await audit.entries(op.db, action_prefix="space.purge")] == [
            "space.purge"
        ]


def test_invitation_file_errors_store_nothing(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    bad = invite_csv(range(3)).replace(ins(1), ins(1)[:-2] + "00")
    with pytest.raises(InviteFileError, match=r"line 3: .*key") as caught:
        parse_invite_file(bad, cfg)
    assert ins(1)[:13] not in str(caught.value)  # no identifier in the message
    with pytest.raises(InviteFileError, match="header"):
        parse_invite_file("ins,email\n", cfg)
    with pytest.raises(InviteFileError, match="line 2: not a valid e-mail"):
        parse_invite_file(invite_csv(range(1)).replace("patient0@example.org", "nope"), cfg)
    with pytest.raises(InviteFileError, match="line 3: this INS is already"):
        parse_invite_file(invite_csv(range(1)) + invite_csv(range(1)).split("\n", 1)[1], cfg)
    with pytest.raises(InviteFileError, match="birth_date"):
        parse_invite_file(invite_csv(range(1)).replace("1979-03-05", "05/03/1979"), cfg)
    parsed = parse_invite_file(invite_csv(range(2)), cfg)
    assert [i.address for i in parsed.invitees] == [f"{ins(0)}@patient.hygie.test",
                                                    f"{ins(1)}@patient.hygie.test"]  # fmt: skip
