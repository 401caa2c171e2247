"""The pipeline's promises (design.md §2, issue 18), on SQLite and PostgreSQL, in-process with
real databases and the real outbox:

- one commit: a message whose outbound queue entry cannot be written leaves no local copy
  (the client's retry then delivers it once);
- a step that raises after the commit neither loses the message nor delivers it twice, and
  its work is retried until done, each write once;
- a process killed (SIGKILL) in the middle of after-commit work: the next process does the
  rest, and nothing already done happens again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from server.config import Config, load_config, render_config
from server.delivery.message import Message
from server.delivery.outbox import OutboxRunner
from server.delivery.pipeline import (
    FROM_OUTSIDE,
    AfterWork,
    Envelope,
    Origin,
    Pipeline,
    Plan,
    Step,
)
from server.delivery.trace import Trace
from storage import outbox
from storage.accounts import create_account
from storage.blobs import open_blob_store
from storage.crypto import MasterKey
from storage.db import Database, effect, migrate
from storage.mailstore import MailStore, Recipient
from storage.outbound import QueuedRecipient

TRACE = Trace("client.example", "192.0.2.7", "ESMTPSA", "TLSv1.3", "mail.hygie.test")
RAW = (
    b"From: jean.dupont@hygie.test\r\nTo: claire.martin@hygie.test\r\n"
    b"Subject: compte rendu\r\nMessage-ID: <m1@hygie.test>\r\n\r\nBonjour.\r\n"
)


@dataclass
class World:
    config: Config
    db: Database
    master: MasterKey
    store: MailStore
    claire: Recipient
    jean: Recipient
    url: str
    data: Path


def _config(data: Path) -> Config:
    (data / "hygie.toml").write_text(render_config("hygie.test", "mail.hygie.test"), "utf-8")
    config = load_config(data, environ={})
    server = dataclasses.replace(config.server, job_lease_seconds=2.0)
    return dataclasses.replace(config, server=server)


@pytest.fixture
async def world(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    await migrate(database_url)
    master = MasterKey.create(tmp_path / "master.key")
    db = Database(database_url, open_blob_store("file", tmp_path / "blobs"))
    await db.start()
    store = MailStore(db)
    try:
        for who in ("claire.martin", "jean.dupont"):
            await create_account(db, master, f"{who}@hygie.test", None)
        claire = await store.resolve("claire.martin@hygie.test")
        jean = await store.resolve("jean.dupont@hygie.test")
        assert claire is not None and jean is not None
        yield World(_config(tmp_path), db, master, store, claire, jean, database_url, tmp_path)
    finally:
        await db.close()


async def inbox_count(world: World, recipient: Recipient) -> int:
    return (await world.store.counts(recipient.folder_id))["MESSAGES"]


class Flaky(Step):
    """After the commit: tells Jean (one effect), then fails ``failures`` times, then tells
    Jean again (a second effect)."""

    name = "flaky"
    origins = FROM_OUTSIDE  # not the notices it writes itself

    def __init__(self, pipeline: Pipeline, failures: int) -> None:
        self.pipeline = pipeline
        self.failures = failures
        self.runs = 0

    async def route(self, message: Message, envelope: Envelope, plan: Plan) -> None:
        plan.jobs.append((self.name, {"subject": message.text("Subject")}))

    async def after(self, work: AfterWork) -> None:
        self.runs += 1
        note = b"Subject: first\r\n\r\n" + work.data["subject"].encode() + b"\r\n"
        with effect("first"):
            await self.pipeline.notice(note, "jean.dupont@hygie.test")
        if self.runs <= self.failures:
            raise RuntimeError("the step's bug")
        with effect("second"):
            await self.pipeline.notice(b"Subject: second\r\n\r\nok\r\n", "jean.dupont@hygie.test")


def envelope(world: World, **extra: object) -> Envelope:
    return Envelope(
        Origin.SUBMISSION, "jean.dupont@hygie.test", (world.claire,), trace=TRACE, **extra
    )  # type: ignore[arg-type]


async def test_a_failing_queue_entry_leaves_no_local_copy(world: World) -> None:
    """One transaction: the local copy and the queue entry are committed together or not at
    all, so the client's retry does not give Claire a second copy."""
    pipeline = Pipeline(world.config, world.db, world.master, world.store,
                        is_trusted=lambda domain: True)  # fmt: skip
    broken = QueuedRecipient("x@sante-b.test", None)  # type: ignore[arg-type] (NOT NULL)
    outcome = await pipeline.accept(RAW, envelope(world, remote=(broken,)))
    assert outcome.reply.startswith("451 4.3.0") and not outcome.accepted
    assert await inbox_count(world, world.claire) == 0
    assert await world.db.lookup("SELECT count(*) FROM outbound_messages") == [(0,)]
    fixed = QueuedRecipient("x@sante-b.test", "sante-b.test")
    outcome = await pipeline.accept(RAW, envelope(world, remote=(fixed,)))  # the retry
    assert outcome.accepted
    assert await inbox_count(world, world.claire) == 1
    assert await world.db.lookup("SELECT count(*) FROM outbound_messages") == [(1,)]


