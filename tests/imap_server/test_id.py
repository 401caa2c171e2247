"""ID (RFC 2971): the server answers with its own identification, in any state."""

from __future__ import annotations

from tests.imap_server.conftest import Connect
from tests.imap_server.dialogue import Script


def test_before_login_with_parameters(connect: Connect) -> None:
    tc = connect()
    tc.S("* OK …")
    tc.C('a1 ID ("name" "dialogue" "version" "1.0")')
    tc.S("* ID {:\\(.*\\)|NIL}", "a1 OK …")


def test_nil_after_login(tc: Script) -> None:
    tc.C("a1 ID NIL")
    tc.S("* ID {:\\(.*\\)|NIL}", "a1 OK …")


def test_malformed_parameter_list(tc: Script) -> None:
    # RFC 2971 §3.3: the list holds string pairs; an odd count is a syntax error.
    tc.C('a1 ID ("name")')
    tc.S("a1 BAD …")
    tc.C("a2 NOOP")
    tc.S("a2 OK …")
