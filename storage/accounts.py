"""Accounts (MSSanté mailboxes, "BAL"): addresses, key pairs, passwords.

Passwords are argon2id hashes (RFC 9106) verified off the event loop. Each account gets an
X25519 key pair whose private half is wrapped by the master key (design.md §4) and an INBOX.
"""

from __future__ import annotations

import asyncio
import functools
import re
import unicodedata
import weakref
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from storage import transactions as tx
from storage.crypto import MailboxKeyPair, MasterKey
from storage.db import Database
from storage.models import Account, AccountIdentity

_HASHER = PasswordHasher()  # argon2id, RFC 9106 second recommended profile (64 MiB, t=3, p=4)
# Each verification takes 64 MiB and ~0.1 s of CPU: at most two at a time (one per core), so a
# burst of logins queues instead of multiplying memory.
_VERIFY_SLOTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def _verify_slots() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    slots = _VERIFY_SLOTS.get(loop)
    if slots is None:
        slots = _VERIFY_SLOTS[loop] = asyncio.Semaphore(2)
    return slots


@functools.cache
def _dummy_hash() -> str:
    """A hash of a random password, verified for unknown accounts so that timing does not
    tell whether an address exists. Made on first use, not at import: an argon2id hash costs
    ~0.8 s, which every ``hygie`` command paid at start-up."""
    return _HASHER.hash("hygie-no-such-account")


# RFC 5321 §4.1.2 dot-atom local parts, extended by RFC 6531 §3.3 (UTF8-non-ascii) to letters,
# marks and digits of any script, NFC-normalised (RFC 6530 §10.1); no symbols, spaces, controls
# or bidi marks outside ASCII. The domain is in ASCII (A-labels, RFC 5890).
_ADDRESS = re.compile(
    r"^[\w.!#$%&'*+/=?^`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$"
)
_LOCAL_PART_OCTETS = 64  # RFC 5321 §4.5.3.1.1


#: RFC 6154 special-use folders every account starts with.
DEFAULT_FOLDERS: tuple[tuple[str, str | None], ...] = (
    ("INBOX", None),
    ("Sent", "Sent"),
    ("Drafts", "Drafts"),
    ("Trash", "Trash"),
    ("Archive", "Archive"),
)


class AccountError(Exception):
    """Bad input for an account operation; the message is fit for the user."""


@dataclass(frozen=True)
class AccountInfo:
    id: int
    address: str
    has_password: bool
    disabled: bool


def normalize_address(address: str) -> str:
    """``address`` in the one form accounts are stored and compared in: NFC, lower case."""
    address = unicodedata.normalize("NFC", address.strip())
    if not _ADDRESS.match(address) or ".." in address:
        raise AccountError(f"not a valid mail address: {address!r}")
    local, domain = address.rsplit("@", 1)
    if not local.isascii() and (
        len(local.encode()) > _LOCAL_PART_OCTETS
        or not all(c.isascii() or unicodedata.category(c)[0] in "LMN" for c in local)
    ):
        raise AccountError(f"not a valid mail address: {address!r}")
    return f"{local.lower()}@{domain.lower()}"


def key_context(account_id: int) -> bytes:
    """AAD binding a wrapped private key to its account row."""
    return b"account:%d" % account_id


def hash_password(password: str) -> str:
    if len(password) < 8:
        raise AccountError("password must have at least 8 characters")
    return _HASHER.hash(password)


async def create_account(
    db: Database, master: MasterKey, address: str, password: str | None
) -> AccountInfo:
    address = normalize_address(address)
    password_hash = await asyncio.to_thread(hash_password, password) if password else None
    keys = MailboxKeyPair.generate()

    def write(conn: Connection) -> AccountInfo:
        accounts = tx.ACCOUNTS
        account_id = int(
            conn.execute(
                insert(accounts)
                .values(
                    address=address,
                    password_hash=password_hash,
                    public_key=keys.public,
                    wrapped_private_key=b"",
                    disabled=False,
                    last_uidvalidity=0,
                )
                .returning(accounts.c.id)
            ).scalar_one()
        )
        conn.execute(
            update(accounts)
            .where(accounts.c.id == account_id)
            .values(wrapped_private_key=keys.wrapped_private(master, key_context(account_id)))
        )
        for name, use in DEFAULT_FOLDERS:
            tx.new_folder(conn, account_id, name, use)
            tx.subscribe(conn, account_id, name, True)
        return AccountInfo(account_id, address, password_hash is not None, False)

    try:
        return await db.writer.run(write)
    except IntegrityError:
        raise AccountError(f"{address} already exists") from None


