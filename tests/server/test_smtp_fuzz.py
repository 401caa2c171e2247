"""Seeded property tests of what submission parses (issue 17): the header reader that IMAP and
the From rules share, the From rules, the AUTH initial response, the MAIL/RCPT arguments.

Any input gives a value or the module's own refusal, never another exception; and what IMAP
shows of an accepted header is exactly what the From rules checked. Seeded (``@seed``, no
example database) so every run, here and in CI, tries the same inputs; the dialogue fuzz
against a real server is in ``tests/e2e/test_smtp_fuzz.py``.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from server.delivery import from_rules
from server.delivery.trace import Trace, new_queue_id, received_field
from server.imap.proto.message import analyze, decode_words, read_header
from server.smtp import submission
from server.smtp.submission import HygieSMTP, _take_params, decode_initial_response

# What submission itself uses: its DSN parameter parser, and the pipeline's stamping that
# puts Received: on top before the message is read.
dsn = submission.dsn


def stamp(raw: bytes, trace: Trace) -> bytes:
    return received_field(trace, new_queue_id()) + raw


SEED = 17
FUZZ = settings(
    max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
OWN = "jean.dupont@hygie.test"
TRACE = Trace("client.test", "127.0.0.1", "ESMTPSA", "TLSv1.3 TLS_AES_256_GCM_SHA384", "mx")

# Pieces of header sections: field names as written (obsolete spacing, case, look-alikes),
# address-list values (display names, encoded words, groups, comments, routes), folding.
NAMES = st.sampled_from(
    [
        "From",
        "FROM",
        "from",
        "From ",
        "From\t",
        " From",
        "Fr om",
        "From\x00",
        "Sender",
        "Sender ",
        "Reply-To",
        "reply-to\t",
        "Resent-From",
        "Resent-Sender",
        "Resent-To",
        "To",
        "Subject",
        "X-From",
        "From:From",
        "",
        "Received",
    ]
)
ADDRESSES = st.sampled_from(
    [
        OWN,
        "JEAN.DUPONT@HYGIE.TEST",
        "claire.martin@hygie.test",
        "paul@example.org",
        "jean.dupont",
        "@hygie.test",
        "jean dupont@hygie.test",
        '"jean"@hygie.test',
        "",
    ]
)
DISPLAY = st.sampled_from(
    [
        "",
        "Jean Dupont",
        '"Dupont, Jean"',
        '"claire.martin@hygie.test"',
        "claire.martin@hygie.test",
        "=?utf-8?q?claire.martin=40hygie.test?=",
        "=?utf-8?b?Y2xhaXJlQGh5Z2llLnRlc3Q=?=",
        "=?x-unknown?q?claire=40x.y?=",
        "=?utf-8?q?Dr_Jean?=",
        '"' + OWN + '"',
        "Cl\u00e9ment",
        '"\\"quoted\\""',
        "=?utf-8?q?claire.martin=EF=BC=A0hygie.test?=",
        "(comment)",
        "a.b",
    ]
)
SHAPES = st.sampled_from(
    [
        "{a}",
        "<{a}>",
        "{d} <{a}>",
        "{a} ({d})",
        "{d}:{a};",
        "{d}: ;",
        "<@route:{a}>",
        "{d} <{a}",
        "{a}, {a}",
        "{d}",
    ]
)
JUNK = st.sampled_from(
    [
        "",
        " ",
        "\t",
        "\r\n ",
        "\r\n\t",
        "(",
        ")",
        '"',
        "\\",
        "<",
        ">",
        ",",
        ";",
        ":",
        "@",
        "=?",
        "?=",
        "\u00ff",
        "\x00",
    ]
)


@st.composite
def field_values(draw: Any) -> str:
    shape = draw(SHAPES)
    text = shape.format(a=draw(ADDRESSES), d=draw(DISPLAY))
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(JUNK) + text[at:]
    return text


@st.composite
def headers(draw: Any) -> bytes:
    """A header section (CRLF line ends only, as submission accepts) and a body."""
    lines = []
    for _ in range(draw(st.integers(0, 6))):
        lines.append(
            f"{draw(NAMES)}:{draw(st.sampled_from(['', ' ', '  ', chr(9)]))}{draw(field_values())}"
        )
    if draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from([" x", "\tFrom: y"])))
    head = only_crlf("\r\n".join(lines).encode())
    while b"\r\n\r\n" in head:  # the header section ends at the first empty line
        head = head.replace(b"\r\n\r\n", b"\r\n")
    return head + b"\r\n\r\nBonjour.\r\n"


def only_crlf(data: bytes) -> bytes:
    """The bytes with every line end a CRLF (bare CR and LF are refused before the check)."""
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


# -- the header reader ------------------------------------------------------------------------


@seed(SEED)
@FUZZ
@given(st.binary(max_size=600))
def test_any_bytes_read_as_a_header(raw: bytes) -> None:
    header = read_header(raw)
    assert 0 <= header.body_start <= len(raw)
    header.envelope()
    for name, _ in header.fields:
        header.values(name)


@seed(SEED)
@FUZZ
@given(st.one_of(headers(), st.binary(max_size=400).map(only_crlf)))
def test_the_stored_message_reads_as_the_checked_one(raw: bytes) -> None:
    """Submission checks the message before putting ``Received:`` on top; IMAP reads the
    stamped one. Both readings agree on every named field, so on ENVELOPE."""
    stamped = stamp(raw, TRACE)
    before = [(n, f) for n, f in read_header(raw).fields if n]
    after = [(n, f) for n, f in read_header(stamped).fields if n]
    assert after[0][0] == "received"
    assert after[1:] == before
    assert analyze(stamped)["envelope"] == read_header(raw).envelope()


# -- the From rules -----------------------------------------------------------------------------


def _mailboxes(addresses: list[list[str | None]] | None) -> list[str]:
    return [f"{m}@{h}".lower() for _, _, m, h in addresses or [] if h is not None]


@seed(SEED)
@FUZZ
@given(headers())
def test_the_from_rules_refuse_or_claim_and_what_imap_shows_was_checked(raw: bytes) -> None:
    header = read_header(raw)
    if from_rules.needs_from(header):
        raw = from_rules.with_from(raw, OWN)
        header = read_header(raw)
    try:
        claims = from_rules.claims(header)
    except from_rules.Refused as refused:
        assert refused.reply.startswith("550 5.7.1 ")
        return
    claimed = {c.address for c in claims}
    if claimed != {OWN}:
        return  # the directory decides on the others; jean may only use his own
    # Accepted: ENVELOPE and SEARCH FROM show jean's address only, under no posing name.
    envelope = analyze(stamp(raw, TRACE))["envelope"]
    assert len(header.values("from")) == 1
    for field in ("from", "sender"):
        assert set(_mailboxes(envelope[field])) == {OWN}, envelope[field]
    for field in ("from", "sender", "reply-to"):
        for name, _, mailbox, host in envelope[field] or []:
            shown = decode_words(name).casefold().replace(f"{mailbox}@{host}".casefold(), "")
            assert "@" not in shown and "＠" not in shown, (field, name)


# -- what AUTH and MAIL/RCPT carry ------------------------------------------------------------

# aiosmtpd decodes a command's argument as UTF-8 with surrogate escapes.
ARGUMENTS = st.binary(max_size=120).map(lambda b: b.decode("utf-8", "surrogateescape"))


@seed(SEED)
@FUZZ
@given(st.one_of(ARGUMENTS, st.text(alphabet="AQIDBGxh+/=\u00ee", max_size=40)))
def test_an_initial_response_is_base64_or_refused(arg: str) -> None:
    decoded = decode_initial_response(arg)
    assert decoded is None or isinstance(decoded, bytes)


def _getaddr(arg: str) -> object:
    server = object.__new__(HygieSMTP)
    server.local_part_limit = 0
    try:
        return server._getaddr(arg)
    except Exception as exc:  # aiosmtpd's own parser: the hook turns these into a 501
        return type(exc)


@seed(SEED)
@FUZZ
@given(ARGUMENTS)
def test_mail_and_rcpt_arguments_give_a_path_and_parameters_or_a_syntax_error(arg: str) -> None:
    for names in (frozenset({"RET", "ENVID"}), frozenset({"NOTIFY", "ORCPT"})):
        rest, params = _take_params(arg, names)
        assert set(params) <= names
        _getaddr(rest or "")
        try:
            if "RET" in names:
                dsn.parse_mail_params(params)
            else:
                dsn.parse_rcpt_params(params)
        except dsn.DsnSyntaxError:
            pass
