"""Identities bound to accounts (certificate and token login) and the audit log, on SQLite and
PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage import audit
from storage.accounts import (
    IDNAT,
    SUBJECT,
    AccountError,
    accounts_for_identity,
    bind_identity,
    create_account,
    identities_of,
)
from storage.blobs import open_blob_store
from storage.crypto import MasterKey
from storage.db import Database, migrate

IDNAT_PIERRE = "810001234567"
ORG = "CN=Secretariat,OU=373282932000074,O=CH Hygie,C=FR"


@pytest.fixture()
async def db(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[Database, MasterKey]]:
    await migrate(database_url)
    database = Database(database_url, open_blob_store("database", tmp_path / "b"))
    await database.start()
    try:
        yield database, MasterKey.create(tmp_path / "master.key")
    finally:
        await database.close()


async def test_bindings(db: tuple[Database, MasterKey]) -> None:
    database, master = db
    pierre = await create_account(database, master, "pierre@hygie.test", None)
    cabinet = await create_account(database, master, "cabinet@hygie.test", None)
    await create_account(database, master, "secretariat@hygie.test", None)
    assert await accounts_for_identity(database, IDNAT, IDNAT_PIERRE) == []
    await bind_identity(database, "Pierre@hygie.test", IDNAT, IDNAT_PIERRE)
    await bind_identity(database, "pierre@hygie.test", IDNAT, IDNAT_PIERRE)  # idempotent
    await bind_identity(database, "cabinet@hygie.test", IDNAT, IDNAT_PIERRE)
    await bind_identity(database, "secretariat@hygie.test", SUBJECT, ORG)
    found = await accounts_for_identity(database, IDNAT, IDNAT_PIERRE)
    assert [a.address for a in found] == [cabinet.address, pierre.address]
    assert [a.address for a in await accounts_for_identity(database, SUBJECT, ORG)] == [
        "secretariat@hygie.test"
    ]
    # The same value under another kind names nobody.
    assert await accounts_for_identity(database, SUBJECT, IDNAT_PIERRE) == []
    assert await identities_of(database, pierre.id) == [(IDNAT, IDNAT_PIERRE)]
    with pytest.raises(AccountError, match="no such account"):
        await bind_identity(database, "nobody@hygie.test", IDNAT, IDNAT_PIERRE)
    with pytest.raises(AccountError, match="unknown identity kind"):
        await bind_identity(database, "pierre@hygie.test", "email", "x")


async def test_audit_log_is_ordered_and_filtered(db: tuple[Database, MasterKey]) -> None:
    database, _ = db
    await audit.record(database, "cli:root", "pki.issue", "certificate:AB", detail={"p": "PER"})
    await audit.record(database, "account:3", "dossier.read", "document:9", peer="10.0.0.1")
    await audit.record(database, "cli:root", "pki.revoke", "certificate:AB",
                       detail={"reason": "keyCompromise"})  # fmt: skip
    everything = await audit.entries(database)
    assert [e.action for e in everything] == ["pki.revoke", "dossier.read", "pki.issue"]
    assert everything[1].peer == "10.0.0.1" and everything[1].at.tzinfo is not None
    pki = await audit.entries(database, action_prefix="pki.")
    assert [(e.action, e.detail) for e in pki] == [
        ("pki.revoke", {"reason": "keyCompromise"}),
        ("pki.issue", {"p": "PER"}),
    ]
    assert len(await audit.entries(database, limit=1)) == 1
