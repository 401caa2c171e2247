"""The one error the certificate authority raises: `PkiError`.

Every failure a caller can do something about (a missing or damaged file, a wrong passphrase, a
host name that cannot go in a certificate, CA files that already exist) is a `PkiError` with a
message meant for the operator's terminal; ``hygie`` prints it as its one-line error.
"""

from __future__ import annotations


class PkiError(Exception):
    """A certificate authority or TLS setup step failed; the message says why and on what."""


class WrongPassphrase(PkiError):
    """An encrypted private key did not decrypt with the passphrase given (a prompt may retry)."""
