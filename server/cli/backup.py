"""``hygie backup`` and ``hygie restore``: an online copy of a data directory, and a new data
directory made from one (docs/operations.md, "Backups").

A backup is two directories, because they are not kept in the same places:

- the **data** (``DEST``): the database as of one instant, the message blobs, the configuration,
  the certificates, the trust list. It is ciphertext only: every mailbox is encrypted under
  keys wrapped by the master key, which it does not hold. It goes to the backup server;
- the **keys** (``--keys DIR``): every private key of the data directory (``*.key``: the master
  key, the CA's, the TLS server's, DKIM, the OAuth issuer's). Without them the data is
  unreadable, by design; they go somewhere else (a safe, an HSM's backup, the operator's vault).
  ``--without-keys`` says explicitly that they are backed up by other means.

The database is copied while the server runs: on SQLite with SQLite's online backup API (one
consistent snapshot; writers go on meanwhile), on PostgreSQL with ``pg_dump`` (one transaction,
blobs included when ``[storage] blob_store = "database"``). The blob segments are copied after
the database snapshot: segments only grow, and a blob's bytes are durable before the row that
names it commits, so every message of the snapshot finds its bytes in the copy.

``hygie restore SRC --keys DIR --data NEW`` makes ``NEW`` (which must not exist or be empty),
loads the database (SQLite: the file; PostgreSQL: ``pg_restore`` into the empty database named
by ``--database-url``, written into ``NEW``'s configuration), and checks that the master key
opens the restored key hierarchy before it says ``restored``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import click

from server.cli.common import CliError, _config, fail

#: What ``hygie backup`` writes into DEST besides the data files.
MANIFEST = "hygie-backup.json"
SQLITE_FILE = "hygie.db"
PG_DUMP = "database.pgdump"
#: Never copied: the live database files (copied by the backup API instead) and SQLite's
#: journal files.
_SKIP = {SQLITE_FILE, f"{SQLITE_FILE}-wal", f"{SQLITE_FILE}-shm", f"{SQLITE_FILE}-journal"}


def _is_key(relative: Path) -> bool:
    return relative.suffix == ".key" or relative.parts[:1] == ("keys",)


def _files(root: Path) -> list[Path]:
    """Every regular file under ``root``, relative, in a stable order (segments last)."""
    found = [p.relative_to(root) for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
    return sorted(found, key=lambda p: (p.parts[:2] == ("blobs", "segments"), str(p)))


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    shutil.copy2(src, dst)


def _empty_target(path: Path, what: str) -> None:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise CliError(f"{what} {path} exists and is not empty")
    path.mkdir(parents=True, exist_ok=True, mode=0o700)


def _libpq_url(url: str) -> str:
    """``postgresql+asyncpg://…`` → ``postgresql://…`` (what pg_dump and pg_restore read)."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+', 1)[0]}{sep}{rest}"


def _pg_command(name: str) -> str:
    """``pg_dump``/``pg_restore`` on PATH, else from the highest installed server version."""
    found = shutil.which(name)
    if found:
        return found
    root = Path("/usr/lib/postgresql")
    versions = sorted(
        (d for d in root.iterdir() if (d / "bin" / name).is_file()),
        key=lambda d: [int(x) for x in d.name.split(".") if x.isdigit()],
    ) if root.is_dir() else []  # fmt: skip
    if not versions:
        raise CliError(f"{name} not found (install the postgresql-client package)")
    return str(versions[-1] / "bin" / name)


