"""Bad input on the patient pages and the catalogue API (review of issues 10 and 11), as an
HTTP client meets them on a real socket, on SQLite and PostgreSQL: every answer is a precise
4xx, never the 500 of an exception (deep JSON, "²" or a 20-digit number as a row id), and the
pages' messages are escaped once (no ``&amp;#x27;`` shown to the patient)."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import http.client
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlencode

import pytest
from sqlalchemy import update

from catalogue.consent import Consents
from catalogue.registry import Catalogue
from server.auth.authenticator import Authenticator
from server.auth.patient import PatientIssuer, PatientSignIn, PatientTokens
from server.config import AuthSection, Config
from server.http.app import application
from server.http.catalogue import CatalogueApi
from server.http.espace import espace_web
from server.http.listener import HttpsServer
from storage.accounts import AccountInfo, create_account, hash_password
from storage.blobs import open_blob_store
from storage.crypto import MasterKey
from storage.db import Database, migrate
from storage.spaces import SpaceStore
from storage.transactions import ACCOUNTS
from tests.server.spaces_support import config, ins

PASSWORD = "mot-de-passe-patient-1"


@dataclass
class Site:
    port: int
    token: str  # a two-factor patient token, as /espace/token gives
    patient: AccountInfo
    spaces: SpaceStore


@functools.cache
def _password_hash() -> str:
    return hash_password(PASSWORD)


@pytest.fixture()
async def site(database_url: str, tmp_path: Path) -> AsyncIterator[Site]:
    await migrate(database_url)
    cfg: Config = replace(config(tmp_path), auth=AuthSection(failure_delay_seconds=0))
    db = Database(database_url, open_blob_store("database", tmp_path / "b"))
    await db.start()
    master = MasterKey.create(tmp_path / "master.key")
    spaces = SpaceStore(db, master)
    auth = Authenticator(db, cfg.auth)
    issuer = PatientIssuer(cfg)
    signin = PatientSignIn(cfg, db, spaces, auth, issuer)
    auth.patient_tokens = PatientTokens(cfg, issuer, signin.sessions)
    patient = await create_account(db, master, f"{ins(1)}@patient.hygie.test", None)
    await db.writer.run(lambda conn: conn.execute(
        update(ACCOUNTS).values(password_hash=_password_hash())))  # fmt: skip
    web = espace_web(cfg, spaces, signin)
    api = CatalogueApi(Consents(db, Catalogue(db, tmp_path / "pki")), auth)
    server = await HttpsServer.bind(application([*web.routes(), *api.routes()]), "127.0.0.1", 0,
                                    tls=None)  # fmt: skip
    await server.start()
    try:
        yield Site(server.port, await signin.token(patient), patient, spaces)
    finally:
        await server.stop()
        await db.close()


def ask(
    port: int, method: str, path: str, body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        reply = connection.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    finally:
        connection.close()


async def call(site: Site, method: str, path: str, body: bytes | None = None,
               **headers: str) -> tuple[int, bytes]:  # fmt: skip
    wanted = {k.replace("_", "-"): v for k, v in headers.items()}
    status, _, answer = await asyncio.to_thread(ask, site.port, method, path, body, wanted)
    return status, answer


async def test_deeply_nested_json_is_a_refusal_not_a_500(site: Site) -> None:
    deep = b"[" * 30_000 + b"]" * 30_000  # under the 64 KiB body limit
    status, body = await call(site, "POST", "/espace/token", deep,
                              content_type="application/json")  # fmt: skip
    assert status == 401 and json.loads(body)["error"] == "invalid_grant"
    bearer = f"Bearer {site.token}"
    status, body = await call(site, "POST", "/espace/api/app-passwords", deep,
                              content_type="application/json", authorization=bearer)  # fmt: skip
    assert status == 400 and "name" in json.loads(body)["error"]
    status, body = await call(site, "POST", "/catalogue/connections", deep[29_000:-29_000],
                              content_type="application/json", authorization=bearer)  # fmt: skip
    assert status == 400


async def test_row_ids_that_are_not_plain_64_bit_numbers_are_404(site: Site) -> None:
    bearer = f"Bearer {site.token}"
    for ident in ("%C2%B2", "99999999999999999999"):  # "²" passes str.isdigit; int() refuses
        status, body = await call(site, "DELETE", f"/espace/api/app-passwords/{ident}",
                                  authorization=bearer)  # fmt: skip
        assert (status, json.loads(body)) == (404, {"error": "no such app password"})
        status, body = await call(site, "GET", f"/catalogue/apps/{ident}", authorization=bearer)
        assert (status, json.loads(body)) == (404, {"error": "no such referenced app"})
        status, body = await call(site, "DELETE", f"/catalogue/connections/{ident}",
                                  authorization=bearer)  # fmt: skip
        assert status == 404
    connect = json.dumps({"app": 10**20, "scopes": ["messages"],
                          "expiresAt": "2030-01-01T00:00:00Z"}).encode()  # fmt: skip
    status, body = await call(site, "POST", "/catalogue/connections", connect,
                              content_type="application/json", authorization=bearer)  # fmt: skip
    assert (status, json.loads(body)) == (404, {"error": "no such app"})
    # A live app password stays live after those refusals.
    assert [label for _, label, _ in await site.spaces.app_passwords(site.patient.id)] == []
    await site.spaces.app_password_create(site.patient.id, "Thunderbird", dt.datetime.now(dt.UTC))
    status, _ = await call(site, "DELETE", "/espace/api/app-passwords/99999999999999999999",
                           authorization=bearer)  # fmt: skip
    assert status == 404
    assert [label for _, label, _ in await site.spaces.app_passwords(site.patient.id)] == [
        "Thunderbird"
    ]


def form_token(page: bytes) -> str:
    """The CSRF token of the page's forms (bound to the cookie the page set)."""
    found = re.search(rb'name="csrf" value="([^"]+)"', page)
    assert found is not None
    return found[1].decode()


