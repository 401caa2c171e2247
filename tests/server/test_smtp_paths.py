"""MAIL/RCPT paths: the fast reading of plain ``<local@domain>`` paths gives what aiosmtpd's
own parser gives, for any input."""

from __future__ import annotations

from collections.abc import Callable

from aiosmtpd.smtp import SMTP
from hypothesis import given, settings
from hypothesis import strategies as st

from server.smtp.submission import HygieSMTP


def parser(limit: int = 0) -> HygieSMTP:
    server = object.__new__(HygieSMTP)  # only _getaddr is used: no connection needed
    server.local_part_limit = limit
    return server


def outcome(parse: Callable[[str], object], arg: str) -> object:
    try:
        return parse(arg)
    except Exception as exc:  # aiosmtpd's parser raises on some inputs ("<"): same either way
        return type(exc)


def both(arg: str, limit: int = 0) -> tuple[object, object]:
    server = parser(limit)
    return outcome(server._getaddr, arg), outcome(lambda a: SMTP._getaddr(server, a), arg)


def test_plain_paths_and_their_parameters() -> None:
    for arg in [
        "<a@b>",
        "<jean.dupont@hygie.test> SIZE=10240 BODY=8BITMIME",
        "<a@b>SIZE=1",
        "<x+tag@sub.example.fr>   ",
        "<a@b> (comment) SIZE=1",
        '<"quoted local"@b>',
        "<a@[192.0.2.1]>",
        "<>",
        "a@b",
        "<a..b@c>",
        "<.a@c>",
        "<a@b",
        "<é@b>",
    ]:
        fast, slow = both(arg)
        assert fast == slow, arg


def test_the_local_part_limit_still_applies() -> None:
    assert both("<abcdef@b>", limit=5) == ((None, None), (None, None))
    assert both("<abcde@b>", limit=5)[0] == ("abcde@b", "")


@settings(max_examples=400)
@given(
    st.text(alphabet='<>@.a-Z9 \t()"[]\\+é,;:', max_size=30),
    st.sampled_from([0, 3, 64]),
)
def test_any_input_reads_the_same(arg: str, limit: int) -> None:
    fast, slow = both(arg, limit)
    assert fast == slow
