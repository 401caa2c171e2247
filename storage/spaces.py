"""Patient spaces opened by opt-out (issue 11): invitations, refusals, automatic opening,
closing and deletion, the personal-e-mail notifications' durable state, and the patients'
second factor (TOTP secrets, RFC 6238) and app passwords.

A space is one row of ``patient_spaces`` keyed by INS, in one of four states::

    pending --(refusal with the one-time code, before opens_at)--> refused   (kept, no mailbox)
    pending --(opens_at reached: the opening job)-------------------> open   (mailbox created)
    open    --(the patient or the operator closes it)---------------> closed (mailbox disabled)
    closed  --(purge_at reached: the purge job)---------------------> closed, purged_at set
                                                                      (mailbox and data deleted)

Every transition is one ``UPDATE … WHERE state = <from>`` in one transaction with its side
effects (the mailbox created, or deleted), taken with ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL: a job that runs twice, or on two nodes, or again after a crash, changes each row
once. Times come from the caller (an injectable clock).

The invitation code is stored as a SHA-256 digest (what the refusal page checks) and, until
the invitation is handed to the smarthost, in clear in ``invite_code`` (the mail must carry
it); it is wiped the moment the invitation is sent. Personal e-mail addresses are kept in
clear: they route the notifications and carry no health information.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, mapped_column

from storage import transactions as tx
from storage.accounts import DEFAULT_FOLDERS, key_context
from storage.audit import write_entry
from storage.crypto import MailboxKeyPair, MasterKey
from storage.db import Database
from storage.models import Base
from storage.patient_sessions import end_all_sessions

_ID = BigInteger().with_variant(Integer, "sqlite")

PENDING, OPEN, REFUSED, CLOSED = "pending", "open", "refused", "closed"
STATES = (PENDING, OPEN, REFUSED, CLOSED)
#: The rule of patient mailboxes, read in a transaction: for each matricule, why it may not
#: have a mailbox, or None (``directory.patients.refusals``; storage imports no directory).
MailboxRule = Callable[[Connection, list[str]], Mapping[str, str | None]]
#: How long a due space whose identity may not have a mailbox waits before the next look.
OPENING_DEFERRAL = dt.timedelta(days=1)
INVITATION, NOTIFICATION = "invitation", "notification"
#: Unambiguous letters and digits for codes a person types (no 0/O, 1/I/L).
_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"


class PatientSpace(Base):
    __tablename__ = "patient_spaces"
    __table_args__ = (
        Index("ix_patient_spaces_state_opens", "state", "opens_at"),
        Index("ix_patient_spaces_account", "account_id"),
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    ins: Mapped[str] = mapped_column(String(15), unique=True)
    address: Mapped[str] = mapped_column(String(320))  # <INS>@patient.<domain>
    email: Mapped[str] = mapped_column(String(320))  # the personal e-mail address
    state: Mapped[str] = mapped_column(String(10))
    code_digest: Mapped[str | None] = mapped_column(String(64), unique=True)
    invite_code: Mapped[str | None] = mapped_column(String(40))  # until the invitation is sent
    invited_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    opens_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    purge_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    purged_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL")
    )
    invite_sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    notify_pending: Mapped[bool] = mapped_column(Boolean, default=False)
    notified_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    mail_attempts: Mapped[int] = mapped_column(Integer, default=0)
    mail_retry_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    claimed_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class PatientTotp(Base):
    """A patient's TOTP secret (wrapped by the master key) and the last time step used."""

    __tablename__ = "patient_totp"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    wrapped_secret: Mapped[bytes] = mapped_column(LargeBinary)
    confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    last_step: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class AppPassword(Base):
    __tablename__ = "app_passwords"
    __table_args__ = (Index("ix_app_passwords_account", "account_id"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


SPACES: Table = PatientSpace.__table__  # type: ignore[assignment]
TOTP: Table = PatientTotp.__table__  # type: ignore[assignment]
APP_PASSWORDS: Table = AppPassword.__table__  # type: ignore[assignment]


class SpaceError(Exception):
    """Bad input for a space operation; the message is fit for the user."""


def new_code(length: int = 10) -> str:
    return "".join(secrets.choice(_CODE_ALPHABET) for _ in range(length))


def normalize_code(code: str) -> str:
    return "".join(c for c in code.upper() if c.isalnum())


def code_digest(code: str) -> str:
    return hashlib.sha256(b"hygie-space-code:" + normalize_code(code).encode()).hexdigest()


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class Invitee:
    ins: str  # checked matricule
    address: str  # <INS>@patient.<domain>
    email: str
    #: Whatever the caller's ``register`` hook needs (the identity traits).
    extra: object = None


@dataclass(frozen=True)
class InviteResult:
    created: int
    already_known: int  # a space (of any state, a refusal included) exists for this INS


@dataclass(frozen=True)
class SpaceInfo:
    id: int
    ins: str
    address: str
    email: str
    state: str
    opens_at: dt.datetime
    account_id: int | None
    purge_at: dt.datetime | None


@dataclass(frozen=True)
class MailJob:
    """One mail to send to a patient's personal address."""

    space_id: int
    kind: str  # INVITATION or NOTIFICATION
    email: str
    code: str | None  # the invitation's one-time code
    opens_at: dt.datetime
    attempts: int


def _info(r: object) -> SpaceInfo:
    row = r  # a Row of SPACES
    return SpaceInfo(
        row.id, row.ins, row.address, row.email, row.state,  # type: ignore[attr-defined]
        _utc(row.opens_at), row.account_id, _utc(row.purge_at),  # type: ignore[attr-defined, arg-type]
    )  # fmt: skip


class SpaceStore:
    def __init__(self, db: Database, master: MasterKey) -> None:
        self.db = db
        self.master = master

    # -- invitations ---------------------------------------------------------------------

    async def invite(
        self, invitees: Sequence[Invitee], now: dt.datetime, period: dt.timedelta,
        register: Callable[[Connection, list[Invitee]], None] | None = None, batch: int = 500,
    ) -> InviteResult:  # fmt: skip
        """A pending space and a queued invitation for each invitee without a space yet;
        ``register`` runs in the same transaction for the new ones (the directory rows)."""
        created = known = 0
        for start in range(0, len(invitees), batch):
            chunk = invitees[start : start + batch]

            def write(conn: Connection, chunk: Sequence[Invitee] = chunk) -> tuple[int, int]:
                existing = set(
                    conn.execute(
                        select(SPACES.c.ins).where(SPACES.c.ins.in_([i.ins for i in chunk]))
                    ).scalars()
                )
                rows = []
                new: list[Invitee] = []
                for inv in chunk:
                    if inv.ins in existing:
                        continue
                    existing.add(inv.ins)
                    new.append(inv)
                    code = new_code()
                    rows.append({
                        "ins": inv.ins, "address": inv.address, "email": inv.email,
                        "state": PENDING, "code_digest": code_digest(code), "invite_code": code,
                        "invited_at": now, "opens_at": now + period, "notify_pending": False,
                        "mail_attempts": 0,
                    })  # fmt: skip
                if rows:
                    conn.execute(insert(SPACES), rows)
                    if register is not None:
                        register(conn, new)
                    write_entry(conn, "operator", "space.invite", "batch",
                                detail={"count": len(rows)})  # fmt: skip
                return len(rows), len(chunk) - len(rows)

            c, k = await self.db.writer.run(write)
            created += c
            known += k
        return InviteResult(created, known)

    async def refuse(
        self, code: str, now: dt.datetime, peer: str | None = None
    ) -> SpaceInfo | None:
        """Refuse the pending space this one-time code belongs to; None when the code is
        unknown, already used, or the period is over. The refusal is kept; no mailbox is ever
        created for it."""
        digest = code_digest(code)

        def write(conn: Connection) -> SpaceInfo | None:
            row = conn.execute(
                select(SPACES).where(SPACES.c.code_digest == digest).with_for_update()
            ).first()
            if row is None or row.state != PENDING or _utc(row.opens_at) <= now:  # type: ignore[operator]
                return None
            conn.execute(
                update(SPACES).where(SPACES.c.id == row.id, SPACES.c.state == PENDING)
                .values(state=REFUSED, decided_at=now, code_digest=None, invite_code=None)
            )  # fmt: skip
            write_entry(conn, "patient", "space.refuse", f"space:{row.id}", peer=peer)
            return _info(row)

        result: SpaceInfo | None = await self.db.writer.run(write)
        return result

    async def activate(
        self, code: str, password_hash: str, now: dt.datetime, peer: str | None = None
    ) -> SpaceInfo | None:
        """Set the first password of an open space with its invitation code (used up then);
        None when the code is unknown, used, or the space is not open."""
        digest = code_digest(code)

        def write(conn: Connection) -> SpaceInfo | None:
            row = conn.execute(
                select(SPACES).where(SPACES.c.code_digest == digest).with_for_update()
            ).first()
            if row is None or row.state != OPEN or row.account_id is None:
                return None
            conn.execute(update(SPACES).where(SPACES.c.id == row.id).values(code_digest=None))
            conn.execute(update(tx.ACCOUNTS).where(tx.ACCOUNTS.c.id == row.account_id)
                         .values(password_hash=password_hash))  # fmt: skip
            end_all_sessions(conn, row.account_id, actor="patient", reason="password", peer=peer)
            write_entry(conn, "patient", "space.activate", f"space:{row.id}", peer=peer)
            return _info(row)

        result: SpaceInfo | None = await self.db.writer.run(write)
        if result is not None and result.account_id is not None:
            # A new password: nothing old is remembered, in any process.
            self.db.notices.invalidate("credentials", result.account_id)
        return result

    async def activation_due(self, code: str) -> bool:
        """Whether this code would activate an open space now (a read: the caller hashes the
        new password, 64 MiB and a tenth of a second of argon2id, only then)."""
        async with self.db.read() as session:
            row = (await session.execute(
                select(SPACES.c.id).where(SPACES.c.code_digest == code_digest(code),
                                          SPACES.c.state == OPEN,
                                          SPACES.c.account_id.is_not(None))
            )).first()  # fmt: skip
        return row is not None

    # -- the opening and purge jobs --------------------------------------------------------

    async def open_due(
        self, now: dt.datetime, *, refusals: MailboxRule, limit: int = 200,
        defer: dt.timedelta = OPENING_DEFERRAL,
    ) -> list[SpaceInfo]:  # fmt: skip
        """Open the pending spaces whose period ended: mailbox created and state ``open`` in
        one transaction (an account that already exists at the address is taken over).

        ``refusals`` is the rule of patient mailboxes (``directory.patients.refusals``),
        read in the same transaction: a space whose identity is no longer allowed one (no
        longer QUAL, say) stays pending and is looked at again after ``defer``."""

        def write(conn: Connection) -> list[SpaceInfo]:
            rows = conn.execute(
                select(SPACES)
                .where(SPACES.c.state == PENDING, SPACES.c.opens_at <= now)
                .order_by(SPACES.c.opens_at, SPACES.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            if not rows:
                return []
            refused = refusals(conn, [r.ins for r in rows])
            held = [r for r in rows if refused.get(str(r.ins).upper(), "unknown") is not None]
            if held:
                conn.execute(
                    update(SPACES).where(SPACES.c.id.in_([r.id for r in held]))
                    .values(opens_at=now + defer)
                )  # fmt: skip
                write_entry(conn, "system", "space.open.deferred", "batch",
                            detail={"spaces": [r.id for r in held]})  # fmt: skip
                rows = [r for r in rows if r not in held]
                if not rows:
                    return []
            existing = dict(conn.execute(
                select(tx.ACCOUNTS.c.address, tx.ACCOUNTS.c.id)
                .where(tx.ACCOUNTS.c.address.in_([r.address for r in rows]))
            ).all())  # fmt: skip
            if existing:  # an account made earlier (hygie patient add): take it over
                conn.execute(update(tx.ACCOUNTS).where(tx.ACCOUNTS.c.id.in_(existing.values()))
                             .values(disabled=False))  # fmt: skip
            fresh = [r for r in rows if r.address not in existing]
            ids = _insert_accounts(conn, self.master, [r.address for r in fresh])
            existing.update(zip((r.address for r in fresh), ids, strict=True))
            conn.execute(
                update(SPACES).where(SPACES.c.id == bindparam("b_id"), SPACES.c.state == PENDING)
                .values(state=OPEN, decided_at=now, account_id=bindparam("b_account")),
                [{"b_id": r.id, "b_account": existing[r.address]} for r in rows],
            )  # fmt: skip
            write_entry(conn, "system", "space.open", "batch",
                        detail={"spaces": [r.id for r in rows]})  # fmt: skip
            opened = [_info(r) for r in rows]
            return opened

        result: list[SpaceInfo] = await self.db.writer.run(write)
        return result

    async def close(
        self, ins: str, now: dt.datetime, retention: dt.timedelta, *, actor: str = "patient",
        peer: str | None = None,
    ) -> SpaceInfo | None:  # fmt: skip
        """Close an open space: its mailbox is disabled now and deleted at ``purge_at``."""

        def write(conn: Connection) -> SpaceInfo | None:
            row = conn.execute(
                select(SPACES).where(SPACES.c.ins == ins).with_for_update()
            ).first()
            if row is None or row.state != OPEN:
                return None
            conn.execute(
                update(SPACES).where(SPACES.c.id == row.id, SPACES.c.state == OPEN)
                .values(state=CLOSED, closed_at=now, purge_at=now + retention,
                        notify_pending=False)
            )  # fmt: skip
            if row.account_id is not None:
                conn.execute(update(tx.ACCOUNTS).where(tx.ACCOUNTS.c.id == row.account_id)
                             .values(disabled=True))  # fmt: skip
                end_all_sessions(conn, row.account_id, actor=actor, reason="closed", peer=peer)
            write_entry(conn, actor, "space.close", f"space:{row.id}", peer=peer,
                        detail={"purge_at": (now + retention).isoformat()})  # fmt: skip
            return _info(row)

        result: SpaceInfo | None = await self.db.writer.run(write)
        if result is not None and result.account_id is not None:
            self.db.notices.invalidate("credentials", result.account_id)  # disabled
        return result

    async def purge_due(self, now: dt.datetime, limit: int = 100) -> int:
        """Delete the mailboxes (messages, dossier, agenda, second factor: every row that
        cascades from the account) of closed spaces whose retention period ended. The shared
        ciphertext blobs are then unreadable: their content keys were sealed to the deleted
        mailbox key."""

        def write(conn: Connection) -> list[int | None]:
            rows = conn.execute(
                select(SPACES.c.id, SPACES.c.account_id)
                .where(SPACES.c.state == CLOSED, SPACES.c.purged_at.is_(None),
                       SPACES.c.purge_at <= now)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()  # fmt: skip
            for row in rows:
                conn.execute(update(SPACES).where(SPACES.c.id == row.id)
                             .values(purged_at=now, account_id=None))  # fmt: skip
                if row.account_id is not None:
                    conn.execute(delete(tx.ACCOUNTS).where(tx.ACCOUNTS.c.id == row.account_id))
                write_entry(conn, "system", "space.purge", f"space:{row.id}")
            return [row.account_id for row in rows]

        purged: list[int | None] = await self.db.writer.run(write)
        for account_id in purged:
            if account_id is not None:
                self.db.notices.invalidate("credentials", account_id)  # deleted
        return len(purged)

    # -- reads -----------------------------------------------------------------------------

    async def counts(self) -> dict[str, int]:
        async with self.db.read() as session:
            rows = (await session.execute(
                select(SPACES.c.state, func.count()).group_by(SPACES.c.state)
            )).all()  # fmt: skip
        found = {str(state): int(n) for state, n in rows}
        return {state: found.get(state, 0) for state in STATES}

    async def by_ins(self, ins: str) -> SpaceInfo | None:
        async with self.db.read() as session:
            row = (await session.execute(select(SPACES).where(SPACES.c.ins == ins))).first()
        return _info(row) if row is not None else None

    async def by_account(self, account_id: int) -> SpaceInfo | None:
        async with self.db.read() as session:
            row = (await session.execute(
                select(SPACES).where(SPACES.c.account_id == account_id)
            )).first()  # fmt: skip
        return _info(row) if row is not None else None

    # -- the personal-e-mail outbox --------------------------------------------------------

    async def note_delivery(self, account_ids: Sequence[int]) -> int:
        """Something arrived for these mailboxes: a notification is owed (coalesced)."""
        if not account_ids:
            return 0

        def write(conn: Connection) -> int:
            done = conn.execute(
                update(SPACES)
                .where(SPACES.c.account_id.in_(list(account_ids)), SPACES.c.state == OPEN,
                       SPACES.c.notify_pending.is_(False))
                .values(notify_pending=True)
            )  # fmt: skip
            return int(done.rowcount or 0)

        result: int = await self.db.writer.run(write)
        return result

    async def claim_mail(
        self, now: dt.datetime, lease: dt.timedelta, interval: dt.timedelta, limit: int = 50
    ) -> list[MailJob]:
        """Mails due now, leased until ``now + lease``: invitations not yet sent, and
        notifications owed whose last one is at least ``interval`` old. A notification's
        pending flag is cleared when claimed (a delivery meanwhile sets it again, to wait
        for the next interval); :meth:`mail_failed` restores it."""

        def write(conn: Connection) -> list[MailJob]:
            due = or_(
                # An invitation whose space opened meanwhile (a period of 0) still goes out:
                # its code activates the space.
                and_(SPACES.c.invite_code.is_not(None), SPACES.c.state.in_((PENDING, OPEN))),
                and_(
                    SPACES.c.notify_pending.is_(True), SPACES.c.state == OPEN,
                    or_(SPACES.c.notified_at.is_(None), SPACES.c.notified_at <= now - interval),
                ),
            )  # fmt: skip
            rows = conn.execute(
                select(SPACES)
                .where(
                    due,
                    or_(SPACES.c.mail_retry_at.is_(None), SPACES.c.mail_retry_at <= now),
                    or_(SPACES.c.claimed_until.is_(None), SPACES.c.claimed_until <= now),
                )
                .order_by(SPACES.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            jobs = []
            for row in rows:
                if row.invite_code is not None:
                    kind, values = INVITATION, {}
                else:
                    kind, values = NOTIFICATION, {"notify_pending": False, "notified_at": now}
                conn.execute(update(SPACES).where(SPACES.c.id == row.id)
                             .values(claimed_until=now + lease, **values))  # fmt: skip
                jobs.append(MailJob(row.id, kind, row.email, row.invite_code,
                                    _utc(row.opens_at), row.mail_attempts))  # type: ignore[arg-type]  # fmt: skip
            return jobs

        result: list[MailJob] = await self.db.writer.run(write)
        return result

    async def mail_sent(self, job: MailJob, now: dt.datetime) -> None:
        values: dict[str, object] = {"claimed_until": None, "mail_attempts": 0,
                                     "mail_retry_at": None}  # fmt: skip
        if job.kind == INVITATION:
            values.update(invite_code=None, invite_sent_at=now)

        def write(conn: Connection) -> None:
            conn.execute(update(SPACES).where(SPACES.c.id == job.space_id).values(**values))

        await self.db.writer.run(write)

    async def mail_failed(self, job: MailJob, retry_at: dt.datetime) -> None:
        values: dict[str, object] = {"claimed_until": None, "mail_retry_at": retry_at,
                                     "mail_attempts": job.attempts + 1}  # fmt: skip
        if job.kind == NOTIFICATION:
            values.update(notify_pending=True, notified_at=None)

        def write(conn: Connection) -> None:
            conn.execute(update(SPACES).where(SPACES.c.id == job.space_id).values(**values))

        await self.db.writer.run(write)

    # -- second factor ---------------------------------------------------------------------

    def _totp_context(self, account_id: int) -> bytes:
        return b"totp:%d" % account_id

    async def totp_begin(self, account_id: int, secret: str, now: dt.datetime) -> None:
        """Store a new, unconfirmed TOTP secret (replacing an unconfirmed one)."""
        wrapped = self.master.wrap(secret.encode(), self._totp_context(account_id))

        def write(conn: Connection) -> None:
            row = conn.execute(select(TOTP.c.confirmed).where(TOTP.c.account_id == account_id)
                               .with_for_update()).first()  # fmt: skip
            if row is not None and row.confirmed:
                raise SpaceError("two-factor sign-in is already enrolled")
            conn.execute(delete(TOTP).where(TOTP.c.account_id == account_id))
            conn.execute(
                insert(TOTP).values(account_id=account_id, wrapped_secret=wrapped,
                                    confirmed=False, last_step=0, created_at=now)
            )  # fmt: skip

        await self.db.writer.run(write)

    async def totp_reset(self, account_id: int, *, actor: str = "operator") -> bool:
        """Remove the second factor; every session and token of the account ends with it
        (a lost phone may be in someone else's hands), in the same transaction."""

        def write(conn: Connection) -> bool:
            done = conn.execute(delete(TOTP).where(TOTP.c.account_id == account_id)).rowcount
            if done:
                end_all_sessions(conn, account_id, actor=actor, reason="second factor reset")
            return bool(done)

        result: bool = await self.db.writer.run(write)
        return result

    async def totp_secret(self, account_id: int) -> tuple[str, bool] | None:
        """(secret, confirmed), or None when the account has no TOTP secret."""
        async with self.db.read() as session:
            row = (await session.execute(
                select(TOTP.c.wrapped_secret, TOTP.c.confirmed)
                .where(TOTP.c.account_id == account_id)
            )).first()  # fmt: skip
        if row is None:
            return None
        secret = self.master.unwrap(row.wrapped_secret, self._totp_context(account_id))
        return secret.decode(), bool(row.confirmed)

    async def totp_use_step(self, account_id: int, step: int, *, confirm: bool = False) -> bool:
        """Record time step ``step`` as used; False if it (or a later one) was used already:
        a code is accepted once (RFC 6238 §5.2)."""

        def write(conn: Connection) -> bool:
            values: dict[str, object] = {"last_step": step}
            if confirm:
                values["confirmed"] = True
            done = conn.execute(
                update(TOTP).where(TOTP.c.account_id == account_id, TOTP.c.last_step < step)
                .values(**values)
            )  # fmt: skip
            return bool(done.rowcount)

        result: bool = await self.db.writer.run(write)
        return result

    async def totp_enrolled(self, account_id: int) -> bool:
        rows = await self.db.raw_rows(
            "SELECT confirmed FROM patient_totp WHERE account_id = ?", account_id
        )
        return bool(rows and rows[0][0])

    # -- app passwords ---------------------------------------------------------------------

    async def app_password_create(
        self, account_id: int, label: str, now: dt.datetime, *, peer: str | None = None
    ) -> tuple[int, str]:
        """A new app password (shown once) for the account: (id, password); audited in the
        same transaction (``espace.app_password.create``)."""
        label = " ".join(label.split())[:100]
        if not label:
            raise SpaceError("an app password needs a name")
        secret = "-".join(
            "".join(secrets.choice(_APP_ALPHABET) for _ in range(4)) for _ in range(5)
        )
        hashed = app_password_hash(secret)

        def write(conn: Connection) -> int:
            live = conn.execute(
                select(func.count()).select_from(APP_PASSWORDS)
                .where(APP_PASSWORDS.c.account_id == account_id,
                       APP_PASSWORDS.c.revoked_at.is_(None))
            ).scalar_one()  # fmt: skip
            if live >= MAX_APP_PASSWORDS:
                raise SpaceError(f"at most {MAX_APP_PASSWORDS} app passwords; revoke one first")
            new_id = int(conn.execute(
                insert(APP_PASSWORDS).values(account_id=account_id, label=label,
                                             password_hash=hashed, created_at=now)
                .returning(APP_PASSWORDS.c.id)
            ).scalar_one())  # fmt: skip
            write_entry(conn, f"account:{account_id}", "espace.app_password.create",
                        f"account:{account_id}", peer=peer, detail={"id": new_id})  # fmt: skip
            return new_id

        return await self.db.writer.run(write), secret

    async def app_passwords(self, account_id: int) -> list[tuple[int, str, dt.datetime]]:
        """The account's live app passwords: (id, label, created_at)."""
        async with self.db.read() as session:
            rows = (await session.execute(
                select(APP_PASSWORDS.c.id, APP_PASSWORDS.c.label, APP_PASSWORDS.c.created_at)
                .where(APP_PASSWORDS.c.account_id == account_id,
                       APP_PASSWORDS.c.revoked_at.is_(None))
                .order_by(APP_PASSWORDS.c.id)
            )).all()  # fmt: skip
        return [(int(r.id), str(r.label), _utc(r.created_at)) for r in rows]  # type: ignore[misc]

    async def app_password_revoke(
        self, account_id: int, ident: int, now: dt.datetime, *, peer: str | None = None
    ) -> bool:
        """Revoke one of the account's app passwords; audited in the same transaction."""

        def write(conn: Connection) -> bool:
            done = conn.execute(
                update(APP_PASSWORDS)
                .where(APP_PASSWORDS.c.id == ident, APP_PASSWORDS.c.account_id == account_id,
                       APP_PASSWORDS.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )  # fmt: skip
            if done.rowcount:
                write_entry(conn, f"account:{account_id}", "espace.app_password.revoke",
                            f"account:{account_id}", peer=peer, detail={"id": ident})  # fmt: skip
            return bool(done.rowcount)

        result: bool = await self.db.writer.run(write)
        return result

    async def app_password_hashes(self, account_id: int) -> list[tuple[int, str]]:
        rows = await self.db.raw_rows(
            "SELECT id, password_hash FROM app_passwords "
            "WHERE account_id = ? AND revoked_at IS NULL ORDER BY id",
            account_id,
        )
        return [(int(r[0]), str(r[1])) for r in rows]


MAX_APP_PASSWORDS = 20
#: 24 letters, 20 of them: 91 bits drawn by `secrets`. Such a secret cannot be guessed from
#: its hash, so a fast hash (SHA-256, as for API tokens) protects it as well as argon2id would,
#: without costing 64 MiB and 0.1 s of CPU per IMAP login of a mail program.
_APP_ALPHABET = "abcdefghijkmnpqrstuvwxyz"


def app_password_hash(secret: str) -> str:
    normalized = "".join(c for c in secret.lower() if c.isalpha())
    return "sha256$" + hashlib.sha256(b"hygie-app-password:" + normalized.encode()).hexdigest()


def check_app_password(stored: str, candidate: str) -> bool:
    return hmac.compare_digest(stored.encode(), app_password_hash(candidate).encode())


def _insert_accounts(conn: Connection, master: MasterKey, addresses: list[str]) -> list[int]:
    """Mailboxes without a password (the patient sets one), as ``create_account`` makes them,
    a batch at a time: one INSERT per account for its id, then the wrapped keys, folders and
    subscriptions of all of them in three statements."""
    if not addresses:
        return []
    accounts = tx.ACCOUNTS
    base = int(time.time()) & 0xFFFFFFFF
    last = base + len(DEFAULT_FOLDERS) - 1
    ids: list[int] = []
    keys: list[dict[str, object]] = []
    for address in addresses:
        pair = MailboxKeyPair.generate()
        account_id = int(conn.execute(
            insert(accounts).values(
                address=address, password_hash=None, public_key=pair.public,
                wrapped_private_key=b"", disabled=False, last_uidvalidity=last,
            ).returning(accounts.c.id)
        ).scalar_one())  # fmt: skip
        ids.append(account_id)
        keys.append({"b_id": account_id,
                     "b_key": pair.wrapped_private(master, key_context(account_id))})  # fmt: skip
    conn.execute(
        update(accounts).where(accounts.c.id == bindparam("b_id"))
        .values(wrapped_private_key=bindparam("b_key")), keys,
    )  # fmt: skip
    conn.execute(insert(tx.FOLDERS), [
        {"account_id": account_id, "name": name, "uidvalidity": base + i, "uidnext": 1,
         "highestmodseq": 1, "subscribed": False, "special_use": use}
        for account_id in ids for i, (name, use) in enumerate(DEFAULT_FOLDERS)
    ])  # fmt: skip
    conn.execute(insert(tx.SUBSCRIPTIONS), [
        {"account_id": account_id, "name": name}
        for account_id in ids for name, _ in DEFAULT_FOLDERS
    ])  # fmt: skip
    return ids
