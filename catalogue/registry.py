"""Apps, versions, reviews and decisions (issue 10 items 1–3).

Status of an app (``cat_apps.status``), with the transitions :meth:`Catalogue.decide` allows::

    submitted ──review──▶ under_review ──decide──▶ referenced ──▶ suspended ──▶ withdrawn
        │                      │                      │   ▲            │
        └──────────────────────┴──decide──▶ refused   │   └─reinstate──┘
                                                      └──────────────▶ withdrawn

A manifest for an app already referenced (or suspended) opens a new *version* under review
while the live version keeps the app's status and access; deciding the new version
"referenced" makes it live, "refused" leaves the live one as it was. Every change is one
transaction with its ``cat_history`` row and its audit-log entry.
"""

from __future__ import annotations

import datetime as dt
import json
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID
from sqlalchemy import Table, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from catalogue.criteria import CRITERIA, FAIL, PASS, PENDING, VERDICTS
from catalogue.manifest import Manifest, from_document
from catalogue.models import (
    CatalogueApp,
    CatalogueHistory,
    CatalogueReview,
    CatalogueVersion,
)
from catalogue.status import (
    DECISIONS,
    PENDING_VERSION,
    REFERENCED,
    REFUSED,
    SUBMITTED,
    SUPERSEDED,
    SUSPENDED,
    UNDER_REVIEW,
    WITHDRAWN,
)
from directory.ins import is_patient_domain
from pki.errors import PkiError
from pki.registry import Registry
from storage.accounts import SUBJECT, AccountError, find_account, identities_of
from storage.audit import write_entry
from storage.db import Database, effect_result_type

APPS: Table = CatalogueApp.__table__  # type: ignore[assignment]
VERSIONS: Table = CatalogueVersion.__table__  # type: ignore[assignment]
REVIEWS: Table = CatalogueReview.__table__  # type: ignore[assignment]
HISTORY: Table = CatalogueHistory.__table__  # type: ignore[assignment]

Clock = Callable[[], dt.datetime]


class CatalogueError(Exception):
    """A refused catalogue operation; the message is fit for the operator or the editor."""

    expected = True  # a refusal raised inside a write transaction is not a storage failure


@effect_result_type
@dataclass(frozen=True)
class App:
    id: int
    key: str
    name: str
    editor_name: str
    editor_siret: str
    description: str
    categories: tuple[str, ...]
    service_url: str
    mailbox: str
    certificate: str
    scopes: tuple[str, ...]
    status: str
    live_version: int | None
    submitter: str
    updated_at: dt.datetime

    def public(self) -> dict[str, Any]:
        """What a patient sees of a referenced app."""
        return {
            "id": self.id, "appId": self.key, "name": self.name,
            "editor": {"name": self.editor_name, "siret": self.editor_siret},
            "description": self.description, "categories": list(self.categories),
            "serviceUrl": self.service_url, "scopes": list(self.scopes), "status": self.status,
        }  # fmt: skip


@dataclass(frozen=True)
class Version:
    id: int
    number: int
    label: str
    status: str
    submitter: str
    submitted_at: dt.datetime


@dataclass(frozen=True)
class Review:
    criterion: str
    evidence: str
    verdict: str
    note: str
    reviewer: str
    reviewed_at: dt.datetime | None


@dataclass(frozen=True)
class HistoryEntry:
    version: int | None
    status: str
    reason: str
    actor: str
    at: dt.datetime


@effect_result_type
@dataclass(frozen=True)
class Submitted:
    app: App
    version: int
    new_app: bool


@dataclass(frozen=True)
class Decided:
    app: App
    version: int | None
    decision: str


def utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _app(row: Any) -> App:
    return App(
        id=row.id, key=row.app_key, name=row.name, editor_name=row.editor_name,
        editor_siret=row.editor_siret, description=row.description,
        categories=tuple(json.loads(row.categories)), service_url=row.service_url,
        mailbox=row.mailbox, certificate=row.certificate_serial,
        scopes=tuple(row.scopes.split()), status=row.status, live_version=row.live_version,
        submitter=row.submitter, updated_at=utc(row.updated_at),
    )  # fmt: skip


