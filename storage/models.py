"""SQLAlchemy 2 models. Schema changes go through Alembic (``storage/migrations``).

Vocabulary: an **account** is an MSSanté mailbox (BAL): one address, one X25519 key pair,
optionally a password. A **folder** is an IMAP mailbox inside it (INBOX, Sent …). A **message**
row is one message in one folder; its body is a blob in the blob store, shared by every
recipient, and the row holds the content key sealed to the account's public key.

Nothing here is plaintext message content: bodies are blobs, and envelope, body structure,
size and dates live in ``messages.meta``, encrypted with the message's content key.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
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


class SegmentBlob(Base):
    """Where each blob of the segment store lies (``[storage] blob_store = "file"``): ``size``
    bytes at ``start`` in the segment file ``segment`` (see storage/blobs.py)."""

    __tablename__ = "segment_blobs"
    __table_args__ = (Index("ix_segment_blobs_segment", "segment"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    segment: Mapped[str] = mapped_column(String(64))
    start: Mapped[int] = mapped_column(BigInteger)
    size: Mapped[int] = mapped_column(BigInteger)
