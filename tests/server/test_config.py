"""hygie.toml and its HYGIE_<SECTION>_<KEY> overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.config import ConfigError, load_config, render_config


def _write(tmp_path: Path, text: str | None = None) -> Path:
    (tmp_path / "hygie.toml").write_text(text or render_config("hygie.test", "mail.hygie.test"))
    return tmp_path


def test_rendered_file_loads_with_its_defaults(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path), environ={})
    assert config.server.domains == ("hygie.test",)
    assert config.imap.tls_port == 2993
    assert config.database_url.startswith("sqlite+aiosqlite:///")
    assert config.is_local_domain("HYGIE.test")


def test_environment_overrides_every_key(tmp_path: Path) -> None:
    env = {
        "HYGIE_IMAP_TLS_PORT": "3993",
        "HYGIE_DATABASE_URL": "postgresql+asyncpg://h@127.0.0.1:5432/h",
        "HYGIE_AUTH_PASSWORD_LOGIN": "false",
        "HYGIE_SERVER_DOMAINS": "a.test, b.test",
    }
    config = load_config(_write(tmp_path), environ=env)
    assert config.imap.tls_port == 3993
    assert config.database_url == "postgresql+asyncpg://h@127.0.0.1:5432/h"
    assert config.auth.password_login is False
    assert config.server.domains == ("a.test", "b.test")


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        (None, {"HYGIE_IMAP_PORT": "abc"}, r"\[imap\] port must be an integer"),
        ("[imap]\nportt = 1\n", {}, r"unknown key \[imap\] portt"),
        ("[imapp]\n", {}, r"unknown section \[imapp\]"),
        ("[imap\n", {}, "hygie.toml"),
    ],
)
def test_bad_configuration_says_which_key(
    tmp_path: Path, text: str | None, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(_write(tmp_path, text), environ=env)


def test_missing_file_says_to_run_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"hygie --data .* init"):
        load_config(tmp_path, environ={})
