"""``hygie serve`` for the dialogue and interoperability tests: one per test module, started
from a data directory prepared once per session (``hygie init`` and a pool of accounts), so a
module pays for a copy and a start, not for an init and a dozen ``hygie user add``."""

from __future__ import annotations

import atexit
import functools
import itertools
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from bench.harness import ServerProcess

PASSWORD = "dialogue-password-1"
POOL = 24  # the most accounts one module uses; more are added (slowly) on demand
# Failed logins are part of several scripts; the default throttle (10 a minute per client
# address) would turn later tests' logins into NO [UNAVAILABLE].
BASE_ENV = {"HYGIE_AUTH_MAX_FAILURES_PER_MINUTE": "100000"}


@dataclass(frozen=True)
class Account:
    address: str
    password: str = PASSWORD


def pool_address(i: int) -> str:
    return f"user{i:02d}@hygie.test"


def prepare_template() -> Path:
    """A data directory with ``POOL`` accounts, each with its default mailboxes."""
    base = Path(tempfile.mkdtemp(prefix="hygie-template-"))
    template = ServerProcess(base_dir=base)
    template.init()
    from server.cli.main import main  # the documented door: ``hygie user add``, run in-process

    runner = CliRunner()
    for i in range(1, POOL + 1):
        args = ["--data", str(template.data_dir), "user", "add", pool_address(i)]
        result = runner.invoke(main, [*args, "--password-stdin"], input=PASSWORD + "\n")
        assert result.exit_code == 0, result.output
    return base


@functools.cache
def shared_template() -> Path:
    """:func:`prepare_template` once per test session, for every package that needs it."""
    base = prepare_template()
    atexit.register(shutil.rmtree, base, ignore_errors=True)
    return base


class PreparedServer(ServerProcess):
    """A :class:`ServerProcess` whose data directory is a copy of the prepared template."""

    def __init__(self, template: Path, env: Mapping[str, str] | None = None) -> None:
        super().__init__(env={**BASE_ENV, **(env or {})})
        self.template = template
        self._pool = (Account(pool_address(i)) for i in itertools.count(1))
        self._extra = (Account(f"extra{i:02d}@hygie.test") for i in itertools.count(1))

    def init(self) -> None:
        shutil.copytree(self.template / "data", self.data_dir)
        self._initialised = True

    def account(self) -> Account:
        """An account no other test of this server has used."""
        account = next(self._pool)
        if int(account.address[4:6]) <= POOL:
            return account
        extra = next(self._extra)
        self.add_user(extra.address, extra.password)
        return extra


def running_server(
    template: Path, env: Mapping[str, str] | None = None
) -> Iterator[PreparedServer]:
    server = PreparedServer(template, env)
    try:
        server.start()
        yield server
    finally:
        server.close()