def _organisation_unit(subject: str) -> str | None:
    """The ``OU`` of an RFC 4514 subject (ORG certificates: "3" + SIRET, "1" + FINESS)."""
    try:
        name = x509.Name.from_rfc4514_string(subject)
    except ValueError:
        return None
    units = name.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    return str(units[0].value) if units else None


class Catalogue:
    def __init__(
        self,
        db: Database,
        pki_dir: Path | None = None,
        *,
        local_domain: Callable[[str], bool] = lambda _domain: True,
        clock: Clock = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.db = db
        self.pki_dir = pki_dir
        self.local_domain = local_domain
        self.clock = clock

    # -- reads -------------------------------------------------------------------------------

    async def find(self, ident: str | int) -> App | None:
        """An app by its number or by its manifest id."""
        query = select(APPS)
        text = str(ident).strip()
        if text.isascii() and text.isdigit():  # not "²": int() refuses it
            if len(text) > 18:  # beyond a 64-bit row id: no such app (not a database error)
                return None
            query = query.where(APPS.c.id == int(text))
        else:
            query = query.where(APPS.c.app_key == text.lower())
        async with self.db.read() as session:
            row = (await session.execute(query)).first()
        return _app(row) if row is not None else None

    async def get(self, ident: str | int) -> App:
        found = await self.find(ident)
        if found is None:
            raise CatalogueError(f"no app {str(ident)[:100]!r} in the catalogue")
        return found

    async def by_mailbox(self, address: str) -> App | None:
        async with self.db.read() as session:
            row = (await session.execute(select(APPS).where(APPS.c.mailbox == address))).first()
        return _app(row) if row is not None else None

    async def apps(
        self, *, status: str | None = None, text: str = "", category: str = ""
    ) -> list[App]:
        query = select(APPS).order_by(APPS.c.id)
        if status is not None:
            query = query.where(APPS.c.status == status)
        async with self.db.read() as session:
            rows = (await session.execute(query)).all()
        found = [_app(r) for r in rows]
        if category:
            found = [a for a in found if category in a.categories]
        words = [w for w in _fold(text).split() if w]
        if words:
            found = [
                a for a in found
                if all(w in _fold(f"{a.name} {a.editor_name} {a.description} {a.key}")
                       for w in words)
            ]  # fmt: skip
        return found

    async def versions(self, app_id: int) -> list[Version]:
        query = select(VERSIONS).where(VERSIONS.c.app_id == app_id).order_by(VERSIONS.c.number)
        async with self.db.read() as session:
            rows = (await session.execute(query)).all()
        return [
            Version(r.id, r.number, r.label, r.status, r.submitter, utc(r.submitted_at))
            for r in rows
        ]

    async def reviews(self, version_id: int) -> list[Review]:
        query = select(REVIEWS).where(REVIEWS.c.version_id == version_id)
        async with self.db.read() as session:
            rows = {r.criterion: r for r in (await session.execute(query)).all()}
        return [
            Review(c, rows[c].evidence, rows[c].verdict, rows[c].note, rows[c].reviewer,
                   utc(rows[c].reviewed_at) if rows[c].reviewed_at else None)
            for c in CRITERIA if c in rows
        ]  # fmt: skip

    async def history(self, app_id: int) -> list[HistoryEntry]:
        query = select(HISTORY).where(HISTORY.c.app_id == app_id).order_by(HISTORY.c.id)
        async with self.db.read() as session:
            rows = (await session.execute(query)).all()
        return [HistoryEntry(r.version, r.status, r.reason, r.actor, utc(r.at)) for r in rows]

    # -- submission (item 2) -----------------------------------------------------------------

    async def check(self, manifest: Manifest, sender: str) -> list[str]:
        """What the operator's state says against this manifest from ``sender``."""
        problems: list[str] = []
        existing = await self.find(manifest.key)
        if existing is not None:
            if existing.status == WITHDRAWN:
                problems.append(f"/id: {manifest.key} was withdrawn; submit it under a new id")
            if existing.submitter != sender:
                problems.append(f"/id: {manifest.key} belongs to another editor mailbox")
            if existing.editor_siret != manifest.editor_siret:
                problems.append("/editor/siret: differs from the app's referenced editor")
        problems += await self._check_sender(sender, manifest.editor_siret)
        problems += await self._check_mailbox(manifest, existing)
        problems += await self._check_certificate(manifest)
        return problems

    async def _check_sender(self, sender: str, siret: str) -> list[str]:
        account = await find_account(self.db, sender)
        if account is None:
            return ["the manifest must come from an organisation mailbox of this operator"]
        units = {
            _organisation_unit(value)
            for kind, value in await identities_of(self.db, account.id)
            if kind == SUBJECT
        }
        if f"3{siret}" not in units:
            return [
                "the sending mailbox is not bound to an organisation certificate of SIRET "
                f"{siret} (hygie pki issue org --siret {siret} --mailbox ADDRESS)"
            ]
        return []

    async def _check_mailbox(self, manifest: Manifest, existing: App | None) -> list[str]:
        address = manifest.mailbox
        try:
            domain = address.rsplit("@", 1)[1]
        except IndexError:
            return ["/mailbox: not a mail address"]
        if not self.local_domain(domain) or is_patient_domain(domain):
            return ["/mailbox: the APP mailbox must be a mailbox of this operator"]
        try:
            account = await find_account(self.db, address)
        except AccountError:
            account = None
        if account is None or account.disabled:
            return [f"/mailbox: no mailbox {address} here (ask the operator to open it)"]
        holder = await self.by_mailbox(address)
        if holder is not None and (existing is None or holder.id != existing.id):
            return ["/mailbox: this mailbox already acts for another app"]
        return []

    async def _check_certificate(self, manifest: Manifest) -> list[str]:
        if self.pki_dir is None:
            return ["/certificate: this operator has no certificate authority"]
        try:
            record = Registry(self.pki_dir).find(manifest.certificate)
        except PkiError:
            record = None
        if record is None:
            return [f"/certificate: no certificate {manifest.certificate} issued here"]
        problems = []
        if record.profile != "ORG":
            problems.append("/certificate: must be an organisation (ORG) certificate")
        if record.status == "revoked":
            problems.append("/certificate: this certificate is revoked")
        if utc(record.not_after) <= self.clock():
            problems.append("/certificate: this certificate has expired")
        if _organisation_unit(record.subject) != f"3{manifest.editor_siret}":
            problems.append("/certificate: not issued to the editor's SIRET")
        account = await find_account(self.db, manifest.mailbox)
        if account is not None:
            bound = {v for k, v in await identities_of(self.db, account.id) if k == SUBJECT}
            if record.subject not in bound:
                problems.append("/certificate: not bound to the APP mailbox")
        return problems

    async def submit(self, manifest: Manifest, sender: str, actor: str) -> Submitted:
        """Record a checked manifest: a new app, or a new version of an existing one."""
        now = self.clock()

        def write(conn: Connection) -> Submitted:
            row = conn.execute(select(APPS).where(APPS.c.app_key == manifest.key)).first()
            fields = _fields(manifest)
            if row is None:
                app_id = int(
                    conn.execute(
                        insert(APPS).values(
                            app_key=manifest.key, status=SUBMITTED, live_version=None,
                            submitter=sender, created_at=now, updated_at=now, **fields,
                        ).returning(APPS.c.id)
                    ).scalar_one()
                )  # fmt: skip
                number, new_app = 1, True
            else:
                app_id, new_app = int(row.id), False
                last = conn.execute(
                    select(VERSIONS.c.number)
                    .where(VERSIONS.c.app_id == app_id)
                    .order_by(VERSIONS.c.number.desc())
                ).first()
                number = (int(last[0]) if last else 0) + 1
                conn.execute(
                    update(VERSIONS)
                    .where(VERSIONS.c.app_id == app_id, VERSIONS.c.status.in_(PENDING_VERSION))
                    .values(status=SUPERSEDED)
                )
                values: dict[str, Any] = {"updated_at": now}
                if row.live_version is None:  # never referenced: the app is the new version
                    values.update(fields, status=SUBMITTED)
                conn.execute(update(APPS).where(APPS.c.id == app_id).values(**values))
            version_id = int(
                conn.execute(
                    insert(VERSIONS).values(
                        app_id=app_id, number=number, label=manifest.version,
                        manifest=manifest.to_json(), status=SUBMITTED, submitter=sender,
                        submitted_at=now,
                    ).returning(VERSIONS.c.id)
                ).scalar_one()
            )  # fmt: skip
            conn.execute(
                insert(REVIEWS),
                [
                    {"version_id": version_id, "criterion": code, "evidence": evidence,
                     "verdict": PENDING, "note": "", "reviewer": "", "reviewed_at": None}
                    for code, evidence in manifest.criteria.items()
                ],
            )  # fmt: skip
            _history(conn, app_id, number, SUBMITTED, "", actor, now)
            write_entry(
                conn, actor, "catalogue.submit", f"app:{app_id}",
                detail={"app": manifest.key, "version": number},
            )  # fmt: skip
            app_row = conn.execute(select(APPS).where(APPS.c.id == app_id)).one()
            return Submitted(_app(app_row), number, new_app)

        try:
            result: Submitted = await self.db.writer.run(write)
        except IntegrityError:
            raise CatalogueError("another submission of this app is in progress") from None
        return result

    # -- review and decisions (item 3) -------------------------------------------------------

    async def review(
        self, ident: str | int, criterion: str, verdict: str, note: str, actor: str
    ) -> tuple[App, int]:
        if criterion not in CRITERIA:
            raise CatalogueError(
                f"unknown criterion {criterion[:40]!r}; one of: {', '.join(CRITERIA)}"
            )
        if verdict not in VERDICTS:
            raise CatalogueError("the verdict is pass or fail")
        if verdict == FAIL and not note.strip():
            raise CatalogueError("a failed criterion needs a --note saying why")
        app = await self.get(ident)
        now = self.clock()

        def write(conn: Connection) -> tuple[App, int]:
            version = _pending(conn, app.id)
            if version is None:
                raise CatalogueError(f"app {app.id} has no version awaiting review")
            conn.execute(
                update(REVIEWS)
                .where(REVIEWS.c.version_id == version.id, REVIEWS.c.criterion == criterion)
                .values(verdict=verdict, note=note.strip(), reviewer=actor, reviewed_at=now)
            )
            if version.status == SUBMITTED:
                conn.execute(
                    update(VERSIONS).where(VERSIONS.c.id == version.id).values(status=UNDER_REVIEW)
                )
                _history(conn, app.id, version.number, UNDER_REVIEW, "", actor, now)
                if app.live_version is None:
                    conn.execute(
                        update(APPS)
                        .where(APPS.c.id == app.id)
                        .values(status=UNDER_REVIEW, updated_at=now)
                    )
            write_entry(
                conn, actor, "catalogue.review", f"app:{app.id}",
                detail={"version": version.number, "criterion": criterion, "verdict": verdict},
            )  # fmt: skip
            return _app(conn.execute(select(APPS).where(APPS.c.id == app.id)).one()), int(
                version.number
            )

        result: tuple[App, int] = await self.db.writer.run(write)
        return result

    async def decide(self, ident: str | int, decision: str, reason: str, actor: str) -> Decided:
        if decision not in DECISIONS:
            raise CatalogueError(f"the decision is one of: {', '.join(DECISIONS)}")
        if not reason.strip():
            raise CatalogueError("a decision needs a --reason (the editor is told)")
        app = await self.get(ident)
        now = self.clock()

        def write(conn: Connection) -> Decided:
            version = _pending(conn, app.id)
            number: int | None = None
            values: dict[str, Any] = {"updated_at": now}
            if decision == REFERENCED:
                if version is None:
                    if app.status != SUSPENDED:
                        raise CatalogueError(f"app {app.id} has no version awaiting review")
                    number = app.live_version  # reinstated: the live version stays
                    values["status"] = REFERENCED
                else:
                    verdicts = {
                        r.criterion: r.verdict
                        for r in conn.execute(
                            select(REVIEWS).where(REVIEWS.c.version_id == version.id)
                        )
                    }
                    missing = [c for c in CRITERIA if verdicts.get(c) != PASS]
                    if missing:
                        raise CatalogueError(
                            "referenced only when every criterion passed; not passed: "
                            + ", ".join(missing)
                        )
                    number = int(version.number)
                    manifest = json.loads(version.manifest)
                    conn.execute(
                        update(VERSIONS)
                        .where(VERSIONS.c.app_id == app.id, VERSIONS.c.status == REFERENCED)
                        .values(status=SUPERSEDED)
                    )
                    conn.execute(
                        update(VERSIONS)
                        .where(VERSIONS.c.id == version.id)
                        .values(status=REFERENCED)
                    )
                    values.update(_fields_of(manifest), live_version=number)
                    if app.status != SUSPENDED:
                        values["status"] = REFERENCED
            elif decision == REFUSED:
                if version is None:
                    raise CatalogueError(f"app {app.id} has no version awaiting review")
                number = int(version.number)
                conn.execute(
                    update(VERSIONS).where(VERSIONS.c.id == version.id).values(status=REFUSED)
                )
                if app.live_version is None:
                    values["status"] = REFUSED
            elif decision == SUSPENDED:
                if app.status != REFERENCED:
                    raise CatalogueError(
                        f"only a referenced app can be suspended (it is {app.status})"
                    )
                values["status"], number = SUSPENDED, app.live_version
            else:  # WITHDRAWN
                if app.status not in (REFERENCED, SUSPENDED):
                    raise CatalogueError(
                        f"only a referenced or suspended app can be withdrawn (it is {app.status})"
                    )
                values["status"], number = WITHDRAWN, app.live_version
                conn.execute(
                    update(VERSIONS)
                    .where(VERSIONS.c.app_id == app.id, VERSIONS.c.status.in_(PENDING_VERSION))
                    .values(status=SUPERSEDED)
                )
            conn.execute(update(APPS).where(APPS.c.id == app.id).values(**values))
            _history(conn, app.id, number, decision, reason.strip(), actor, now)
            write_entry(
                conn, actor, "catalogue.decide", f"app:{app.id}",
                detail={"decision": decision, "version": number, "reason": reason.strip()[:500]},
            )  # fmt: skip
            row = conn.execute(select(APPS).where(APPS.c.id == app.id)).one()
            return Decided(_app(row), number, decision)

        result: Decided = await self.db.writer.run(write)
        return result


def _pending(conn: Connection, app_id: int) -> Any:
    return conn.execute(
        select(VERSIONS)
        .where(VERSIONS.c.app_id == app_id, VERSIONS.c.status.in_(PENDING_VERSION))
        .order_by(VERSIONS.c.number.desc())
    ).first()


def _history(
    conn: Connection, app_id: int, version: int | None, status: str, reason: str, actor: str,
    at: dt.datetime,
) -> None:  # fmt: skip
    conn.execute(
        insert(HISTORY).values(
            app_id=app_id, version=version, status=status, reason=reason, actor=actor, at=at
        )
    )


def _fields(manifest: Manifest) -> dict[str, Any]:
    return {
        "name": manifest.name, "editor_name": manifest.editor_name,
        "editor_siret": manifest.editor_siret, "description": manifest.description,
        "categories": json.dumps(list(manifest.categories), ensure_ascii=False),
        "service_url": manifest.service_url, "mailbox": manifest.mailbox,
        "certificate_serial": manifest.certificate, "scopes": " ".join(manifest.scopes),
    }  # fmt: skip


def _fields_of(document: dict[str, Any]) -> dict[str, Any]:
    return _fields(from_document(document))  # the stored document was validated already


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
