"""The command/state table (RFC 9051 §3, §6) and the TLS requirements."""

from __future__ import annotations

import pytest

from server.imap.proto import State, is_allowed, requires_tls
from server.imap.proto import commands as c
from server.imap.proto.commands import COMMAND_NAMES
from server.imap.proto.states import ALLOWED


@pytest.mark.parametrize(
    ("state", "allowed", "refused"),
    [
        (State.NOT_AUTHENTICATED, ["CAPABILITY", "NOOP", "LOGOUT", "ID", "STARTTLS", "LOGIN",
                                   "AUTHENTICATE"], ["SELECT", "FETCH", "ENABLE", "IDLE"]),
        (State.AUTHENTICATED, ["SELECT", "EXAMINE", "LIST", "ENABLE", "IDLE", "APPEND", "NOOP"],
         ["LOGIN", "FETCH", "EXPUNGE", "CLOSE", "STARTTLS"]),
        (State.SELECTED, ["FETCH", "STORE", "SEARCH", "EXPUNGE", "MOVE", "CLOSE", "SELECT", "IDLE"],
         ["LOGIN", "AUTHENTICATE", "ENABLE"]),
        (State.LOGOUT, [], ["NOOP", "LOGOUT"]),
    ],
)  # fmt: skip
def test_state_table(state: State, allowed: list[str], refused: list[str]) -> None:
    for name in allowed:
        assert is_allowed(state, name), name
    for name in refused:
        assert not is_allowed(state, name), name


def test_every_parsed_command_is_in_the_table() -> None:
    named = set().union(*ALLOWED.values())
    assert COMMAND_NAMES - {"UID"} == named


def test_command_objects() -> None:
    assert is_allowed(State.SELECTED, c.Fetch("a", uid=True))
    assert not is_allowed(State.NOT_AUTHENTICATED, c.Fetch("a"))


def test_tls_requirements() -> None:
    assert requires_tls(c.Login("a", "u", "p"))
    assert requires_tls(c.Authenticate("a", "PLAIN"))
    assert not requires_tls(c.Authenticate("a", "EXTERNAL"))
    assert not requires_tls(c.Capability("a"))
