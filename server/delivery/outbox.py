"""After-commit work (design.md §2 step 5): the outbox's jobs, run by their steps.

A job is leased (so one process runs it), run by its step's ``after`` hook with the message
read back from the outbox, then removed. Each write the hook makes is named
(:func:`storage.db.effect`) and recorded in its transaction, so when a process dies midway the
next run (by any process, once the lease expires) skips what was done and does the rest: each
write happens once. A hook that raises is retried with back-off and, after
:data:`MAX_ATTEMPTS`, kept as failed (``hygie outbox list``, ``hygie outbox retry``); that one
place logs it. Nothing here delays the ``250``: the client had it when the job was written.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
from collections import OrderedDict

import structlog

from server.delivery.message import Message
from server.delivery.pipeline import AfterWork, Envelope, Pipeline
from storage import outbox
from storage.crypto import MasterKey
from storage.db import Database, running_job

log = structlog.get_logger("hygie.outbox")
POLL_SECONDS = 5.0
MAX_ATTEMPTS = 10
RETRY_BASE_SECONDS = 15.0
RETRY_MAX_SECONDS = 3600.0
CONCURRENT_JOBS = 4
#: Messages just committed with jobs, so their jobs in this process need no second parse.
RECENT_MESSAGES = 16
RECENT_BYTES = 64 * 1024 * 1024


class OutboxRunner:
    def __init__(self, pipeline: Pipeline, db: Database, master: MasterKey) -> None:
        self.pipeline = pipeline
        self.db = db
        self.master = master
        self.owner = f"{socket.gethostname()}:{os.getpid()}"[:64]
        self.lease_seconds = pipeline.config.server.job_lease_seconds
        self.wake = asyncio.Event()
        self.slots = asyncio.Semaphore(CONCURRENT_JOBS)
        self._recent: OrderedDict[str, Message] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        pipeline.jobs_waiting = self.wake.set
        pipeline.remember = self.remember

    def remember(self, blob_id: str, message: Message) -> None:
        """A message committed with jobs: kept a moment for its jobs in this process."""
        self._recent[blob_id] = message
        while len(self._recent) > RECENT_MESSAGES or (
            len(self._recent) > 1 and sum(m.size for m in self._recent.values()) > RECENT_BYTES
        ):
            self._recent.popitem(last=False)

    async def run(self) -> None:
        while True:
            try:
                ran = await self.run_due()
            except Exception as exc:  # the database may be briefly unavailable
                log.error("outbox_lease_failed", error=type(exc).__name__)
                ran = 0
            if ran:
                continue
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=POLL_SECONDS)
            except TimeoutError:
                pass

    async def run_due(self) -> int:
        """Lease the jobs due now and run them (a few at a time); how many were leased."""
        jobs = await outbox.lease(
            self.db, self.owner, limit=CONCURRENT_JOBS * 4, lease_seconds=self.lease_seconds
        )
        if jobs:
            await asyncio.gather(*(self._guarded(job) for job in jobs))
        return len(jobs)

    async def _guarded(self, job: outbox.Job) -> None:
        async with self.slots:
            task = asyncio.current_task()
            if task is not None:
                self._tasks.add(task)
            try:
                await self.run_job(job)
            finally:
                if task is not None:
                    self._tasks.discard(task)

    async def run_job(self, job: outbox.Job) -> None:
        try:
            step = self.pipeline.step(job.step)
        except KeyError:
            await self._failed(job, f"no step {job.step!r} in this server", final=True)
            return
        try:
            opened = await outbox.open_job(self.db, self.master, job)
            message = self._recent.get(job.blob_id)
            if message is None or message.raw != opened.raw:
                message = await self.pipeline.parse(opened.raw)
            work = AfterWork(message, Envelope.from_json(opened.envelope), opened.data)
            with running_job(job.id):
                await step.after(work)
        except Exception as exc:
            await self._failed(job, type(exc).__name__, exc=exc)
            return
        if await outbox.finish(self.db, job, self.owner):
            log.info("outbox_job_done", step=job.step, job=job.id, attempts=job.attempts + 1)

    async def _failed(
        self, job: outbox.Job, error: str, *, final: bool = False, exc: Exception | None = None
    ) -> None:
        attempts = job.attempts + 1
        final = final or attempts >= MAX_ATTEMPTS
        delay = min(RETRY_BASE_SECONDS * 2 ** (attempts - 1), RETRY_MAX_SECONDS)
        log.error(
            "outbox_job_failed", step=job.step, job=job.id, attempts=attempts, error=error,
            final=final, exc_info=exc,
        )  # fmt: skip
        try:
            await outbox.defer(
                self.db, job, self.owner, error=error, failed=final,
                next_attempt_at=outbox.now() + dt.timedelta(seconds=delay),
            )  # fmt: skip
        except Exception as exc2:  # the lease expires and another run tries again
            log.error("outbox_defer_failed", error=type(exc2).__name__)

    async def drain(self, grace: float) -> None:
        """At shutdown: let running jobs finish (their leases expire otherwise)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=grace)
