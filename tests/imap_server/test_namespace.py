"""NAMESPACE (RFC 2342, RFC 9051 §6.3.10): one personal namespace, no prefix, ``/``."""

from __future__ import annotations

from tests.imap_server.conftest import Connect
from tests.imap_server.dialogue import Script


def test_personal_namespace_only(tc: Script) -> None:
    tc.C("a1 NAMESPACE")
    tc.S('* NAMESPACE (("" "/")) NIL NIL', "a1 OK …")


def test_not_before_login(connect: Connect) -> None:
    tc = connect()
    tc.S("* OK …")
    tc.C("a1 NAMESPACE")
    tc.S("a1 BAD …", absent=["* NAMESPACE …"])
