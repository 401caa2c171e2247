"""What every command group of ``hygie`` shares: the one-line error and exit, running a
coroutine with the expected errors turned into that line, the configuration of ``--data``,
and a started database."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from pki.errors import PkiError
from server.config import Config, ConfigError, load_config
from storage.accounts import AccountError
from storage.blobs import open_blob_store
from storage.crypto import CryptoError
from storage.db import Database

T = TypeVar("T")


class CliError(Exception):
    pass


def fail(message: str) -> NoReturn:
    click.echo(f"hygie: error: {message}", err=True)
    sys.exit(1)


def run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except (CliError, ConfigError, AccountError, PkiError, CryptoError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}")


def _config(ctx: click.Context) -> Config:
    data: Path = ctx.obj["data"]
    try:
        return load_config(data)
    except ConfigError as exc:
        fail(str(exc))


async def _with_db(config: Config) -> Database:
    blobs = open_blob_store(config.storage.blob_store, config.path(config.storage.blob_dir))
    db = Database(config.database_url, blobs)
    await db.start()
    return db