async def test_page_messages_are_escaped_once(site: Site) -> None:
    await site.spaces.totp_begin(site.patient.id, "JBSWY3DPEHPK3PXP", dt.datetime.now(dt.UTC))
    await site.spaces.totp_use_step(site.patient.id, 1, confirm=True)  # enrolled
    status, headers, page = await asyncio.to_thread(ask, site.port, "GET", "/espace/connexion")
    csrf = re.search(r"hygie_csrf=([^;]+)", headers["set-cookie"])
    assert status == 200 and csrf is not None
    form = urlencode({"csrf": form_token(page), "lang": "fr", "address": site.patient.address,
                      "password": PASSWORD, "code": ""}).encode()  # fmt: skip
    status, _, page = await asyncio.to_thread(
        ask, site.port, "POST", "/espace/connexion", form,
        {"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"hygie_csrf={csrf[1]}"},
    )  # fmt: skip
    text = page.decode()
    assert status == 400
    # "Saisissez le code de votre application d'authentification." as the browser shows it.
    assert "application d&#39;authentification" in text and "&amp;#39;" not in text


async def test_a_wrong_activation_code_costs_no_password_hash(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Anyone may POST the activation form: a wrong code is refused before the new password
    is hashed (argon2id: 64 MiB and a tenth of a second each), so that such requests cannot
    fill the worker threads that IMAP and SMTP logins share."""
    import server.http.espace.pages as espace

    hashed: list[str] = []

    def counting(password: str) -> str:
        hashed.append(password)
        return _password_hash()

    monkeypatch.setattr(espace, "hash_password", counting)
    status, headers, page = await asyncio.to_thread(ask, site.port, "GET", "/espace/activation")
    csrf = re.search(r"hygie_csrf=([^;]+)", headers["set-cookie"])
    assert status == 200 and csrf is not None
    form = urlencode(
        {
            "csrf": form_token(page),
            "lang": "en",
            "code": "ABCDEFGHJK",
            "password": "a-new-password-1",
            "password2": "a-new-password-1",
        }
    ).encode()
    status, _, page = await asyncio.to_thread(
        ask, site.port, "POST", "/espace/activation", form,
        {"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"hygie_csrf={csrf[1]}"},
    )  # fmt: skip
    assert status == 400 and b"This code is unknown" in page
    assert hashed == []
