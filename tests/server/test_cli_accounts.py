"""`hygie user add|bind|show`, `hygie token issue`, `hygie dkim record`, `hygie queue` and
`hygie audit` on a fresh data directory."""

from __future__ import annotations

import json
from pathlib import Path

import jwt
import pytest
from click.testing import CliRunner

from server.cli.main import main


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("accounts") / "data"
    result = CliRunner().invoke(main, ["--data", str(d), "init", "--domain", "hygie.test"])
    assert result.exit_code == 0, result.output
    return d


def run(data: Path, *args: str, stdin: str | None = None, code: int = 0) -> str:
    result = CliRunner().invoke(main, ["--data", str(data), *args], input=stdin)
    assert result.exit_code == code, result.output
    return result.output


def test_patient_addresses_need_a_valid_ins(data: Path) -> None:
    out = run(data, "user", "add", "279035121518988@patient.hygie.test", "--password-stdin",
              stdin="password-123\n", code=1)  # fmt: skip
    assert "key is wrong" in out
    run(data, "user", "add", "279035121518989@patient.hygie.test", "--password-stdin",
        stdin="password-123\n")  # fmt: skip


def test_bind_and_show(data: Path) -> None:
    run(data, "user", "add", "jeanne@hygie.test", "--password-stdin", stdin="password-123\n")
    assert "now accepts idnat 810001234567" in run(
        data, "user", "bind", "jeanne@hygie.test", "--idnat", "810001234567"
    )
    shown = run(data, "user", "show", "jeanne@hygie.test")
    assert "idnat:" in shown and "810001234567" in shown
    out = run(data, "user", "bind", "jeanne@hygie.test", code=1)
    assert "exactly one of" in out
    assert "account.bind" in run(data, "audit")


def test_token_issue_is_a_jwt_of_the_dev_issuer(data: Path) -> None:
    token = run(data, "token", "issue", "jeanne@hygie.test", "--ttl", "60").strip()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == "jeanne@hygie.test" and claims["aud"] == "hygie"
    assert claims["exp"] - claims["iat"] == 60
    jwks = json.loads((data / "oauth" / "jwks.json").read_text())
    assert jwt.get_unverified_header(token)["kid"] == jwks["keys"][0]["kid"]
    assert "--ttl" in run(data, "token", "issue", "x@hygie.test", "--ttl", "0", code=1)


def test_dkim_record_and_queue(data: Path) -> None:
    record = run(data, "dkim", "record", "hygie.test")
    assert record.startswith('hygie._domainkey.hygie.test. IN TXT "v=DKIM1; k=rsa; p=')
    assert "no DKIM key" in run(data, "dkim", "record", "autre.test", code=1)
    assert "the queue is empty" in run(data, "queue", "list")
    assert "give recipient ids" in run(data, "queue", "retry", code=1)
    assert "no such queued recipient" in run(data, "queue", "delete", "42", code=1)
