"""What every command group of ``hygie`` shares: the one-line error and exit, running a
coroutine with the expected errors turned into that line, the configuration of ``--data``,
a started database, the audit entry of an operator command, the CA and the files of an issued
certificate.

Nothing heavy is imported here at module level: ``hygie --help`` and ``hygie <group> --help``
load this module, and SQLAlchemy, cryptography and the storage layer come in only with the
command that needs them (issue 18 item 5).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

if TYPE_CHECKING:
    from pki.ca import CertificateAuthority, IssuedCertificate
    from server.config import Config
    from storage.db import Database

T = TypeVar("T")


class CliError(Exception):
    pass


def fail(message: str) -> NoReturn:
    click.echo(f"hygie: error: {message}", err=True)
    sys.exit(1)


#: The errors a command reports as its one line, by module: the configuration, accounts, the
#: CA, the key hierarchy.
_REPORTED = (
    ("server.config", "ConfigError"),
    ("storage.accounts", "AccountError"),
    ("pki.errors", "PkiError"),
    ("storage.crypto", "CryptoError"),
)


def _reported() -> tuple[type[Exception], ...]:
    """``CliError`` and those of ``_REPORTED`` whose module the command imported: a class that
    was never imported cannot have been raised, and importing it would cost a light command
    the storage layer."""
    loaded = (sys.modules.get(module) for module, _ in _REPORTED)
    found = (getattr(m, name) for m, (_, name) in zip(loaded, _REPORTED, strict=True) if m)
    return (CliError, *found)


def run(coro: Coroutine[Any, Any, T]) -> T:
    import asyncio

    try:
        return asyncio.run(coro)
    except _reported() as exc:  # evaluated once the coroutine has raised
        fail(str(exc))
    except OSError as exc:
        fail(f"{exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}")


def _config(ctx: click.Context) -> Config:
    from server.config import ConfigError, load_config

    data: Path = ctx.obj["data"]
    try:
        return load_config(data)
    except ConfigError as exc:
        fail(str(exc))


async def _with_db(config: Config) -> Database:
    from storage.blobs import open_blob_store
    from storage.db import Database

    blobs = open_blob_store(config.storage.blob_store, config.path(config.storage.blob_dir))
    db = Database(config.database_url, blobs)
    await db.start()
    return db


def _actor() -> str:
    """The actor of an operator command in the audit log: the OS user."""
    import getpass

    return f"cli:{getpass.getuser()}"


async def _audit(
    config: Config,
    action: str,
    issued: IssuedCertificate | None = None,
    *,
    target: str = "",
    db: Database | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """One audit-log entry for an operator command (the OS user is the actor)."""
    from storage import audit

    entry = dict(detail or {})
    if issued is not None:
        cert = issued.certificate
        target = target or f"certificate:{cert.serial_number:X}"
        entry.setdefault("subject", cert.subject.rfc4514_string())
        entry.setdefault("not_after", cert.not_valid_after_utc.isoformat())
    own = db is None
    handle = db if db is not None else await _with_db(config)
    try:
        await audit.record(handle, _actor(), action, target, detail=entry)
    finally:
        if own:
            await handle.close()


# -- the CA and certificate files (``hygie init``, ``hygie pki``, ``hygie user bind``) --------


def load_ca(config: Config) -> CertificateAuthority:
    from pki.ca import CertificateAuthority
    from server.config import CA_SECRET
    from storage.crypto import MasterKey

    master = MasterKey.load(config.path(config.storage.master_key_file))
    return CertificateAuthority.load(config.path("pki"), master.derive_secret(CA_SECRET))


def _ca_or_fail(ctx: click.Context) -> CertificateAuthority:
    from pki.errors import PkiError
    from storage.crypto import CryptoError

    try:
        return load_ca(_config(ctx))
    except (PkiError, CryptoError) as exc:
        fail(str(exc))


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _save(
    issued: IssuedCertificate,
    out: Path,
    stem: str,
    passphrase: bytes | None,
    *,
    quiet: bool = False,
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.crt").write_bytes(issued.chain_pem())
    _write_private(out / f"{stem}.key", issued.key_pem(passphrase))
    written = [f"{stem}.crt", f"{stem}.key"]
    if passphrase is not None:
        _write_private(out / f"{stem}.p12", issued.pkcs12(passphrase, stem.encode()))
        written.append(f"{stem}.p12")
    serial = format(issued.certificate.serial_number, "X")
    if not quiet:
        click.echo(f"issued serial {serial}: {', '.join(str(out / w) for w in written)}")
