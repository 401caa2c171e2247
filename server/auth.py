"""Authentication shared by SMTP and IMAP: password checks (argon2id, off the event loop) with
rate limiting of failures per client address and per account (design.md §4).

SASL mechanisms themselves are parsed by each protocol; this module answers "who is this?".
Logs carry the client address and the account id, never the login name or the password.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque

import structlog

from server.config import AuthSection
from storage.accounts import AccountInfo, verify_password
from storage.db import Database

log = structlog.get_logger("hygie.auth")
WINDOW_SECONDS = 60.0


class AuthError(Exception):
    """Authentication cannot proceed; ``reason`` is one of the class constants."""

    DISABLED = "disabled"
    THROTTLED = "throttled"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FailureLimiter:
    """Sliding-window counter of failed logins."""

    def __init__(self, limit: int, window: float = WINDOW_SECONDS) -> None:
        self.limit = limit
        self.window = window
        self._by_key: defaultdict[str, deque[float]] = defaultdict(deque)

    def _trim(self, key: str, now: float) -> deque[float]:
        q = self._by_key[key]
        while q and q[0] <= now - self.window:
            q.popleft()
        if not q:
            del self._by_key[key]
            return deque()
        return q

    def blocked(self, key: str) -> bool:
        return len(self._trim(key, time.monotonic())) >= self.limit

    def record(self, key: str) -> None:
        now = time.monotonic()
        self._trim(key, now)
        self._by_key[key].append(now)


class Authenticator:
    def __init__(self, db: Database, config: AuthSection) -> None:
        self.db = db
        self.config = config
        self.limiter = FailureLimiter(config.max_failures_per_minute)

    async def password(
        self, username: str, password: str, peer: str, protocol: str
    ) -> AccountInfo | None:
        """The account if the password is right, else ``None``. Raises :class:`AuthError`."""
        if not self.config.password_login:
            raise AuthError(AuthError.DISABLED)
        ip_key, user_key = f"ip:{peer}", f"user:{username.strip().lower()}"
        if self.limiter.blocked(ip_key) or self.limiter.blocked(user_key):
            log.warning("auth_throttled", protocol=protocol, peer=peer)
            raise AuthError(AuthError.THROTTLED)
        account = await verify_password(self.db, username, password)
        if account is None:
            self.limiter.record(ip_key)
            self.limiter.record(user_key)
            log.info("auth_failed", protocol=protocol, peer=peer, mechanism="password")
            # The delay is in the reply, awaited: other sessions are served meanwhile.
            await asyncio.sleep(self.config.failure_delay_seconds)
            return None
        log.info("auth_ok", protocol=protocol, peer=peer, account=account.id)
        return account
