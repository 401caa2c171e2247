"""Accounts (MSSanté mailboxes, "BAL"): addresses, key pairs, passwords.

Passwords are argon2id hashes (`storage.passwords`) verified off the event loop; a password
verified a moment ago is recognised without argon2id, and a hash made with older parameters is
replaced at the next successful login. Each account gets an X25519 key pair whose private half
is wrapped by the master key (design.md §4) and an INBOX.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import unicodedata
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import structlog
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from storage import passwords
from storage import transactions as tx
from storage.crypto import MailboxKeyPair, MasterKey
from storage.db import Database
from storage.models import Account, AccountIdentity
from storage.models import AccountInfo as AccountInfo  # the accounts API names it here too
from storage.passwords import CREDENTIALS
from storage.patient_sessions import end_all_sessions

log = structlog.get_logger("hygie.accounts")


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


class AccountRefused(AccountError):
    """A rule forbids this account (``create_account``'s guard said why)."""


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
    return passwords.hash_password(password)


async def create_account(
    db: Database,
    master: MasterKey,
    address: str,
    password: str | None,
    *,
    guard: Callable[[Connection], str | None] | None = None,
) -> AccountInfo:
    """A new mailbox with its key pair and default folders; durable on return. ``guard`` runs
    first in the same transaction and returns why the account may not be created, or None
    (a rule on other tables, checked where no concurrent change can slip between the check
    and the creation): then :class:`AccountRefused` with that reason, and nothing written."""
    address = normalize_address(address)
    password_hash = await asyncio.to_thread(hash_password, password) if password else None
    keys = MailboxKeyPair.generate()

    def write(conn: Connection) -> AccountInfo | str:
        if guard is not None:
            refusal = guard(conn)
            if refusal is not None:
                return refusal
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
        created = await db.writer.run(write)
    except IntegrityError:
        raise AccountError(f"{address} already exists") from None
    if isinstance(created, str):
        raise AccountRefused(created)
    return created


async def set_password(
    db: Database, address: str, password: str, *, actor: str = "operator"
) -> None:
    """Set the password; every patient session and token of the account ends with the old
    one, in the same transaction (issue 17 finding 7)."""
    address = normalize_address(address)
    password_hash = await asyncio.to_thread(hash_password, password)

    def write(conn: Connection) -> int | None:
        accounts = tx.ACCOUNTS
        done = conn.execute(
            update(accounts)
            .where(accounts.c.address == address)
            .values(password_hash=password_hash)
            .returning(accounts.c.id)
        ).first()
        if done is None:
            return None
        end_all_sessions(conn, int(done[0]), actor=actor, reason="password")
        return int(done[0])

    account_id = await db.writer.run(write)
    if account_id is None:
        raise AccountError(f"no such account: {address}")
    db.notices.invalidate("credentials", account_id)


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


@dataclass(frozen=True)
class PasswordCheck:
    """What a password check found: the account it opens (``None``: refused), and whether
    a credential verified a moment ago answered (no argon2id)."""

    account: AccountInfo | None
    remembered: bool = False


_ACCOUNT_ROW = "SELECT id, address, password_hash, disabled FROM accounts WHERE address = ?"


async def check_password(
    db: Database,
    address: str,
    password: str,
    *,
    argon2_slot: AbstractAsyncContextManager[object] | None = None,
) -> PasswordCheck:
    """Whether ``password`` opens the account at ``address``.

    The account's row is read every time: a disabled or deleted account is refused, and a
    credential remembered for an older password hash does not match the new one. Without a
    remembered match, argon2id runs off the event loop (inside ``argon2_slot``, the caller's
    bound on concurrent checks, then this process's :func:`passwords.verify_slots`), against
    the dummy hash when the account is unknown or has no password, so that the cost does not
    tell whether an address exists. A right password whose hash has older parameters gets a
    new hash (written only if the stored one has not changed meanwhile).
    """
    try:
        address = normalize_address(address)
    except AccountError:
        address = ""
    rows = await db.lookup(_ACCOUNT_ROW, address) if address else []
    row = rows[0] if rows else None
    stored = str(row[2]) if row is not None and row[2] else None
    account = (
        AccountInfo(int(row[0]), str(row[1]), True, bool(row[3]))
        if row is not None and stored is not None
        else None
    )
    if account is not None and stored is not None:
        if CREDENTIALS.matches(account.id, stored, password):
            return PasswordCheck(None if account.disabled else account, remembered=True)
    async with argon2_slot if argon2_slot is not None else contextlib.nullcontext():
        async with passwords.verify_slots():
            ok = await asyncio.to_thread(passwords.verify, stored or passwords.dummy_hash(),
                                         password)  # fmt: skip
    if not ok or account is None or stored is None:
        return PasswordCheck(None)
    if passwords.needs_rehash(stored):
        stored = await _rehash(db, account.id, stored, password)
    CREDENTIALS.remember(account.id, stored, password)
    return PasswordCheck(None if account.disabled else account)


async def _rehash(db: Database, account_id: int, old: str, password: str) -> str:
    """Replace a hash made with older parameters; the hash now stored is returned."""
    async with passwords.verify_slots():
        new = await asyncio.to_thread(passwords.hash_password, password)

    def write(conn: Connection) -> bool:
        accounts = tx.ACCOUNTS
        done = conn.execute(
            update(accounts)
            .where(accounts.c.id == account_id, accounts.c.password_hash == old)
            .values(password_hash=new)
        )
        return bool(done.rowcount)

    if await db.writer.run(write):
        log.info("password_rehashed", account=account_id)
        return new
    return old  # changed meanwhile (a new password): the next login reads it


async def verify_password(db: Database, address: str, password: str) -> AccountInfo | None:
    """The account if ``password`` is right and the account enabled; ``None`` otherwise."""
    return (await check_password(db, address, password)).account


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
    rows = await db.lookup(
        "SELECT public_key, wrapped_private_key FROM accounts WHERE id = ?", account_id
    )
    if not rows:
        raise AccountError("no such account")
    public, wrapped = bytes(rows[0][0]), bytes(rows[0][1])
    # An HKDF, an AES-GCM decryption and one X25519 base-point multiplication: ~0.1 ms, less
    # than the hop to a thread would cost the event loop.
    return MailboxKeyPair.unwrap(public, wrapped, master, key_context(account_id))
