"""Every reply carries an enhanced status code (RFC 3463, RFC 2034)."""

from __future__ import annotations

import pytest

from server.delivery import replies as S


@pytest.mark.parametrize(
    ("builtin", "ours"),
    [
        ("530 Must issue a STARTTLS command first", S.S530_STARTTLS_FIRST),
        ("552 Error: Too much mail data", S.S552_TOO_BIG),
        ("552 Error: message size exceeds fixed maximum message size", S.S552_TOO_BIG),
        ("500 Line too long (see RFC5321 4.5.3.1.6)", S.S500_LINE_TOO_LONG),
        (
            '500 Error: command "FOO" not recognized',
            '500 5.5.2 Error: command "FOO" not recognized',
        ),
        ("501 Syntax: MAIL FROM: <address>", "501 5.5.4 Syntax: MAIL FROM: <address>"),
        ("250 2.1.5 Recipient OK", "250 2.1.5 Recipient OK"),
        ("250-SIZE 1000", "250-SIZE 1000"),
    ],
)
def test_builtin_replies_get_enhanced_codes(builtin: str, ours: str) -> None:
    assert S.enhance(builtin) == ours


def test_every_table_reply_has_an_enhanced_code() -> None:
    for name in dir(S):
        value = getattr(S, name)
        if name.startswith("S") and name[1:4].isdigit() and not name.startswith(("S220", "S354")):
            assert S._ENHANCED.match(value), name
