"""Patients' sign-in sessions, kept in the database so that they can be ended at once, by any
process of any node (issue 17 finding 7).

One row per session, keyed by the SHA-256 digest of its secret (the database never holds a
live cookie or token). The kinds, in the order a patient meets them:

- ``verify``: the password was right but no second factor is enrolled; a one-time code was
  sent to the patient's personal address and this session waits for it (its digest and the
  attempts so far are in the row);
- ``enrol``: the patient proved they hold the invitation code or the e-mailed code, and may
  now enrol an authenticator app (``/espace/2fa``);
- ``page``: signed in with two factors (the ``/espace/compte`` pages);
- ``token``: a token from ``/espace/token`` (XOAUTH2/OAUTHBEARER, the JSON APIs): the JWT
  carries the secret as its ``sid`` claim and is accepted only while its row exists.

:func:`end_all_sessions` deletes every row of an account inside the caller's transaction: the
sign-out, a password change, a second-factor reset and closing the space call it, so each takes
effect on the next request everywhere. Expired rows are deleted by the spaces' jobs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Table, delete, insert, select
from sqlalchemy import update as sql_update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, mapped_column

from storage import transactions as tx
from storage.audit import write_entry
from storage.db import Database
from storage.models import AccountInfo, Base

VERIFY, ENROL, PAGE, TOKEN = "verify", "enrol", "page", "token"
KINDS = (VERIFY, ENROL, PAGE, TOKEN)


class PatientSession(Base):
    __tablename__ = "patient_sessions"
    __table_args__ = (
        Index("ix_patient_sessions_account", "account_id"),
        Index("ix_patient_sessions_expires", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the secret
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    code_digest: Mapped[str | None] = mapped_column(String(64))  # a ``verify`` session's code
    attempts: Mapped[int] = mapped_column(Integer, default=0)


SESSIONS: Table = PatientSession.__table__  # type: ignore[assignment]


def session_id(secret: str) -> str:
    return hashlib.sha256(b"hygie-patient-session:" + secret.encode()).hexdigest()


def _code_digest(code: str) -> str:
    normal = "".join(c for c in code.upper() if c.isalnum())
    return hashlib.sha256(b"hygie-enrol-code:" + normal.encode()).hexdigest()


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class Session:
    account: AccountInfo
    kind: str
    created_at: dt.datetime
    expires_at: dt.datetime


def end_all_sessions(
    conn: Connection, account_id: int, *, actor: str, reason: str, peer: str | None = None
) -> int:
    """Delete every session and token of the account, in the caller's transaction, audited
    (``espace.sessions.ended``) when there was any."""
    done = conn.execute(delete(SESSIONS).where(SESSIONS.c.account_id == account_id))
    count = int(done.rowcount or 0)
    if count:
        write_entry(conn, actor, "espace.sessions.ended", f"account:{account_id}", peer=peer,
                    detail={"reason": reason, "count": count})  # fmt: skip
    return count


class PatientSessions:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def start(
        self, account_id: int, kind: str, now: dt.datetime, ttl: dt.timedelta, *,
        code: str | None = None, replacing: Collection[str] = (),
    ) -> str:  # fmt: skip
        """A new session of ``kind``; its secret (for the cookie or the token's ``sid``).
        ``replacing``: kinds of this account's sessions that end in the same transaction
        (a ``verify`` session ends the one before it; enrolling ends the ``enrol`` one)."""
        if kind not in KINDS:
            raise ValueError(f"no session kind {kind!r}")
        secret = secrets.token_urlsafe(32)
        row = {
            "id": session_id(secret), "account_id": account_id, "kind": kind,
            "created_at": now, "expires_at": now + ttl, "attempts": 0,
            "code_digest": _code_digest(code) if code is not None else None,
        }  # fmt: skip

        def write(conn: Connection) -> None:
            if replacing:
                conn.execute(delete(SESSIONS).where(
                    SESSIONS.c.account_id == account_id, SESSIONS.c.kind.in_(list(replacing))
                ))  # fmt: skip
            conn.execute(insert(SESSIONS).values(**row))

        await self.db.writer.run(write)
        return secret

    async def find(
        self, secret: str, kinds: Collection[str], now: dt.datetime | None
    ) -> Session | None:
        """The live session with this secret, of one of ``kinds``, whose account is not
        disabled; ``now``: also not expired (None for tokens, whose JWT carries the expiry)."""
        if not secret or len(secret) > 200:
            return None
        query = (
            select(SESSIONS.c.kind, SESSIONS.c.created_at, SESSIONS.c.expires_at,
                   SESSIONS.c.code_digest,
                   tx.ACCOUNTS.c.id, tx.ACCOUNTS.c.address, tx.ACCOUNTS.c.password_hash,
                   tx.ACCOUNTS.c.disabled)
            .join(tx.ACCOUNTS, tx.ACCOUNTS.c.id == SESSIONS.c.account_id)
            .where(SESSIONS.c.id == session_id(secret))
        )  # fmt: skip
        async with self.db.read() as session:
            row = (await session.execute(query)).first()
        if row is None or row.kind not in kinds or row.disabled:
            return None
        if row.kind == VERIFY and row.code_digest is None:  # its code was spent
            return None
        expires = _utc(row.expires_at)
        if now is not None and expires <= now:
            return None
        account = AccountInfo(int(row.id), str(row.address), row.password_hash is not None,
                              bool(row.disabled))  # fmt: skip
        return Session(account, str(row.kind), _utc(row.created_at), expires)

    async def end(self, secret: str) -> None:
        def write(conn: Connection) -> None:
            conn.execute(delete(SESSIONS).where(SESSIONS.c.id == session_id(secret)))

        await self.db.writer.run(write)

    async def end_all(
        self, account_id: int, *, actor: str, reason: str, peer: str | None = None
    ) -> int:
        def write(conn: Connection) -> int:
            return end_all_sessions(conn, account_id, actor=actor, reason=reason, peer=peer)

        result: int = await self.db.writer.run(write)
        return result

    async def last_started(self, account_id: int, kind: str) -> dt.datetime | None:
        """When the account's newest session of ``kind`` started (to space e-mailed codes)."""
        async with self.db.read() as session:
            newest = (await session.execute(
                select(SESSIONS.c.created_at)
                .where(SESSIONS.c.account_id == account_id, SESSIONS.c.kind == kind)
                .order_by(SESSIONS.c.created_at.desc()).limit(1)
            )).scalar()  # fmt: skip
        return _utc(newest) if newest is not None else None

    async def check_code(
        self, secret: str, code: str, now: dt.datetime, max_attempts: int
    ) -> tuple[bool, int]:
        """Check the code of a live ``verify`` session: (right, attempts left). A wrong code
        counts; the last allowed wrong one spends the session (a new code must be asked for).
        A right one ends it: the caller starts the ``enrol`` session."""
        ident = session_id(secret)
        given = _code_digest(code)

        def write(conn: Connection) -> tuple[bool, int]:
            row = conn.execute(
                select(SESSIONS.c.code_digest, SESSIONS.c.attempts, SESSIONS.c.expires_at,
                       SESSIONS.c.kind)
                .where(SESSIONS.c.id == ident).with_for_update()
            ).first()  # fmt: skip
            if (row is None or row.kind != VERIFY or row.code_digest is None
                    or _utc(row.expires_at) <= now):  # fmt: skip
                return False, 0
            if hmac.compare_digest(row.code_digest, given):
                conn.execute(delete(SESSIONS).where(SESSIONS.c.id == ident))
                return True, 0
            attempts = int(row.attempts) + 1
            # Spent, the row stays until it expires: it still spaces the next code's mail.
            spent = {"code_digest": None} if attempts >= max_attempts else {}
            conn.execute(sql_update(SESSIONS).where(SESSIONS.c.id == ident)
                         .values(attempts=attempts, **spent))  # fmt: skip
            return False, max(max_attempts - attempts, 0)

        result: tuple[bool, int] = await self.db.writer.run(write)
        return result

    async def purge_expired(self, before: dt.datetime) -> int:
        def write(conn: Connection) -> int:
            done = conn.execute(delete(SESSIONS).where(SESSIONS.c.expires_at < before))
            return int(done.rowcount or 0)

        result: int = await self.db.writer.run(write)
        return result
