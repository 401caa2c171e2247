"""The SASL messages of EXTERNAL, OAUTHBEARER and XOAUTH2: what clients send, what is refused,
and (Hypothesis) that any bytes give a value or a SaslSyntaxError, nothing else."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.auth import sasl
from server.auth.sasl import SaslSyntaxError

TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"


def test_external_authzid() -> None:
    assert sasl.parse_external(b"") == ""
    assert sasl.parse_external(b"jean.dupont@hygie.test") == "jean.dupont@hygie.test"
    with pytest.raises(SaslSyntaxError):
        sasl.parse_external(b"a\x00b")
    with pytest.raises(SaslSyntaxError):
        sasl.parse_external(b"\xff")


def test_oauthbearer_rfc7628_example() -> None:
    # RFC 7628 §4.1, with our token.
    message = (
        b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01"
        b"auth=Bearer " + TOKEN.encode() + b"\x01\x01"
    )
    creds = sasl.parse_oauthbearer(message)
    assert creds.authzid == "user@example.com"
    assert creds.token == TOKEN
    assert TOKEN not in repr(creds)


def test_oauthbearer_without_authzid_and_escaped_names() -> None:
    assert sasl.parse_oauthbearer(b"n,,\x01auth=Bearer abc\x01\x01").authzid == ""
    escaped = sasl.parse_oauthbearer(b"n,a=x=2Cy=3Dz,\x01auth=bearer abc\x01\x01")
    assert escaped.authzid == "x,y=z"


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"n,,",
        b"n,,\x01\x01",  # no auth
        b"n,,\x01auth=Basic abc\x01\x01",
        b"n,,\x01auth=Bearer \x01\x01",
        b"x,,\x01auth=Bearer abc\x01\x01",
        b"p=tls-unique,,\x01auth=Bearer abc\x01\x01",  # channel binding: not offered
        b"n,a=bad=name,\x01auth=Bearer abc\x01\x01",
        b"n,,\x01auth=Bearer abc",  # no final kvsep
        b"n,,\x01noequals\x01\x01",
    ],
)
def test_malformed_oauthbearer(message: bytes) -> None:
    with pytest.raises(SaslSyntaxError):
        sasl.parse_oauthbearer(message)


def test_xoauth2() -> None:
    creds = sasl.parse_xoauth2(
        b"user=claire@hygie.test\x01auth=Bearer " + TOKEN.encode() + b"\x01\x01"
    )
    assert (creds.authzid, creds.token) == ("claire@hygie.test", TOKEN)
    for bad in (b"", b"user=x\x01\x01", b"auth=Bearer t\x01\x01", b"user=x\x01auth=t\x01\x01"):
        with pytest.raises(SaslSyntaxError):
            sasl.parse_xoauth2(bad)


def test_oauth_error_challenge_is_rfc7628_json() -> None:
    body = json.loads(sasl.oauth_error(sasl.OAUTHBEARER))
    assert body == {"status": "invalid_token", "schemes": "bearer"}
    assert json.loads(sasl.oauth_error(sasl.XOAUTH2))["status"] == "401"


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_raise_syntax_error(data: bytes) -> None:
    for parse in (sasl.parse_external, sasl.parse_oauthbearer, sasl.parse_xoauth2):
        try:
            parse(data)
        except SaslSyntaxError:
            pass
