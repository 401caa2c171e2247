"""Password hashes (argon2id, RFC 9106) and the memory of recently verified credentials.

- New hashes use the OWASP Password Storage Cheat Sheet's argon2id recommendation: 19 MiB,
  2 passes, 1 lane (~25 ms of CPU, where RFC 9106's 64 MiB, t=3, p=4 profile cost ~200 ms).
  A stored hash carries its own parameters (``$argon2id$v=19$m=…,t=…,p=…$``), so every hash ever
  written still verifies; :func:`needs_rehash` tells the login to write a new one.
- :class:`VerifiedCredentials` remembers, for a short time and in this process's memory only,
  that a password matched a stored hash: a keyed hash (HMAC-SHA-256 with a secret drawn when
  the process starts) of the account, the stored hash and the password. A repeated login then
  costs an HMAC instead of argon2id. The stored hash is part of what is remembered, so a new
  password (in any process: the login reads the row each time) never matches an entry made
  for the old one; the account's row is read at every login, so a disabled or deleted account
  is refused whatever is remembered. Entries are also dropped at once in this process when the
  account's password, state or existence changes here (:meth:`VerifiedCredentials.forget`).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import secrets
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# OWASP Password Storage Cheat Sheet: "Use Argon2id with a minimum configuration of 19 MiB of
# memory, an iteration count of 2, and 1 degree of parallelism."
MEMORY_KIB = 19 * 1024
TIME_COST = 2
PARALLELISM = 1
HASHER = PasswordHasher(
    time_cost=TIME_COST, memory_cost=MEMORY_KIB, parallelism=PARALLELISM, hash_len=32, salt_len=16
)
#: argon2id runs off the event loop, at most this many at a time in a process (one per core):
#: a burst of logins queues instead of multiplying memory and stalling the loop's thread pool.
VERIFY_SLOTS = 2
_SLOTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def verify_slots() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    slots = _SLOTS.get(loop)
    if slots is None:
        slots = _SLOTS[loop] = asyncio.Semaphore(VERIFY_SLOTS)
    return slots


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def verify(stored: str, password: str) -> bool:
    """Whether ``password`` matches ``stored`` (any argon2 parameters); never raises.

    IMAP hands over bytes that are not UTF-8 as surrogate escapes, JSON may carry lone
    surrogates (issue 17): no password anyone set has one, so such a password is simply
    wrong, and must not fail the encoding."""
    try:
        return HASHER.verify(stored, password.encode("utf-8", "surrogatepass"))
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """True when ``stored`` was made with other parameters than :data:`HASHER`'s."""
    try:
        return HASHER.check_needs_rehash(stored)
    except InvalidHashError:
        return False


@functools.cache
def dummy_hash() -> str:
    """A hash of a random password with the current parameters, verified for unknown accounts
    (and accounts without a password) so that timing does not tell whether an address exists.
    Made on first use, not at import, so that ``hygie`` commands do not pay it."""
    return HASHER.hash(secrets.token_urlsafe(24))


@dataclass(frozen=True)
class _Entry:
    stored: bytes  # SHA-256 of the stored hash it was verified against
    mac: bytes  # HMAC(secret, account, stored hash, password)
    expires: float


class VerifiedCredentials:
    """Credentials verified recently, as keyed hashes; bounded in number and in time."""

    def __init__(self, ttl: float = 600.0, max_entries: int = 100_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._secret = secrets.token_bytes(32)
        self._entries: OrderedDict[int, _Entry] = OrderedDict()

    def _mac(self, account_id: int, stored: str, password: str) -> bytes:
        secret = password.encode("utf-8", "surrogatepass")
        message = b"%d\x00%s\x00%s" % (account_id, stored.encode(), secret)
        return hmac.digest(self._secret, message, "sha256")

    def matches(self, account_id: int, stored: str, password: str) -> bool:
        """True only if this exact password was verified against this exact stored hash of
        this account less than ``ttl`` seconds ago."""
        entry = self._entries.get(account_id)
        if entry is None:
            return False
        if entry.expires <= time.monotonic():
            del self._entries[account_id]
            return False
        digest = hashlib.sha256(stored.encode()).digest()
        return hmac.compare_digest(entry.stored, digest) and hmac.compare_digest(
            entry.mac, self._mac(account_id, stored, password)
        )

    def remember(self, account_id: int, stored: str, password: str) -> None:
        if self.ttl <= 0:
            return
        digest = hashlib.sha256(stored.encode()).digest()
        mac = self._mac(account_id, stored, password)
        self._entries[account_id] = _Entry(digest, mac, time.monotonic() + self.ttl)
        self._entries.move_to_end(account_id)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget(self, account_id: int) -> None:
        """The account's password, state or existence changed: drop what was remembered."""
        self._entries.pop(account_id, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


#: This process's memory of verified credentials (``[auth] credential_cache_seconds``).
CREDENTIALS = VerifiedCredentials()
