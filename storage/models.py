"""SQLAlchemy 2 models. Schema changes go through Alembic (``storage/migrations``).

Vocabulary: an **account** is an MSSanté mailbox (BAL): one address, one X25519 key pair,
optionally a password. A **folder** is an IMAP mailbox inside it (INBOX, Sent …). A **message**
row is one message in one folder; its body is a blob in the blob store, shared by every
recipient, and the row holds the content key sealed to the account's public key.

Nothing here is plaintext message content: bodies are blobs, and envelope, body structure,
size and dates live in ``messages.meta``, encrypted with the message's content key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


@dataclass(frozen=True)
class AccountInfo:
    """An account as the rest of Hygie sees it (no keys, no hash)."""

    id: int
    address: str
    has_password: bool
    disabled: bool


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    address: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(200))
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    wrapped_private_key: Mapped[bytes] = mapped_column(LargeBinary)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    # The last UIDVALIDITY given to one of its folders; new ones are always larger.
    last_uidvalidity: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Folder(Base):
    __tablename__ = "folders"
    __table_args__ = (UniqueConstraint("account_id", "name", name="uq_folders_account_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(1000))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uidnext: Mapped[int] = mapped_column(BigInteger, default=1)
    highestmodseq: Mapped[int] = mapped_column(BigInteger, default=1)
    subscribed: Mapped[bool] = mapped_column(Boolean, default=True)
    # RFC 6154 attribute without the backslash ("Sent", "Drafts" …), or None.
    special_use: Mapped[str | None] = mapped_column(String(32))
    # Keywords (non-system flags) used in this folder, space-separated.
    keywords: Mapped[str] = mapped_column(Text, default="")
    # RFC 3501 §2.3.2 \Recent: messages from this UID on were told to no session yet.
    first_recent_uid: Mapped[int] = mapped_column(BigInteger, default=1, server_default="1")


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("folder_id", "uid", name="uq_messages_folder_uid"),
        Index("ix_messages_folder_modseq", "folder_id", "modseq"),
        Index("ix_messages_blob", "blob_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    folder_id: Mapped[int] = mapped_column(ForeignKey("folders.id", ondelete="CASCADE"))
    uid: Mapped[int] = mapped_column(BigInteger)
    modseq: Mapped[int] = mapped_column(BigInteger)
    # System flags and keywords, space-separated (e.g. "\\Seen \\Flagged $Label1").
    flags: Mapped[str] = mapped_column(Text, default="")
    # Octets of the plaintext message: not secret (the ciphertext has nearly the same length).
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    blob_id: Mapped[str] = mapped_column(String(64))
    # The content key, HPKE-sealed to the account's public key.
    sealed_key: Mapped[bytes] = mapped_column(LargeBinary)
    # JSON (size, internal date, envelope, body structure), encrypted with the content key.
    meta: Mapped[bytes] = mapped_column(LargeBinary)
    # The content key and the reader's compact summary, sealed for the account with a key
    # derived from its private key (storage.crypto.OwnerSeal); written at the first read.
    owner_meta: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class Subscription(Base):
    """A subscribed mailbox name (RFC 9051 §6.3.7); it may name no existing folder."""

    __tablename__ = "subscriptions"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(1000), primary_key=True)


class Expunged(Base):
    """UIDs removed from a folder and the MODSEQ of their removal (QRESYNC's VANISHED)."""

    __tablename__ = "expunged"
    __table_args__ = (Index("ix_expunged_folder_modseq", "folder_id", "modseq"),)

    folder_id: Mapped[int] = mapped_column(
        ForeignKey("folders.id", ondelete="CASCADE"), primary_key=True
    )
    uid: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    modseq: Mapped[int] = mapped_column(BigInteger)


class Blob(Base):
    """Encrypted bodies when ``[storage] blob_store = "database"``."""

    __tablename__ = "blobs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class AccountIdentity(Base):
    """Who may log in to an account without its password (design.md §4).

    ``kind`` is ``idnat`` (a practitioner's national identifier, "8" + RPPS, read from a PER
    certificate or a token's subject claim) or ``subject`` (the RFC 4514 subject of an ORG or
    APP certificate). One identity may own several mailboxes; the SASL authorisation identity
    then chooses among them.
    """

    __tablename__ = "account_identities"
    __table_args__ = (Index("ix_account_identities_value", "kind", "value"),)

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[str] = mapped_column(String(1000), primary_key=True)


class AuditEntry(Base):
    """One line of the audit log: who did what to what, when and from where (design.md §4).

    Append-only. ``detail`` is a JSON object; it never holds a secret or a message body.
    """

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(1000))
    peer: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text, default="{}")