async def set_password(db: Database, address: str, password: str) -> None:
    address = normalize_address(address)
    password_hash = await asyncio.to_thread(hash_password, password)

    def write(conn: Connection) -> bool:
        accounts = tx.ACCOUNTS
        done = conn.execute(
            update(accounts)
            .where(accounts.c.address == address)
            .values(password_hash=password_hash)
        )
        return bool(done.rowcount)

    if not await db.writer.run(write):
        raise AccountError(f"no such account: {address}")


async def list_accounts(db: Database) -> list[AccountInfo]:
    async with db.read() as session:
        rows = await session.scalars(select(Account).order_by(Account.address))
        return [AccountInfo(a.id, a.address, a.password_hash is not None, a.disabled) for a in rows]


async def find_account(db: Database, address: str) -> AccountInfo | None:
    try:
        address = normalize_address(address)
    except AccountError:
        return None
    async with db.read() as session:
        a = await session.scalar(select(Account).where(Account.address == address))
        if a is None:
            return None
        return AccountInfo(a.id, a.address, a.password_hash is not None, a.disabled)


async def verify_password(db: Database, address: str, password: str) -> AccountInfo | None:
    """The account if ``password`` is right; ``None`` otherwise (same cost either way)."""
    try:
        address = normalize_address(address)
    except AccountError:
        address = ""
    async with db.read() as session:
        a = await session.scalar(select(Account).where(Account.address == address))
    stored = a.password_hash if a is not None and a.password_hash else None

    def check() -> bool:
        try:
            return _HASHER.verify(stored or _dummy_hash(), password)
        except (VerificationError, InvalidHashError):
            return False

    async with _verify_slots():
        ok = await asyncio.to_thread(check)
    if not ok or a is None or not a.password_hash or a.disabled:
        return None
    return AccountInfo(a.id, a.address, True, a.disabled)


#: Kinds of :class:`AccountIdentity`.
IDNAT = "idnat"
SUBJECT = "subject"
IDENTITY_KINDS = (IDNAT, SUBJECT)


async def bind_identity(db: Database, address: str, kind: str, value: str) -> AccountInfo:
    """Let ``value`` (an IdNat or a certificate subject) log in to the account at ``address``."""
    if kind not in IDENTITY_KINDS:
        raise AccountError(f"unknown identity kind {kind!r}")
    if not value.strip():
        raise AccountError("an identity cannot be empty")
    account = await find_account(db, address)
    if account is None:
        raise AccountError(f"no such account: {address}")

    def write(conn: Connection) -> None:
        exists = conn.execute(
            select(AccountIdentity.account_id).where(
                AccountIdentity.account_id == account.id,
                AccountIdentity.kind == kind,
                AccountIdentity.value == value,
            )
        ).first()
        if exists is None:
            conn.execute(
                insert(AccountIdentity).values(account_id=account.id, kind=kind, value=value)
            )

    await db.writer.run(write)
    return account


async def accounts_for_identity(db: Database, kind: str, value: str) -> list[AccountInfo]:
    """The enabled accounts bound to this identity, by address."""
    query = (
        select(Account)
        .join(AccountIdentity, AccountIdentity.account_id == Account.id)
        .where(AccountIdentity.kind == kind, AccountIdentity.value == value)
        .order_by(Account.address)
    )
    async with db.read() as session:
        rows = await session.scalars(query)
        return [
            AccountInfo(a.id, a.address, a.password_hash is not None, a.disabled)
            for a in rows
            if not a.disabled
        ]


async def identities_of(db: Database, account_id: int) -> list[tuple[str, str]]:
    async with db.read() as session:
        rows = await session.execute(
            select(AccountIdentity.kind, AccountIdentity.value)
            .where(AccountIdentity.account_id == account_id)
            .order_by(AccountIdentity.kind, AccountIdentity.value)
        )
        return [(k, v) for k, v in rows]


async def unlock_keys(db: Database, master: MasterKey, account_id: int) -> MailboxKeyPair:
    """The account's key pair, private half unwrapped (done once per IMAP login)."""
    async with db.read() as session:
        a = await session.get(Account, account_id)
        if a is None:
            raise AccountError("no such account")
        public, wrapped = a.public_key, a.wrapped_private_key
    return await asyncio.to_thread(
        MailboxKeyPair.unwrap, public, wrapped, master, key_context(account_id)
    )