async def test_a_step_that_raises_after_the_commit(world: World) -> None:
    pipeline = Pipeline(world.config, world.db, world.master, world.store)
    flaky = Flaky(pipeline, failures=2)
    pipeline.steps = [flaky]
    runner = OutboxRunner(pipeline, world.db, world.master)
    outcome = await pipeline.accept(RAW, envelope(world))
    assert outcome.accepted  # the 250 does not wait for the step
    assert await inbox_count(world, world.claire) == 1
    for attempt in range(1, 4):
        assert await runner.run_due() == 1
        states = await outbox.listing(world.db)
        if attempt < 3:  # failed, retried later; made due now for the test
            assert [(s.step, s.attempts, s.failed) for s in states] == [("flaky", attempt, False)]
            assert states[0].last_error == "RuntimeError"
            await outbox.retry(world.db)
    assert await outbox.listing(world.db) == []
    assert flaky.runs == 3
    # Claire's copy once; Jean's first notice once although the step ran it three times.
    assert await inbox_count(world, world.claire) == 1
    assert await inbox_count(world, world.jean) == 2
    assert await world.db.lookup("SELECT count(*) FROM outbox_messages") == [(0,)]
    assert await world.db.lookup("SELECT count(*) FROM outbox_effects") == [(0,)]


async def test_a_step_that_fails_for_good_is_kept_and_listed(world: World) -> None:
    pipeline = Pipeline(world.config, world.db, world.master, world.store)
    pipeline.steps = [Flaky(pipeline, failures=99)]
    runner = OutboxRunner(pipeline, world.db, world.master)
    assert (await pipeline.accept(RAW, envelope(world))).accepted
    for _ in range(10):
        await runner.run_due()
        await outbox.retry(world.db, [s.id for s in await outbox.listing(world.db) if not s.failed])
    (state,) = await outbox.listing(world.db)
    assert state.failed and state.attempts == 10
    assert await runner.run_due() == 0  # not taken again until the operator says so
    assert await inbox_count(world, world.jean) == 1  # the first effect, once


CHILD = """
import asyncio, dataclasses, os, signal, sys
from pathlib import Path
from server.config import load_config
from server.delivery.outbox import OutboxRunner
from server.delivery.pipeline import Pipeline, Step
from storage.blobs import open_blob_store
from storage.crypto import MasterKey
from storage.db import Database, effect
from storage.mailstore import MailStore

data, url = Path(sys.argv[1]), sys.argv[2]

class Dies(Step):
    name = "flaky"
    def __init__(self, pipeline):
        self.pipeline = pipeline
    async def after(self, work):
        note = b"Subject: first\\r\\n\\r\\nx\\r\\n"
        with effect("first"):
            await self.pipeline.notice(note, "jean.dupont@hygie.test")
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no lease given back

async def main():
    config = load_config(data, environ={})
    config = dataclasses.replace(
        config, server=dataclasses.replace(config.server, job_lease_seconds=2.0))
    master = MasterKey.load(data / "master.key")
    db = Database(url, open_blob_store("file", data / "blobs"))
    await db.start()
    pipeline = Pipeline(config, db, master, MailStore(db))
    pipeline.steps = [Dies(pipeline)]
    await OutboxRunner(pipeline, db, master).run_due()

asyncio.run(main())
"""


async def test_sigkill_in_the_middle_of_after_commit_work(world: World) -> None:
    """The job's first write is made, then the process dies holding the job's lease; once
    the lease expires the next process runs the job: the first write is not made again, the
    second is made, the job is gone."""
    pipeline = Pipeline(world.config, world.db, world.master, world.store)
    flaky = Flaky(pipeline, failures=0)
    pipeline.steps = [flaky]
    assert (await pipeline.accept(RAW, envelope(world))).accepted
    child = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", textwrap.dedent(CHILD), str(world.data), world.url],
        capture_output=True, timeout=60, env={**os.environ, "PYTHONPATH": os.getcwd()},
    )  # fmt: skip
    assert child.returncode == -9, child.stderr.decode()[-2000:]
    assert await inbox_count(world, world.jean) == 1  # the first notice, written before death
    (owner,) = await world.db.lookup("SELECT lease_owner FROM outbox_jobs")
    assert owner[0] is not None  # the dead process's lease: nobody else runs it meanwhile
    runner = OutboxRunner(pipeline, world.db, world.master)
    ran = 0
    for _ in range(40):  # the lease (2 s) expires, then this process takes the job over
        ran = await runner.run_due()
        if ran:
            break
        await asyncio.sleep(0.25)
    assert ran == 1
    assert flaky.runs == 1
    assert await outbox.listing(world.db) == []
    assert await inbox_count(world, world.jean) == 2  # first (once) and second
    assert await inbox_count(world, world.claire) == 1
