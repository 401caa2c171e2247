"""CSRF tokens bound to the session they protect (issue 17 finding 7; OWASP's "signed double
submit cookie"): the token of a form is HMAC-SHA256 of the session's secret under a key of the
server, so a token is good for that session only and cannot be made without the key.

- Signed in, the binding is the session cookie (``HttpOnly``: a page of another origin can
  neither read it nor, without the key, compute its token). A token taken from one session,
  or set in a cookie of the attacker's choice, is worth nothing with another session.
- Before sign-in (the sign-in, refusal and activation forms) there is no session yet: the
  binding is a random nonce in a cookie of its own, and the token its HMAC.

The key (32 random bytes, ``oauth/espace-csrf.key``, 0600) is made on first start like the
patient issuer's key, by whichever process gets there first; every worker process reads the
same file, so a form served by one is accepted by another, and after a restart.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

KEY_FILE = "oauth/espace-csrf.key"
_LABEL = b"hygie-espace-csrf\x00"


class CsrfTokens:
    def __init__(self, key_file: Path) -> None:
        self.key_file = key_file
        self._key: bytes | None = None

    def key(self) -> bytes:
        if self._key is None:
            if not self.key_file.exists():
                self.key_file.parent.mkdir(parents=True, exist_ok=True)
                # Written whole under a name of its own, then linked into place: a worker
                # starting at the same time finds no key or a whole one, never a half-written
                # one, and the first link wins.
                tmp = self.key_file.with_name(f".{self.key_file.name}.{os.getpid()}")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as out:
                    out.write(secrets.token_bytes(32))
                    out.flush()
                    os.fsync(out.fileno())
                try:
                    os.link(tmp, self.key_file)
                except FileExistsError:
                    pass  # another process made it first
                finally:
                    tmp.unlink()
            key = self.key_file.read_bytes()
            if len(key) < 32:
                raise ValueError(f"{self.key_file} holds no 32-byte key")
            self._key = key
        return self._key

    def token(self, binding: str) -> str:
        """The form token for ``binding`` (a session secret, or the pre-session nonce)."""
        mac = hmac.new(self.key(), _LABEL + binding.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def check(self, binding: str, sent: str) -> bool:
        if not binding or not sent:
            return False
        return hmac.compare_digest(self.token(binding).encode(), sent.encode("utf-8", "replace"))
