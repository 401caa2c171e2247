"""Patient spaces for everyone (issue 11 items 1–2): the invitation file, the jobs that open
spaces when their refusal period ends, delete closed ones after the retention period, and send
invitations and notifications to personal e-mail addresses; and the delivery hook that owes a
patient a notification.

The invitation file is CSV (UTF-8, comma-separated, a header line), one patient a line::

    ins,oid,birth_name,given_names,birth_date,sex,birthplace,status,email
    279035121518989,1.2.250.1.213.1.4.8,MARTIN,Marie Claire,1979-03-05,F,51215,QUAL,m@example.org

``given_names`` are the given names at birth separated by spaces; ``birth_date`` is
YYYY-MM-DD; ``sex`` M, F or I; ``birthplace`` the INSEE code (may be empty); ``status`` the
RNIV identity status (PROV, RECUP, VALI, QUAL): only QUAL identities get a space (design.md
§5). The whole file is checked before anything is stored; one bad line stores nothing.

The jobs (:class:`SpaceJobs`) take a clock; every transition they make is one transaction
guarded by the row's state (``storage.spaces``), so a job that is interrupted, restarted, or
run by two nodes at once changes each space once.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import structlog
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from directory.ins import IdentityStatus, Ins, InsError, is_patient_address
from directory.ins import patient_domain as patient_domain_of
from directory.patients import PATIENTS, Traits, refusals
from server.config import Config
from server.delivery.message import Message
from server.delivery.pipeline import Envelope, Step
from server.espace.notify import NotifyError, Smarthost, build_mail
from storage.accounts import AccountError, normalize_address
from storage.db import Database
from storage.mailstore import Recipient
from storage.patient_sessions import PatientSessions
from storage.spaces import Invitee, InviteResult, MailJob, SpaceStore

log = structlog.get_logger("hygie.spaces")
Clock = Callable[[], dt.datetime]
HEADER = ("ins", "oid", "birth_name", "given_names", "birth_date", "sex", "birthplace",
          "status", "email")  # fmt: skip
MAIL_LEASE = dt.timedelta(minutes=5)
MAX_RETRY = dt.timedelta(hours=1)
MAIL_SESSIONS = 8


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class InviteFileError(Exception):
    """The invitation file cannot be used; the message names the lines (never an INS)."""


@dataclass(frozen=True)
class InviteFile:
    invitees: list[Invitee]
    not_qualified: int


def patient_domain(config: Config) -> str | None:
    return patient_domain_of(config.server.domains)


def parse_invite_file(data: str, config: Config) -> InviteFile:
    """Check every line of an invitation file (see the module docstring)."""
    domain = patient_domain(config)
    if domain is None:
        raise InviteFileError("no patient.<domain> among [server] domains")
    reader = csv.reader(io.StringIO(data.lstrip("\ufeff")))
    try:
        header = tuple(h.strip().lower() for h in next(reader))
    except StopIteration:
        raise InviteFileError("the file is empty") from None
    except csv.Error as exc:
        raise InviteFileError(f"line 1: {exc}") from None
    if header != HEADER:
        raise InviteFileError("the header must be: " + ",".join(HEADER))
    invitees: list[Invitee] = []
    errors: list[str] = []
    seen: set[str] = set()
    not_qualified = 0
    try:
        for number, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(HEADER):
                errors.append(f"line {number}: {len(row)} fields, {len(HEADER)} expected")
                continue
            f = dict(zip(HEADER, (c.strip() for c in row), strict=True))
            try:
                ins = Ins.parse(f["ins"], f["oid"], test_mode=config.server.test_mode)
                status = IdentityStatus(f["status"].upper())
                traits = Traits(f["birth_name"].upper(), tuple(f["given_names"].split()),
                                dt.date.fromisoformat(f["birth_date"]), f["sex"].upper(),
                                f["birthplace"])  # fmt: skip
                email = normalize_address(f["email"])
            except (InsError, AccountError, ValueError) as exc:
                # InsError's messages name no identifier; a bad address is the patient's own.
                reason = str(exc) if isinstance(exc, InsError) else _reason(exc)
                errors.append(f"line {number}: {reason}")
                continue
            if ins.matricule in seen:
                errors.append(f"line {number}: this INS is already on an earlier line")
                continue
            seen.add(ins.matricule)
            if status is not IdentityStatus.QUAL:
                not_qualified += 1
                continue
            invitees.append(Invitee(ins.matricule, f"{ins.matricule.lower()}@{domain}", email,
                                    (ins, traits, status)))  # fmt: skip
    except csv.Error as exc:
        errors.append(f"line {reader.line_num}: {exc}")
    if errors:
        more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
        raise InviteFileError("; ".join(errors[:10]) + more)
    return InviteFile(invitees, not_qualified)


def _reason(exc: Exception) -> str:
    if isinstance(exc, AccountError):
        return "not a valid e-mail address"
    text = str(exc)
    if "isoformat" in text or "date" in text.lower():
        return "birth_date must be YYYY-MM-DD"
    if "IdentityStatus" in text:
        return "status must be PROV, RECUP, VALI or QUAL"
    return "invalid value"


def register_patients(conn: Connection, invitees: list[Invitee]) -> None:
    """The directory rows of newly invited patients (those not registered yet)."""
    known = set(conn.execute(
        select(PATIENTS.c.ins).where(PATIENTS.c.ins.in_([i.ins for i in invitees]))
    ).scalars())  # fmt: skip
    rows = []
    now = utc_now()
    for inv in invitees:
        if inv.ins in known or not isinstance(inv.extra, tuple):
            continue
        ins, traits, status = inv.extra
        rows.append({
            "ins": ins.matricule, "oid": ins.oid, "birth_family": traits.birth_family,
            "given_names": " ".join(traits.given_names), "first_given": traits.given_names[0],
            "birth_date": traits.birth_date, "sex": traits.sex, "birthplace": traits.birthplace,
            "status": status.value, "medecin_traitant_idnat": "", "updated_at": now,
        })  # fmt: skip
    if rows:
        conn.execute(insert(PATIENTS), rows)


def registered_refusals(
    conn: Connection, matricules: Sequence[str], *, test_mode: bool
) -> set[str]:
    """The matricules already registered here whose identity may not have a mailbox: the
    directory's status, not the file's, decides for them."""
    refused: set[str] = set()
    for start in range(0, len(matricules), 500):
        chunk = list(matricules[start : start + 500])
        registered = list(
            conn.execute(select(PATIENTS.c.ins).where(PATIENTS.c.ins.in_(chunk))).scalars()
        )
        verdicts = refusals(conn, registered, test_mode=test_mode)
        refused |= {m for m, why in verdicts.items() if why is not None}
    return refused


async def invite(
    store: SpaceStore, config: Config, data: str, now: dt.datetime,
    period_days: int | None = None,
) -> tuple[InviteResult, int]:  # fmt: skip
    """Parse and apply an invitation file: (result, identities not qualified). A patient
    registered here already is invited only if the mailbox rule allows their registered
    identity (``directory.patients``); the opening checks it again."""
    parsed = parse_invite_file(data, config)
    days = config.spaces.refusal_days if period_days is None else period_days
    period = dt.timedelta(days=days)
    test_mode = config.server.test_mode
    matricules = [i.ins for i in parsed.invitees]
    refused: set[str] = await store.db.writer.run(
        lambda conn: registered_refusals(conn, matricules, test_mode=test_mode)
    )
    invitees = [i for i in parsed.invitees if i.ins not in refused]
    result = await store.invite(invitees, now, period, register=register_patients)
    return result, parsed.not_qualified + len(refused)


@dataclass
class JobReport:
    opened: int = 0
    purged: int = 0
    sent: int = 0
    failed: int = 0


class SpaceJobs:
    """The durable jobs of patient spaces, run every ``[spaces] job_seconds`` by ``serve``."""

    def __init__(
        self, config: Config, store: SpaceStore, smarthost: Smarthost | None,
        clock: Clock = utc_now,
    ) -> None:  # fmt: skip
        self.config = config
        self.store = store
        self.smarthost = smarthost
        self.clock = clock
        self.sessions = PatientSessions(store.db)
        self._tasks: set[asyncio.Task[None]] = set()

    def _refusals(self, conn: Connection, matricules: list[str]) -> Mapping[str, str | None]:
        """The rule of patient mailboxes, for the spaces due to open."""
        return refusals(conn, matricules, test_mode=self.config.server.test_mode)

    async def run(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception as exc:  # one bad round must not stop the next
                log.error("space_jobs_failed", error=type(exc).__name__)
            await asyncio.sleep(self.config.spaces.job_seconds)

    async def run_once(self) -> JobReport:
        report = JobReport()
        if self.smarthost is not None and self.smarthost.configured:
            await self._send_mail(report)
        while opened := await self.store.open_due(self.clock(), refusals=self._refusals):
            report.opened += len(opened)
        report.purged = await self.store.purge_due(self.clock())
        # Sessions past their end (tokens' rows outlive them by the JWT leeway allowed).
        leeway = dt.timedelta(seconds=self.config.oauth.leeway_seconds)
        await self.sessions.purge_expired(self.clock() - leeway)
        if report.opened or report.purged or report.sent or report.failed:
            log.info("space_jobs", opened=report.opened, purged=report.purged,
                     sent=report.sent, failed=report.failed)  # fmt: skip
        return report

    async def _send_mail(self, report: JobReport) -> None:
        assert self.smarthost is not None
        interval = dt.timedelta(seconds=self.config.notify.interval_seconds)
        while jobs := await self.store.claim_mail(self.clock(), MAIL_LEASE, interval):
            # A few SMTP sessions at a time; their bookkeeping shares the writer's commits.
            slots = asyncio.Semaphore(MAIL_SESSIONS)
            outcomes = await asyncio.gather(*(self._send_one(job, slots) for job in jobs))
            report.sent += sum(outcomes)
            report.failed += len(outcomes) - sum(outcomes)
            if not all(outcomes):
                return  # the smarthost is failing: the rest waits for the next round

    async def _send_one(self, job: MailJob, slots: asyncio.Semaphore) -> bool:
        assert self.smarthost is not None
        async with slots:
            now = self.clock()
            try:
                await self.smarthost.send(build_mail(self.config, job, now))
            except NotifyError as exc:
                delay = min(
                    dt.timedelta(seconds=self.config.notify.retry_base_seconds)
                    * (2 ** min(job.attempts, 10)),
                    MAX_RETRY,
                )
                await self.store.mail_failed(job, now + delay)
                log.warning("notify_failed", kind=job.kind, space=job.space_id,
                            reason=exc.reason, attempts=job.attempts + 1)  # fmt: skip
                return False
            await self.store.mail_sent(job, now)
            return True

    # -- the delivery hook -------------------------------------------------------------------

    def delivered(self, recipients: Sequence[Recipient]) -> None:
        """After a local delivery: the patients among the recipients are owed a notification.

        Runs in a task of its own: the MSSanté delivery is already durable and its reply is
        not held up; a failure here is logged and costs only the notice."""
        self._schedule([r.account_id for r in recipients if is_patient_address(r.address)])

    def filed(self, account_id: int) -> None:
        """After a document was filed in a patient's dossier."""
        self._schedule([account_id])

    def _schedule(self, ids: list[int]) -> None:
        if not ids:
            return
        task = asyncio.get_running_loop().create_task(self._note(ids))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _note(self, account_ids: list[int]) -> None:
        try:
            await self.store.note_delivery(account_ids)
        except Exception as exc:
            log.warning("notify_note_failed", error=type(exc).__name__)

    async def drain(self) -> None:
        """Wait for the delivery notes in flight (at shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


async def open_store(db: Database, config: Config) -> SpaceStore:
    from storage.crypto import MasterKey

    return SpaceStore(db, MasterKey.load(config.path(config.storage.master_key_file)))


class PatientNotices(Step):
    """Once a message is in a patient's mailbox, the patient is owed a notification (sent by
    the jobs to their personal address, without content)."""

    name = "patient-notices"

    def __init__(self, jobs: SpaceJobs) -> None:
        self.jobs = jobs

    async def committed(
        self, message: Message, envelope: Envelope, inbox: Sequence[Recipient]
    ) -> None:
        self.jobs.delivered(inbox)
