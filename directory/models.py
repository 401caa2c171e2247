"""The directory's tables (Alembic migration ``0005_directory``), on storage's metadata.

Rows are keyed by their national identifiers (``idnat`` of a practitioner, ``identifier`` of an
organisation, ``address`` of a mailbox), so a bulk import needs no lookups to link them; the
integer ``id`` is the FHIR logical id of a PractitionerRole. Imported rows carry the number of
the import that last saw them (``generation``): a re-import that no longer lists a row marks it
inactive (``active`` false) instead of deleting it, so mail to a vanished mailbox gets a clear
refusal and the history stays readable.

``search`` columns hold accent-free, lower-case words (and filter tokens, see
:mod:`directory.search`) from which the full-text documents in ``dir_search`` are built.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from storage.models import Base

_ID = BigInteger().with_variant(Integer, "sqlite")


class Practitioner(Base):
    __tablename__ = "dir_practitioners"

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    idnat: Mapped[str] = mapped_column(String(20), unique=True)
    civility: Mapped[str] = mapped_column(String(20), default="")
    family: Mapped[str] = mapped_column(String(200), default="")
    given: Mapped[str] = mapped_column(String(200), default="")
    profession_code: Mapped[str] = mapped_column(String(10), default="")
    profession_label: Mapped[str] = mapped_column(String(200), default="")
    specialty_code: Mapped[str] = mapped_column(String(10), default="")
    specialty_label: Mapped[str] = mapped_column(String(200), default="")
    search: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Organisation(Base):
    __tablename__ = "dir_organisations"

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    # Structure IdNat: "1" + FINESS, "3" + SIRET, "4" + cabinet id (see directory.idnat).
    identifier: Mapped[str] = mapped_column(String(40), unique=True)
    finess: Mapped[str] = mapped_column(String(9), default="")
    siret: Mapped[str] = mapped_column(String(14), default="")
    name: Mapped[str] = mapped_column(String(300), default="")
    trade_name: Mapped[str] = mapped_column(String(300), default="")
    address: Mapped[str] = mapped_column(String(500), default="")
    postcode: Mapped[str] = mapped_column(String(10), default="")
    city: Mapped[str] = mapped_column(String(200), default="")
    search: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Activity(Base):
    """A practitioner's practice at a structure (one PS_LibreAcces line): a PractitionerRole."""

    __tablename__ = "dir_activities"
    __table_args__ = (Index("ix_dir_activities_practitioner", "practitioner_idnat"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    key: Mapped[str] = mapped_column(String(80), unique=True)
    practitioner_idnat: Mapped[str] = mapped_column(String(20))
    organisation_identifier: Mapped[str] = mapped_column(String(40), default="")
    mode: Mapped[str] = mapped_column(String(100), default="")
    role: Mapped[str] = mapped_column(String(100), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DirectoryMailbox(Base):
    """An MSSanté mailbox (BAL) as published: address and type cannot change (TRE_R257)."""

    __tablename__ = "dir_mailboxes"
    __table_args__ = (
        Index("ix_dir_mailboxes_practitioner", "practitioner_idnat"),
        Index("ix_dir_mailboxes_organisation", "organisation_identifier"),
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    address: Mapped[str] = mapped_column(String(320), unique=True)
    type: Mapped[str] = mapped_column(String(3))  # PER, ORG, APP, CAB
    practitioner_idnat: Mapped[str] = mapped_column(String(20), default="")
    organisation_identifier: Mapped[str] = mapped_column(String(40), default="")
    service: Mapped[str] = mapped_column(String(300), default="")
    liste_rouge: Mapped[bool] = mapped_column(Boolean, default=False)
    preferred: Mapped[bool] = mapped_column(Boolean, default=False)
    digitization: Mapped[bool] = mapped_column(Boolean, default=False)
    # "mssante" (from the national extract) or "local" (this operator's own mailboxes).
    source: Mapped[str] = mapped_column(String(10), default="mssante")
    search: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Patient(Base):
    """A patient known to this operator: INS, identity traits, RNIV status, médecin traitant."""

    __tablename__ = "dir_patients"

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    ins: Mapped[str] = mapped_column(String(15), unique=True)
    oid: Mapped[str] = mapped_column(String(40))
    birth_family: Mapped[str] = mapped_column(String(200))
    given_names: Mapped[str] = mapped_column(String(300))  # the list at birth, space-separated
    first_given: Mapped[str] = mapped_column(String(100))
    birth_date: Mapped[date] = mapped_column(Date)
    sex: Mapped[str] = mapped_column(String(1))  # M, F, I (INSEE codes)
    birthplace: Mapped[str] = mapped_column(String(5), default="")  # INSEE code
    status: Mapped[str] = mapped_column(String(5))  # PROV, RECUP, VALI, QUAL
    medecin_traitant_idnat: Mapped[str] = mapped_column(String(20), default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DirectoryImport(Base):
    """One run of ``hygie directory import``: its number is the rows' ``generation``."""

    __tablename__ = "dir_imports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(500))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lines: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)


class SearchWord(Base):
    """Every word of the search documents: a typed prefix is expanded to the words it starts
    (``infirm`` → ``infirmier``), which the full-text engines match far faster than a prefix
    over a frequent word."""

    __tablename__ = "dir_search_words"

    word: Mapped[str] = mapped_column(String(100), primary_key=True)


class SearchEntry(Base):
    """One full-text document per active practitioner or organisation.

    SQLite indexes ``doc`` in the FTS5 table ``dir_search_fts`` (external content); PostgreSQL
    in a GIN index on the generated column ``tsv = to_tsvector('simple', doc)``. Both are
    created by the migration.
    """

    __tablename__ = "dir_search"
    __table_args__ = (Index("ix_dir_search_ref", "ref"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    kind: Mapped[str] = mapped_column(String(1))  # P practitioner, O organisation
    ref: Mapped[str] = mapped_column(String(40))  # idnat or organisation identifier
    doc: Mapped[str] = mapped_column(Text)
