"""The catalogue's tables (Alembic migration ``0013``), on storage's metadata.

An app (``cat_apps``) carries what enforcement needs in its own row (status, APP mailbox,
certificate serial, scopes): these come from the live (referenced) version, or from the latest
submitted one while the app was never referenced. Every manifest is a version
(``cat_versions``) with one review row per criterion (``cat_reviews``); every change of status
is a row of ``cat_history``. A patient's consent (``cat_consents``) is one row per app and
patient; ``cat_access`` lists what each app did or tried for each patient (the patient's
"recent access" view). No row holds an INS: patients are account ids.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from storage.models import Base

_ID = BigInteger().with_variant(Integer, "sqlite")


class CatalogueApp(Base):
    __tablename__ = "cat_apps"

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    app_key: Mapped[str] = mapped_column(String(100), unique=True)  # the manifest's "id"
    name: Mapped[str] = mapped_column(String(80))
    editor_name: Mapped[str] = mapped_column(String(200))
    editor_siret: Mapped[str] = mapped_column(String(14))
    description: Mapped[str] = mapped_column(Text)
    categories: Mapped[str] = mapped_column(Text)  # JSON list
    service_url: Mapped[str] = mapped_column(String(2048))
    mailbox: Mapped[str] = mapped_column(String(320), unique=True)
    certificate_serial: Mapped[str] = mapped_column(String(40))
    scopes: Mapped[str] = mapped_column(Text)  # space-separated
    status: Mapped[str] = mapped_column(String(20))
    live_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    submitter: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CatalogueVersion(Base):
    __tablename__ = "cat_versions"
    __table_args__ = (UniqueConstraint("app_id", "number", name="uq_cat_versions_app_number"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("cat_apps.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(32))  # the manifest's "version"
    manifest: Mapped[str] = mapped_column(Text)  # the manifest as validated (JSON)
    status: Mapped[str] = mapped_column(String(20))
    submitter: Mapped[str] = mapped_column(String(320))
    submitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CatalogueReview(Base):
    __tablename__ = "cat_reviews"
    __table_args__ = (
        UniqueConstraint("version_id", "criterion", name="uq_cat_reviews_version_criterion"),
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("cat_versions.id", ondelete="CASCADE"))
    criterion: Mapped[str] = mapped_column(String(40))
    evidence: Mapped[str] = mapped_column(Text)
    verdict: Mapped[str] = mapped_column(String(10))  # pending, pass, fail
    note: Mapped[str] = mapped_column(Text, default="")
    reviewer: Mapped[str] = mapped_column(String(200), default="")
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class CatalogueHistory(Base):
    __tablename__ = "cat_history"

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("cat_apps.id", ondelete="CASCADE"), index=True)
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CatalogueConsent(Base):
    __tablename__ = "cat_consents"
    __table_args__ = (UniqueConstraint("app_id", "account_id", name="uq_cat_consents_app_account"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("cat_apps.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    scopes: Mapped[str] = mapped_column(Text)  # space-separated
    granted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class CatalogueAccess(Base):
    __tablename__ = "cat_access"
    __table_args__ = (Index("ix_cat_access_account_app", "account_id", "app_id", "at"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("cat_apps.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(String(20))
    outcome: Mapped[str] = mapped_column(String(10))  # allowed, refused
    reason: Mapped[str] = mapped_column(String(200), default="")
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
