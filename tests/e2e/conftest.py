"""One ``hygie serve`` per database for the whole e2e session (``server``); modules that need
a server of their own (at rest, durability, SIGTERM) start one with ``start_server``. The
patient pages' modules drive Debian's Chromium (``browser``, one per module)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.harness import ServerProcess
from tests.e2e.people import EVERYONE, users
from tests.support.servers import DATABASES, start_server, stop_server
from tests.support.tools import ensure_debian_tool

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session", params=DATABASES)
def database(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def server(request: pytest.FixtureRequest, database: str) -> Iterator[ServerProcess]:
    """The shared server: every account of ``people``, messages up to 8 MiB."""
    srv = start_server(request, database, users(*EVERYONE))
    yield srv
    stop_server(srv)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    # DejaVu is what the reference screenshot was taken with (fontconfig's default font).
    executable = ensure_debian_tool("chromium", extra_packages=["fonts-dejavu-core"])
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield chromium
        chromium.close()
