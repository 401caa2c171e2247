"""Patients' consents to apps, and what each app did or tried (issue 10 items 4–5).

A consent is one row per (app, patient account): its scopes (a subset of the app's requested
scopes), when it was given, when it ends (required; at most :data:`MAX_CONSENT`), and when the
patient revoked it. Connecting again replaces the scopes and expiry and clears a revocation.

:meth:`Consents.permit` is the one decision every enforcement path asks: is this app, acting
now for this patient with this scope, allowed? It answers with a :class:`Refusal` (a reason
code and a sentence for the SMTP reply, the workflow's error or the HTTP 403) or ``None``.
Every answer about a patient is recorded in ``cat_access`` (the patient's "recent access");
refusals also go to the audit log.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.engine import Connection

from catalogue.models import CatalogueAccess, CatalogueConsent
from catalogue.registry import App, Catalogue, CatalogueError, utc
from catalogue.scopes import LABELS, SCOPES
from catalogue.status import REFERENCED, SUSPENDED, WITHDRAWN
from storage.audit import write_entry
from storage.db import Database

CONSENTS: Table = CatalogueConsent.__table__  # type: ignore[assignment]
ACCESS: Table = CatalogueAccess.__table__  # type: ignore[assignment]
MAX_CONSENT: Final = dt.timedelta(days=3 * 366)
RECENT: Final = 20  # access rows shown per app
KEEP_ACCESS: Final = 200  # access rows kept per (app, patient)

ALLOWED: Final = "allowed"
REFUSED: Final = "refused"
Clock = Callable[[], dt.datetime]
#: What is wrong with a certificate (upper-case hexadecimal serial) now: "revoked",
#: "expired", or None.
CertificateState = Callable[[str], str | None]


@dataclass(frozen=True)
class Refusal:
    reason: str  # a short code for logs, the audit log and cat_access
    text: str  # one sentence for the SMTP reply, the workflow's error or the HTTP body


NOT_REFERENCED = Refusal(
    "not-referenced", "This application is not referenced in the catalogue (no consent possible)"
)
APP_SUSPENDED = Refusal("suspended", "This application is suspended from the catalogue")
APP_WITHDRAWN = Refusal("withdrawn", "This application is withdrawn from the catalogue")
CERT_REVOKED = Refusal("certificate-revoked", "This application's certificate is revoked")
CERT_EXPIRED = Refusal("certificate-expired", "This application's certificate has expired")
NO_CONSENT = Refusal("no-consent", "The patient has not connected this application")
CONSENT_REVOKED = Refusal("consent-revoked", "The patient revoked this application's access")
CONSENT_EXPIRED = Refusal("consent-expired", "The patient's consent to this application expired")


def scope_missing(scope: str) -> Refusal:
    if scope not in LABELS:  # RCPT: any scope that travels by mail would do
        return Refusal("scope", "The patient's consent covers no message to them "
                       "(messages, dossier-write or agenda-write)")  # fmt: skip
    return Refusal("scope", f"The patient's consent does not cover {scope} ({LABELS[scope]})")


@dataclass(frozen=True)
class Access:
    scope: str
    outcome: str
    reason: str
    at: dt.datetime


@dataclass(frozen=True)
class Connected:
    app: App
    scopes: tuple[str, ...]
    granted_at: dt.datetime
    expires_at: dt.datetime
    revoked_at: dt.datetime | None
    recent: tuple[Access, ...]

    def state(self, now: dt.datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expires_at <= now else "active"

    def to_json(self, now: dt.datetime) -> dict[str, Any]:
        return {
            "app": self.app.public(),
            "scopes": list(self.scopes),
            "grantedAt": self.granted_at.isoformat(),
            "expiresAt": self.expires_at.isoformat(),
            "revokedAt": self.revoked_at.isoformat() if self.revoked_at else None,
            "state": self.state(now),
            "recentAccess": [
                {"scope": a.scope, "outcome": a.outcome, "reason": a.reason,
                 "at": a.at.isoformat()}
                for a in self.recent
            ],
        }  # fmt: skip


class Consents:
    def __init__(
        self,
        db: Database,
        catalogue: Catalogue,
        *,
        certificate: CertificateState = lambda _serial: None,
        clock: Clock | None = None,
    ) -> None:
        self.db = db
        self.catalogue = catalogue
        self.certificate = certificate
        self.clock = clock or catalogue.clock

    # -- the patient's side (item 4) ---------------------------------------------------------

    async def connect(
        self,
        ident: str | int,
        account_id: int,
        scopes: list[str],
        expires_at: dt.datetime,
        *,
        peer: str | None = None,
    ) -> Connected:
        app = await self.catalogue.get(ident)
        if app.status != REFERENCED:
            raise CatalogueError("only a referenced app can be connected")
        unknown = [s for s in scopes if s not in SCOPES]
        if unknown:
            raise CatalogueError(f"unknown scope(s): {', '.join(s[:30] for s in unknown[:4])}")
        if not scopes:
            raise CatalogueError("choose at least one scope")
        beyond = [s for s in scopes if s not in app.scopes]
        if beyond:
            raise CatalogueError(f"the app did not ask for: {', '.join(beyond)}")
        now = self.clock()
        expires_at = utc(expires_at)
        if expires_at <= now:
            raise CatalogueError("the expiry must be in the future")
        if expires_at > now + MAX_CONSENT:
            raise CatalogueError("a consent lasts at most 3 years")
        chosen = " ".join(s for s in SCOPES if s in scopes)

        def write(conn: Connection) -> None:
            held = conn.execute(
                select(CONSENTS.c.id).where(
                    CONSENTS.c.app_id == app.id, CONSENTS.c.account_id == account_id
                )
            ).first()
            values = {"scopes": chosen, "granted_at": now, "expires_at": expires_at,
                      "revoked_at": None}  # fmt: skip
            if held is None:
                conn.execute(insert(CONSENTS).values(app_id=app.id, account_id=account_id,
                                                     **values))  # fmt: skip
            else:
                conn.execute(update(CONSENTS).where(CONSENTS.c.id == held.id).values(**values))
            write_entry(
                conn, f"account:{account_id}", "catalogue.connect", f"app:{app.id}", peer=peer,
                detail={"scopes": chosen.split(), "expires": expires_at.isoformat()},
            )  # fmt: skip

        await self.db.writer.run(write)
        found = await self.connection(app.id, account_id)
        assert found is not None
        return found

    async def revoke(self, ident: str | int, account_id: int, *, peer: str | None = None) -> bool:
        app = await self.catalogue.get(ident)
        now = self.clock()

        def write(conn: Connection) -> bool:
            done = conn.execute(
                update(CONSENTS)
                .where(
                    CONSENTS.c.app_id == app.id,
                    CONSENTS.c.account_id == account_id,
                    CONSENTS.c.revoked_at.is_(None),
                )
                .values(revoked_at=now)
            )
            if done.rowcount:
                write_entry(conn, f"account:{account_id}", "catalogue.revoke", f"app:{app.id}",
                            peer=peer)  # fmt: skip
            return bool(done.rowcount)

        result: bool = await self.db.writer.run(write)
        return result

    async def connection(self, app_id: int, account_id: int) -> Connected | None:
        found = [c for c in await self.connections(account_id) if c.app.id == app_id]
        return found[0] if found else None

    async def connections(self, account_id: int) -> list[Connected]:
        async with self.db.read() as session:
            rows = (
                await session.execute(
                    select(CONSENTS).where(CONSENTS.c.account_id == account_id)
                    .order_by(CONSENTS.c.granted_at.desc())
                )
            ).all()  # fmt: skip
            access = (
                await session.execute(
                    select(ACCESS).where(ACCESS.c.account_id == account_id)
                    .order_by(ACCESS.c.id.desc()).limit(RECENT * max(len(rows), 1))
                )
            ).all()  # fmt: skip
        result = []
        for row in rows:
            app = await self.catalogue.find(row.app_id)
            if app is None:
                continue
            recent = tuple(
                Access(a.scope, a.outcome, a.reason, utc(a.at))
                for a in access if a.app_id == row.app_id
            )[:RECENT]  # fmt: skip
            result.append(
                Connected(app, tuple(row.scopes.split()), utc(row.granted_at),
                            utc(row.expires_at),
                            utc(row.revoked_at) if row.revoked_at else None, recent)
            )  # fmt: skip
        return result

    # -- enforcement (item 5) ----------------------------------------------------------------

    def app_refusal(self, app: App) -> Refusal | None:
        """What stops this app whoever the patient is: its status, its certificate."""
        if app.status == SUSPENDED:
            return APP_SUSPENDED
        if app.status == WITHDRAWN:
            return APP_WITHDRAWN
        if app.status != REFERENCED:
            return NOT_REFERENCED
        problem = self.certificate(app.certificate)
        if problem is not None:
            return CERT_EXPIRED if problem == "expired" else CERT_REVOKED
        return None

    async def permit(
        self,
        app: App,
        account_id: int,
        scopes: frozenset[str],
        *,
        actor: str,
        peer: str | None = None,
        record_allowed: bool = True,
    ) -> Refusal | None:
        """Whether ``app`` may act for the patient ``account_id`` with one of ``scopes``
        now; records the answer (and audits a refusal)."""
        refusal = self.app_refusal(app)
        scope = next(iter(scopes)) if len(scopes) == 1 else "mail"  # RCPT: any mail scope
        if refusal is None:
            async with self.db.read() as session:
                row = (
                    await session.execute(
                        select(CONSENTS).where(
                            CONSENTS.c.app_id == app.id, CONSENTS.c.account_id == account_id
                        )
                    )
                ).first()
            if row is None:
                refusal = NO_CONSENT
            elif row.revoked_at is not None:
                refusal = CONSENT_REVOKED
            elif utc(row.expires_at) <= self.clock():
                refusal = CONSENT_EXPIRED
            elif not scopes & set(row.scopes.split()):
                refusal = scope_missing(scope)
        if refusal is None and not record_allowed:
            return None
        await self.record(app, account_id, scope, refusal, actor=actor, peer=peer)
        return refusal

    async def record(
        self, app: App, account_id: int, scope: str, refusal: Refusal | None, *, actor: str,
        peer: str | None = None,
    ) -> None:  # fmt: skip
        now = self.clock()

        def write(conn: Connection) -> None:
            conn.execute(
                insert(ACCESS).values(
                    app_id=app.id, account_id=account_id, scope=scope[:20],
                    outcome=REFUSED if refusal else ALLOWED,
                    reason=refusal.reason if refusal else "", at=now,
                )
            )  # fmt: skip
            old = conn.execute(
                select(ACCESS.c.id)
                .where(ACCESS.c.app_id == app.id, ACCESS.c.account_id == account_id)
                .order_by(ACCESS.c.id.desc())
                .offset(KEEP_ACCESS)
                .limit(1)
            ).first()
            if old is not None:
                conn.execute(
                    delete(ACCESS).where(
                        ACCESS.c.app_id == app.id, ACCESS.c.account_id == account_id,
                        ACCESS.c.id <= old.id,
                    )
                )  # fmt: skip
            if refusal is not None:
                write_entry(
                    conn, actor, "catalogue.refused", f"account:{account_id}", peer=peer,
                    detail={"app": app.id, "scope": scope, "reason": refusal.reason},
                )  # fmt: skip

        await self.db.writer.run(write)