def _run_tool(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise CliError(
            f"{Path(cmd[0]).name} exited {proc.returncode}: {proc.stderr.strip()[-800:]}"
        )


@click.command("backup")
@click.argument("dest", type=click.Path(path_type=Path))
@click.option(
    "--keys",
    "keys_dir",
    type=click.Path(path_type=Path),
    help="Where the private keys go (kept apart from the data).",
)
@click.option("--without-keys", is_flag=True, help="Back up no key: they are kept by other means.")
@click.pass_context
def backup(ctx: click.Context, dest: Path, keys_dir: Path | None, without_keys: bool) -> None:
    """Copy the data directory while the server runs: the data to DEST, the keys to --keys."""
    if keys_dir is None and not without_keys:
        fail("say where the keys go (--keys DIR), or --without-keys if they are kept elsewhere")
    if keys_dir is not None and without_keys:
        fail("--keys and --without-keys exclude each other")
    config = _config(ctx)
    data = config.data_dir
    try:
        _empty_target(dest, "backup directory")
        if keys_dir is not None:
            _empty_target(keys_dir, "keys directory")
    except CliError as exc:
        fail(str(exc))
    started = time.time()
    postgres = bool(config.database.url) and not config.database.url.startswith("sqlite")
    try:
        # 1. The database, one snapshot.
        if postgres:
            url = _libpq_url(config.database.url)
            _run_tool([_pg_command("pg_dump"), "--format=custom", "--no-owner",
                       f"--file={dest / PG_DUMP}", f"--dbname={url}"])  # fmt: skip
        else:
            _sqlite_backup(_sqlite_path(config.database_url), dest / SQLITE_FILE)
        # 2. Every other file, segments last (after the snapshot: see the module's docstring).
        keys: list[str] = []
        copied = 0
        for relative in _files(data):
            if relative.name in _SKIP and len(relative.parts) == 1:
                continue
            if _is_key(relative):
                keys.append(str(relative))
                if keys_dir is not None:
                    _copy(data / relative, keys_dir / relative)
                continue
            try:
                _copy(data / relative, dest / relative)
            except FileNotFoundError:  # a sealed segment emptied and unlinked meanwhile
                continue
            copied += 1
    except sqlite3.Error as exc:
        fail(f"database backup failed: {exc}")
    except CliError as exc:
        fail(str(exc))
    manifest = {
        "format": 1,
        "taken_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "database": "postgresql" if postgres else "sqlite",
        "files": copied,
        "keys": sorted(keys),
        "keys_included": keys_dir is not None,
    }
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    where = f"keys in {keys_dir}" if keys_dir is not None else "no keys (--without-keys)"
    click.echo(f"backup of {data} in {dest} ({manifest['database']}, {copied} files), {where}")


def _sqlite_path(url: str) -> Path:
    return Path(url.split(":///", 1)[1])


def _sqlite_backup(source: Path, target: Path) -> None:
    """SQLite's online backup: a consistent copy while the server writes (WAL mode)."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst, pages=4096)
        finally:
            dst.close()
    finally:
        src.close()
    os.chmod(target, 0o600)


@click.command("restore")
@click.argument("source", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--keys",
    "keys_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="The keys backed up apart (hygie backup --keys).",
)
@click.option(
    "--database-url", default="", help="PostgreSQL backup: the empty database to load it into."
)
@click.pass_context
def restore(ctx: click.Context, source: Path, keys_dir: Path, database_url: str) -> None:
    """Make the data directory (--data, new or empty) from a backup SOURCE and its --keys."""
    data: Path = ctx.obj["data"]
    manifest_path = source / MANIFEST
    if not manifest_path.is_file():
        fail(f"{source} is not a backup made by hygie backup (no {MANIFEST})")
    manifest = json.loads(manifest_path.read_text())
    postgres = manifest.get("database") == "postgresql"
    if postgres and not database_url:
        fail("a PostgreSQL backup: give the empty database to load it into (--database-url)")
    missing = [k for k in manifest.get("keys", []) if not (keys_dir / k).is_file()]
    if missing:
        fail(f"keys missing from {keys_dir}: {', '.join(missing)}")
    try:
        _empty_target(data, "data directory")
    except CliError as exc:
        fail(str(exc))
    try:
        _restore_files(source, keys_dir, data, manifest)
        if postgres:
            _run_tool([_pg_command("pg_restore"), "--no-owner", "--exit-on-error",
                       f"--dbname={_libpq_url(database_url)}", str(source / PG_DUMP)])  # fmt: skip
            _set_database_url(data / "hygie.toml", database_url)
        asyncio.run(_check(ctx))
    except (CliError, OSError) as exc:
        # Nothing half-restored is left to be started by mistake.
        for child in data.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
        fail(str(exc))
    click.echo(f"restored {source} into {data} ({manifest.get('database')}, taken at "
               f"{manifest.get('taken_at')})")  # fmt: skip


def _restore_files(source: Path, keys_dir: Path, data: Path, manifest: dict[str, Any]) -> None:
    for relative in _files(source):
        if relative.name in (MANIFEST, PG_DUMP) and len(relative.parts) == 1:
            continue
        _copy(source / relative, data / relative)
    for key in manifest.get("keys", []):
        _copy(keys_dir / key, data / key)
        os.chmod(data / key, 0o600)


def _set_database_url(toml: Path, url: str) -> None:
    """Point the restored configuration at the database the backup was loaded into."""
    lines = toml.read_text().splitlines()
    section = ""
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("["):
            section = stripped
        elif section == "[database]" and stripped.startswith("url"):
            lines[i] = f"url = {json.dumps(url)}"
            break
    toml.write_text("\n".join(lines) + "\n")


async def _check(ctx: click.Context) -> None:
    """The restored keys open the restored data: each mailbox's key pair (wrapped by the
    master key) and the CA's private keys; else the wrong --keys were given."""
    from pki.errors import PkiError
    from server.cli.common import _with_db, load_ca
    from storage.accounts import list_accounts, unlock_keys
    from storage.crypto import CryptoError, MasterKey

    config = _config(ctx)
    try:
        master = MasterKey.load(config.path(config.storage.master_key_file))
        load_ca(config)
        db = await _with_db(config)
        try:
            for account in await list_accounts(db):
                await unlock_keys(db, master, account.id)
        finally:
            await db.close()
    except (CryptoError, PkiError) as exc:
        raise CliError(f"the keys do not open this backup: {exc}") from None