class OutboundMessage(Base):
    """A message waiting for remote delivery (design.md §2.5), encrypted like mailbox
    messages: ``body`` under a random content key, the key wrapped by the master key."""

    __tablename__ = "outbound_messages"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sender: Mapped[str] = mapped_column(String(320))
    envid: Mapped[str | None] = mapped_column(String(200))
    ret: Mapped[str | None] = mapped_column(String(8))
    size: Mapped[int] = mapped_column(BigInteger)
    key_ref: Mapped[bytes] = mapped_column(LargeBinary(16))
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    body: Mapped[bytes] = mapped_column(LargeBinary)


class OutboundRecipient(Base):
    """One remote recipient of an outbound message, with its delivery schedule and lease."""

    __tablename__ = "outbound_recipients"
    __table_args__ = (
        Index("ix_outbound_recipients_due", "next_attempt_at"),
        Index("ix_outbound_recipients_message", "message_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("outbound_messages.id", ondelete="CASCADE"))
    recipient: Mapped[str] = mapped_column(String(320))
    domain: Mapped[str] = mapped_column(String(255))
    orcpt: Mapped[str | None] = mapped_column(String(400))
    notify: Mapped[str | None] = mapped_column(String(40))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    delay_notified: Mapped[bool] = mapped_column(Boolean, default=False)


class PatientCorrespondent(Base):
    """Who may receive a patient's replies (design.md §4: patients cannot start a
    conversation): one row per professional address that wrote to the patient, kept as a
    keyed hash (HMAC under a key derived from the master key), so the table names no
    correspondent in clear. ``closed`` when that correspondent's latest message ended the
    exchange (``X-MSS-MES: FIN`` or the subject ``[FIN]``)."""

    __tablename__ = "patient_correspondents"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    correspondent: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    closed: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DossierDocument(Base):
    """A document filed in a patient's dossier (design.md §6): where its message lives in the
    patient's ``Dossier`` folder, its version chain, its restriction flags, and the CDA itself
    encrypted under a master-wrapped key (the server checks "annule et remplace" against it).
    Nothing here says what the document is about: type, title and body stay encrypted."""

    __tablename__ = "dossier_documents"
    __table_args__ = (Index("ix_dossier_documents_account_unique", "account_id", "unique_id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    unique_id: Mapped[str] = mapped_column(String(200))
    set_id: Mapped[str | None] = mapped_column(String(200))
    version: Mapped[int | None] = mapped_column(Integer)
    restrictions: Mapped[str] = mapped_column(String(200), default="")
    folder_id: Mapped[int] = mapped_column(Integer)
    uid: Mapped[int] = mapped_column(BigInteger)
    replaced_by: Mapped[int | None] = mapped_column(BigInteger)
    # The patient chose to hide it from every professional (issue 7 item 4).
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    filed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    key_ref: Mapped[bytes] = mapped_column(LargeBinary(16))
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    cda: Mapped[bytes] = mapped_column(LargeBinary)


class DossierBlock(Base):
    """A professional (by IdNat) the patient has blocked from reading their dossier."""

    __tablename__ = "dossier_blocks"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    idnat: Mapped[str] = mapped_column(String(20), primary_key=True)


class SegmentBlob(Base):
    """Where each blob of the segment store lies (``[storage] blob_store = "file"``): ``size``
    bytes at ``start`` in the segment file ``segment`` (see storage/blobs.py)."""

    __tablename__ = "segment_blobs"
    __table_args__ = (Index("ix_segment_blobs_segment", "segment"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    segment: Mapped[str] = mapped_column(String(64))
    start: Mapped[int] = mapped_column(BigInteger)
    size: Mapped[int] = mapped_column(BigInteger)


class AgendaComponent(Base):
    """One component (VEVENT) of a mailbox's agenda (design.md §6, issue 9), keyed by
    (account, UID, RECURRENCE-ID): the master of an event has an empty ``recurrence_id``, an
    override its RECURRENCE-ID in UTC. The UID is kept as a SHA-256 digest and the component
    itself (times, summary, attendees) encrypted under a master-wrapped key, as the dossier."""

    __tablename__ = "agenda_components"
    __table_args__ = (
        UniqueConstraint("account_id", "uid_digest", "recurrence_id", name="uq_agenda_component"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    uid_digest: Mapped[str] = mapped_column(String(64))
    recurrence_id: Mapped[str] = mapped_column(String(20), default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    key_ref: Mapped[bytes] = mapped_column(LargeBinary(16))
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    body: Mapped[bytes] = mapped_column(LargeBinary)


class AgendaReminder(Base):
    """A reminder to send (issue 9 item 4): which mailbox, which event (UID digest), which
    instance and alarm, when. A sender claims due rows for a lease (``claimed_until``), sends,
    then sets ``sent_at``: several server processes on one database never send one twice."""

    __tablename__ = "agenda_reminders"
    __table_args__ = (
        UniqueConstraint(
            "account_id", "uid_digest", "occurrence", "alarm", name="uq_agenda_reminder"
        ),
        Index("ix_agenda_reminders_due", "sent_at", "due_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    uid_digest: Mapped[str] = mapped_column(String(64))
    occurrence: Mapped[str] = mapped_column(String(20))
    alarm: Mapped[int] = mapped_column(Integer)
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OutboxMessage(Base):
    """A committed message whose after-commit work is not finished (design.md §2 step 5).

    The body is the message's own ciphertext blob (shared with its mailbox copies, so an
    outbox entry costs no second copy); its content key is wrapped by the master key here,
    and ``envelope`` (sender, recipients, origin) is encrypted with it."""

    __tablename__ = "outbox_messages"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    blob_id: Mapped[str] = mapped_column(String(64), index=True)
    key_ref: Mapped[bytes] = mapped_column(LargeBinary(16))
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    envelope: Mapped[bytes] = mapped_column(LargeBinary)


class OutboxJob(Base):
    """One step's after-commit work on one message, leased by one process at a time and
    retried with back-off; ``data`` (the step's own, encrypted with the message's key)."""

    __tablename__ = "outbox_jobs"
    __table_args__ = (Index("ix_outbox_jobs_due", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("outbox_messages.id", ondelete="CASCADE"), index=True
    )
    step: Mapped[str] = mapped_column(String(40))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(String(200))
    failed: Mapped[bool] = mapped_column(Boolean, default=False)


class OutboxEffect(Base):
    """An effect of an outbox job already committed (its key chosen by the step), with what
    it returned: a job run again after a crash skips it, so each effect happens once."""

    __tablename__ = "outbox_effects"

    job_id: Mapped[int] = mapped_column(
        ForeignKey("outbox_jobs.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    result: Mapped[str] = mapped_column(Text, default="null")


class ClusterLease(Base):
    """Work done by one process of the cluster at a time (patient-space jobs, CRL upkeep,
    the trusted-domain list): held by ``holder`` until ``expires`` (seconds since the epoch),
    renewed while it runs; another process takes it over once it expired
    (:mod:`storage.leases`)."""

    __tablename__ = "cluster_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(100))
    expires: Mapped[float] = mapped_column(Float)


class ClusterDocument(Base):
    """A document one process fetched for the whole cluster (the trusted-domain list from its
    URL), read by the others when told it changed."""

    __tablename__ = "cluster_documents"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    updated: Mapped[float] = mapped_column(Float)


class LoginFailure(Base):
    """A failed login (``server.auth.guard``): the source (an IPv4 address or IPv6 /64), the
    login name as typed (lower case; none for a certificate or token), when. Kept a day."""

    __tablename__ = "login_failures"
    __table_args__ = (
        Index("ix_login_failures_source", "source", "at"),
        Index("ix_login_failures_login", "login", "at"),
        Index("ix_login_failures_at", "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    login: Mapped[str | None] = mapped_column(String(320))
    at: Mapped[float] = mapped_column(Float)


class LoginSource(Base):
    """A source a login name last succeeded from, and when (a "known" source)."""

    __tablename__ = "login_sources"

    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    login: Mapped[str] = mapped_column(String(320), primary_key=True)
    seen: Mapped[float] = mapped_column(Float)


class LoginPacing(Base):
    """When a login name under attack may have its next paced check (rule 4 of the guard)."""

    __tablename__ = "login_pacing"

    login: Mapped[str] = mapped_column(String(320), primary_key=True)
    next_slot: Mapped[float] = mapped_column(Float)
