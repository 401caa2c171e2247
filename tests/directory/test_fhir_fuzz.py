"""Any string as the value of any FHIR search parameter gets a 200 or a 400, never a 500
(issue 26), on SQLite and on PostgreSQL; heavy searches beyond two at once get a 429.

The requests go to the HTTPS application itself (`server.http.app.application`, whose failure
handling turns a handler's exception into the 500 a client would see) through httpx's ASGI
transport, in this process, on a directory holding the
edge-case fixtures, so that Hypothesis can try hundreds of values in seconds.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from directory import fhir
from directory.extracts import MSSANTE, PS_LIBREACCES
from directory.fhir import RESOURCES
from directory.load import import_extract
from server.http.app import application
from server.http.fhir import fhir_routes
from storage.blobs import open_blob_store
from storage.db import Database, migrate
from tests.directory.conftest import MSS_EDGE, PS_EDGE
from tests.support.pgcluster import PgCluster
from tests.support.servers import DATABASES

PARAMETERS = [
    "name", "family", "family:exact", "given", "identifier", "mailbox-mss",
    "mailbox-mss:contains", "mailbox-mss:exact", "mailbox-mss-type", "address-city",
    "address-postalcode", "_lastUpdated", "_count", "_offset", "_include",
]  # fmt: skip

#: Any text, and text made of what the parameters' grammars are made of (digits, dashes,
#: date separators, prefixes, commas, bars, escapes), where the parsers' edges are.
PIECES = ["0", "9", "-", ":", "T", "Z", "+", ".", ",", "|", "%", "_", "\\", "'", '"', "*",
          "(", "gt", "eq", "sa", "2024", "9" * 20, "²", "٣", "é", "Я", "\x00", " "]  # fmt: skip
VALUES = st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from(PIECES), max_size=30).map("".join),
    st.lists(st.text(max_size=12), min_size=1, max_size=25).map(",".join),
)


@dataclass
class Api:
    loop: asyncio.AbstractEventLoop
    app: Any

    async def get(self, kind: str, query: list[tuple[str, str]]) -> httpx.Response:
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="https://localhost") as client:
            return await client.get(f"/fhir/{kind}", params=query)

    def status(self, kind: str, query: list[tuple[str, str]]) -> tuple[int, bytes]:
        response = self.loop.run_until_complete(self.get(kind, query))
        return response.status_code, response.content


@pytest.fixture(scope="module", params=DATABASES)
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    folder = tmp_path_factory.mktemp("fuzz")
    cluster: PgCluster | None = None
    name = f"t_{uuid.uuid4().hex}"
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{folder / 'hygie.db'}"
    else:
        cluster = request.getfixturevalue("pg_cluster")
        url = cluster.create_database(name)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(migrate(url))
    loop.run_until_complete(import_extract(url, PS_LIBREACCES, PS_EDGE))
    loop.run_until_complete(import_extract(url, MSSANTE, MSS_EDGE))
    db = Database(url, open_blob_store("file", Path(folder) / "blobs"))
    loop.run_until_complete(db.start())
    try:
        yield Api(loop, application(fhir_routes(db)))
    finally:
        loop.run_until_complete(db.close())
        loop.close()
        if cluster is not None:
            cluster.drop_database(name)


def check(api: Api, kind: str, query: list[tuple[str, str]]) -> None:
    status, body = api.status(kind, query)
    assert status in (200, 400), (status, query, body[:300])
    if status == 400:
        assert b'"resourceType":"OperationOutcome"' in body


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("parameter", PARAMETERS)
@FUZZ
@given(kind=st.sampled_from(RESOURCES), value=VALUES)
def test_any_value_of_one_parameter(api: Api, parameter: str, kind: str, value: str) -> None:
    check(api, kind, [(parameter, value)])


@FUZZ
@given(
    kind=st.sampled_from(RESOURCES),
    query=st.lists(st.tuples(st.sampled_from(PARAMETERS), VALUES), min_size=1, max_size=6),
)
def test_any_combination_of_parameters(api: Api, kind: str, query: list[tuple[str, str]]) -> None:
    check(api, kind, query)


def test_heavy_searches_beyond_two_at_once_wait_then_get_a_429(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two heavy searches hold the process's places: a third waits ``HEAVY_WAIT`` seconds,
    then gets a 429 with Retry-After; a light search is served meanwhile."""
    monkeypatch.setattr(fhir, "HEAVY_WAIT", 0.3)
    heavy = [("family", ",".join("abcdefghij"))]

    async def scenario() -> None:
        held = [await fhir._heavy_place(), await fhir._heavy_place()]
        try:
            started = time.monotonic()
            response = await api.get("Practitioner", heavy)
            assert response.status_code == 429 and time.monotonic() - started >= 0.3
            assert response.headers["Retry-After"] == "1"
            assert b'"code":"throttled"' in response.content
            light = await api.get("Practitioner", [("family", "dupont")])
            assert light.status_code == 200
        finally:
            for places in held:
                places.release()
        assert (await api.get("Practitioner", heavy)).status_code == 200

    api.loop.run_until_complete(scenario())
