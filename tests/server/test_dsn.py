"""Delivery Status Notifications: DSN parameters (RFC 3461) and reports (RFC 3464, RFC 6522)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailformats import dsn
from mailformats.dsn import DsnMail, DsnRcpt, DsnSyntaxError, RecipientStatus

WHEN = datetime(2026, 11, 22, 20, 0, tzinfo=UTC)

ORIGINAL = (
    "Return-Path: <jean.dupont@hygie.test>\r\n"
    "From: Jean Dupont <jean.dupont@hygie.test>\r\n"
    "To: marie.curie@autre-operateur.test\r\n"
    "Subject: =?utf-8?q?Compte_rendu_d=27=C3=A9chographie?=\r\n"
    "Message-ID: <cr-2026-001@hygie.test>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "Échographie abdominale : rien à signaler.\r\n"
    "Cordialement.\r\n"
).encode()


def parse(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def failed(address: str = "marie.curie@autre-operateur.test", **kw: object) -> RecipientStatus:
    fields: dict[str, object] = {
        "final_recipient": address,
        "action": "failed",
        "status": "5.1.1",
        "diagnostic": "smtp; 550 5.1.1 No such user",
        "remote_mta": "mx.autre-operateur.test",
        "last_attempt": WHEN,
    }
    fields.update(kw)
    return RecipientStatus(**fields)  # type: ignore[arg-type]


def build(recipients: list[RecipientStatus] | None = None, **kw: object) -> bytes:
    args: dict[str, object] = {
        "reporting_mta": "mx.hygie.test",
        "postmaster": "postmaster@hygie.test",
        "sender": "jean.dupont@hygie.test",
        "original": ORIGINAL,
        "recipients": recipients if recipients is not None else [failed()],
        "now": WHEN,
    }
    args.update(kw)
    return dsn.build_report(**args)  # type: ignore[arg-type]


def status_blocks(message: EmailMessage) -> list[Message]:
    """The message/delivery-status part: per-message block then one per recipient."""
    parts = list(message.iter_parts())
    assert parts[1].get_content_type() == "message/delivery-status"
    blocks = parts[1].get_payload()
    assert isinstance(blocks, list)
    return blocks


# --- xtext ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        ("", ""),
        ("QQ314159", "QQ314159"),
        ("a+2Bb@example.test", "a+b@example.test"),
        ("a+3Db", "a=b"),
        ("hello+20world", "hello world"),
        ("j+C3+A9r+C3+B4me", "jérôme"),
        ("lower+2bcase", "lower+case"),
    ],
)
def test_xtext_decode(encoded: str, decoded: str) -> None:
    assert dsn.xtext_decode(encoded) == decoded


@pytest.mark.parametrize("bad", ["a+2", "a+ZZ", "a=b", "a b", "caf\u00e9", "+", "tab\there", "+FF"])
def test_xtext_decode_refuses_malformed(bad: str) -> None:
    with pytest.raises(DsnSyntaxError):
        dsn.xtext_decode(bad)


def test_xtext_encode_escapes_plus_equals_space_and_non_ascii() -> None:
    assert dsn.xtext_encode("a+b=c d") == "a+2Bb+3Dc+20d"
    assert dsn.xtext_encode("é") == "+C3+A9"


@given(st.text())
def test_xtext_round_trips_any_text(text: str) -> None:
    encoded = dsn.xtext_encode(text)
    assert re.fullmatch(r"[!-~]*", encoded)
    assert "=" not in encoded
    assert dsn.xtext_decode(encoded) == text


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E)))
def test_xtext_of_printable_ascii_only_escapes_what_it_must(text: str) -> None:
    encoded = dsn.xtext_encode(text)
    assert encoded.count("+") == sum(c in "+= " for c in text)


# --- MAIL FROM parameters -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, DsnMail(ret=None, envid=None)),
        ({"RET": "FULL"}, DsnMail(ret="FULL", envid=None)),
        ({"RET": "full"}, DsnMail(ret="FULL", envid=None)),
        ({"RET": "Hdrs"}, DsnMail(ret="HDRS", envid=None)),
        ({"ENVID": "QQ314159"}, DsnMail(ret=None, envid="QQ314159")),
        ({"ENVID": "id+2Bwith+20space"}, DsnMail(ret=None, envid="id+with space")),
        ({"RET": "HDRS", "ENVID": "x", "SIZE": "1000", "BODY": "8BITMIME"}, DsnMail("HDRS", "x")),
        ({"ENVID": "e" * 100}, DsnMail(ret=None, envid="e" * 100)),
    ],
)
def test_mail_params_accepted(params: dict[str, str], expected: DsnMail) -> None:
    assert dsn.parse_mail_params(params) == expected


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"RET": "BAD"}, "RET must be FULL or HDRS"),
        ({"RET": ""}, "RET needs a value"),
        ({"RET": True}, "RET needs a value"),  # aiosmtpd gives True for a bare keyword
        ({"ENVID": "e" * 101}, "longer than 100"),
        ({"ENVID": "+41" * 101}, "longer than 100"),  # the limit is on the decoded value
        ({"ENVID": "tab+09here"}, "printable US-ASCII"),
        ({"ENVID": "line+0D+0Abreak"}, "printable US-ASCII"),
        ({"ENVID": "+C3+A9t+C3+A9"}, "printable US-ASCII"),
        ({"ENVID": "a=b"}, "Malformed xtext"),
        ({"ENVID": "a+4"}, "Malformed xtext"),
        ({"RET": "FULL", "ret": "HDRS"}, "given twice"),
    ],
)
def test_mail_params_refused(params: dict[str, str], says: str) -> None:
    with pytest.raises(DsnSyntaxError, match=says) as caught:
        dsn.parse_mail_params(params)
    assert caught.value.reply.startswith("501 5.5.4 ")


# --- RCPT TO parameters ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, DsnRcpt(notify=None, orcpt=None)),
        ({"NOTIFY": "NEVER"}, DsnRcpt(frozenset({"NEVER"}), None)),
        ({"NOTIFY": "never"}, DsnRcpt(frozenset({"NEVER"}), None)),
        ({"NOTIFY": "SUCCESS,FAILURE"}, DsnRcpt(frozenset({"SUCCESS", "FAILURE"}), None)),
        (
            {"NOTIFY": "delay,Failure,SUCCESS"},
            DsnRcpt(frozenset({"SUCCESS", "FAILURE", "DELAY"}), None),
        ),
        ({"ORCPT": "rfc822;a+2Bb@example.test"}, DsnRcpt(None, "rfc822;a+b@example.test")),
        ({"ORCPT": "RFC822;plain@example.test"}, DsnRcpt(None, "rfc822;plain@example.test")),
        (
            {"ORCPT": "utf-8;j\\x{E9}r\\x{F4}me@example.test"},
            DsnRcpt(None, "utf-8;jérôme@example.test"),
        ),
        ({"ORCPT": "x400;c+3DFR+3Ba+3DX"}, DsnRcpt(None, "x400;c=FR;a=X")),
        (
            {"NOTIFY": "FAILURE", "ORCPT": "rfc822;x@y.test", "OTHER": "ignored"},
            DsnRcpt(frozenset({"FAILURE"}), "rfc822;x@y.test"),
        ),
    ],
)
def test_rcpt_params_accepted(params: dict[str, str], expected: DsnRcpt) -> None:
    assert dsn.parse_rcpt_params(params) == expected


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"NOTIFY": "NEVER,SUCCESS"}, "NEVER cannot be combined"),
        ({"NOTIFY": "SUCCESS,NEVER"}, "NEVER cannot be combined"),
        ({"NOTIFY": "SOMETIMES"}, "NOTIFY must be"),
        ({"NOTIFY": "SUCCESS,"}, "NOTIFY must be"),
        ({"NOTIFY": ""}, "needs a value"),
        ({"ORCPT": "a@example.test"}, "addr-type;xtext"),
        ({"ORCPT": "rfc822;"}, "addr-type;xtext"),
        ({"ORCPT": "rfc 822;a@example.test"}, "addr-type;xtext"),
        ({"ORCPT": "rfc822;a=b@example.test"}, "Malformed xtext"),
        ({"ORCPT": "rfc822;a+0D+0AX-Injected:+20yes@example.test"}, "printable US-ASCII"),
        ({"ORCPT": "rfc822;+C3+A9@example.test"}, "printable US-ASCII"),
        ({"ORCPT": "utf-8;a\\x{D}@example.test"}, "control characters"),
        ({"ORCPT": "utf-8;a\\x{D800}@example.test"}, "RFC 6533"),
        ({"ORCPT": "rfc822;" + "a" * 500}, "longer than 500"),
    ],
)
def test_rcpt_params_refused(params: dict[str, str], says: str) -> None:
    with pytest.raises(DsnSyntaxError, match=says):
        dsn.parse_rcpt_params(params)


_keys = st.one_of(
    st.sampled_from(["RET", "ENVID", "NOTIFY", "ORCPT", "ret", "Notify", "SIZE"]), st.text()
)
_values = st.one_of(
    st.text(),
    st.sampled_from(["FULL", "HDRS", "NEVER", "SUCCESS,DELAY", "rfc822;a+2B@b", "utf-8;\\x{"]),
    st.booleans(),
    st.none(),
    st.integers(),
)


@given(st.dictionaries(_keys, _values))
def test_parsing_params_only_ever_raises_dsn_syntax_error(params: dict[str, str]) -> None:
    for parse in (dsn.parse_mail_params, dsn.parse_rcpt_params):
        try:
            result = parse(params)
        except DsnSyntaxError:
            continue
        # whatever was accepted is safe to put in a header field
        for value in vars(result).values():
            if isinstance(value, str):
                assert "\r" not in value and "\n" not in value


# --- which outcomes are reported (RFC 3461 §4.1) --------------------------------------------

_F, _D, _S, _N = "FAILURE", "DELAY", "SUCCESS", "NEVER"


@pytest.mark.parametrize(
    ("notify", "failed", "delayed", "delivered", "relayed"),
    [
        (None, True, True, False, False),
        (frozenset({_N}), False, False, False, False),
        (frozenset({_F}), True, False, False, False),
        (frozenset({_D}), False, True, False, False),
        (frozenset({_S}), False, False, True, True),
        (frozenset({_S, _F}), True, False, True, True),
        (frozenset({_S, _F, _D}), True, True, True, True),
    ],
)
def test_wants(
    notify: frozenset[str] | None, failed: bool, delayed: bool, delivered: bool, relayed: bool
) -> None:
    assert dsn.wants(notify, "failed") is failed
    assert dsn.wants(notify, "delayed") is delayed
    assert dsn.wants(notify, "delivered") is delivered
    assert dsn.wants(notify, "relayed") is relayed


def test_wants_refuses_an_unknown_action() -> None:
    with pytest.raises(ValueError, match="unknown DSN action"):
        dsn.wants(None, "bounced")


@pytest.mark.parametrize(("sender", "bounce"), [("", True), ("<>", True), (" ", True)])
def test_null_sender_is_a_bounce(sender: str, bounce: bool) -> None:
    assert dsn.is_bounce(sender) is bounce
    assert not dsn.is_bounce("jean.dupont@hygie.test")


def test_no_report_for_a_null_sender() -> None:
    with pytest.raises(ValueError, match="null reverse-path"):
        build(sender="")


# --- the report -----------------------------------------------------------------------------


def test_failure_report_layout_and_fields() -> None:
    raw = build(
        [failed(original_recipient="rfc822;Marie.Curie@autre-operateur.test")],
        envid="QQ314159",
        arrival=WHEN - timedelta(days=5),
        message_id_domain="hygie.test",
    )
    message = parse(raw)
    assert message["From"] == "Mail Delivery System <postmaster@hygie.test>"
    assert message["To"] == "jean.dupont@hygie.test"
    assert message["Subject"] == "Échec de distribution / Delivery failure"
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["Date"].datetime == WHEN
    assert re.fullmatch(r"<[0-9a-f]{24}@hygie\.test>", message["Message-ID"])
    assert message["In-Reply-To"] == "<cr-2026-001@hygie.test>"
    assert message["MIME-Version"] == "1.0"
    assert message.get_content_type() == "multipart/report"
    assert message.get_param("report-type") == "delivery-status"
    assert [p.get_content_type() for p in message.iter_parts()] == [
        "text/plain",
        "message/delivery-status",
        "text/rfc822-headers",
    ]
    per_message, per_recipient = status_blocks(message)
    assert per_message["Reporting-MTA"] == "dns; mx.hygie.test"
    assert per_message["Original-Envelope-Id"] == "QQ314159"
    assert per_message["Arrival-Date"] == "Tue, 17 Nov 2026 20:00:00 +0000"
    assert per_recipient["Original-Recipient"] == "rfc822;Marie.Curie@autre-operateur.test"
    assert per_recipient["Final-Recipient"] == "rfc822;marie.curie@autre-operateur.test"
    assert per_recipient["Action"] == "failed"
    assert per_recipient["Status"] == "5.1.1"
    assert per_recipient["Remote-MTA"] == "dns; mx.autre-operateur.test"
    assert per_recipient["Diagnostic-Code"] == "smtp; 550 5.1.1 No such user"
    assert per_recipient["Last-Attempt-Date"] == "Sun, 22 Nov 2026 20:00:00 +0000"
    assert per_recipient["Will-Retry-Until"] is None


def test_human_part_names_each_recipient_and_the_remote_reply() -> None:
    raw = build(
        [
            failed(),
            failed("inconnu@autre-operateur.test", diagnostic="550 5.1.1 User unknown"),
        ]
    )
    text = next(parse(raw).iter_parts())
    assert isinstance(text, EmailMessage)
    body = text.get_content()
    assert "n'a pas pu être distribué" in body
    assert "could not be delivered" in body
    assert "<marie.curie@autre-operateur.test>" in body
    assert "<inconnu@autre-operateur.test>" in body
    assert "550 5.1.1 No such user" in body
    assert "550 5.1.1 User unknown" in body
    assert "mx.autre-operateur.test" in body


def test_delay_report() -> None:
    delayed = RecipientStatus(
        final_recipient="marie.curie@autre-operateur.test",
        action="delayed",
        status="4.4.1",
        diagnostic="smtp; 421 4.4.1 Connection timed out",
        last_attempt=WHEN,
        will_retry_until=WHEN + timedelta(days=4),
    )
    message = parse(build([delayed]))
    assert message["Subject"] == "Distribution retardée / Delivery delayed"
    _, block = status_blocks(message)
    assert block["Action"] == "delayed"
    assert block["Status"] == "4.4.1"
    assert block["Will-Retry-Until"] == "Thu, 26 Nov 2026 20:00:00 +0000"
    assert block["Remote-MTA"] is None
    text = next(message.iter_parts())
    assert isinstance(text, EmailMessage)
    assert "Thu, 26 Nov 2026 20:00:00 +0000" in text.get_content()


def test_success_report_with_several_recipients() -> None:
    delivered = RecipientStatus("a@autre-operateur.test", "delivered", "2.0.0", "smtp; 250 OK")
    relayed = RecipientStatus("b@ancien.test", "relayed", "2.0.0")
    message = parse(build([delivered, relayed]))
    assert message["Subject"] == "Message distribué / Delivery report"
    _, first, second = status_blocks(message)
    assert (first["Action"], first["Final-Recipient"]) == (
        "delivered",
        "rfc822;a@autre-operateur.test",
    )
    assert (second["Action"], second["Final-Recipient"]) == ("relayed", "rfc822;b@ancien.test")
    assert second["Diagnostic-Code"] is None


def test_mixed_outcomes_are_titled_by_the_gravest() -> None:
    delivered = RecipientStatus("a@autre-operateur.test", "delivered", "2.0.0")
    delayed = RecipientStatus("b@autre-operateur.test", "delayed", "4.4.1")
    assert (
        parse(build([delivered, delayed]))["Subject"] == "Distribution retardée / Delivery delayed"
    )
    assert parse(build([delayed, failed()]))["Subject"].startswith("Échec")


def test_ret_full_returns_the_whole_original_verbatim() -> None:
    message = parse(build(ret="FULL"))
    returned = list(message.iter_parts())[2]
    assert returned.get_content_type() == "message/rfc822"
    inner = returned.get_payload()[0]
    assert inner["Subject"] == "Compte rendu d'échographie"
    assert (
        inner.get_content().replace("\r\n", "\n")
        == "Échographie abdominale : rien à signaler.\nCordialement.\n"
    )
    # byte for byte, last line ending included
    assert ORIGINAL in build(ret="FULL")


@pytest.mark.parametrize("ret", ["HDRS", None])
def test_hdrs_or_no_ret_returns_the_header_only(ret: str | None) -> None:
    raw = build(ret=ret)
    returned = list(parse(raw).iter_parts())[2]
    assert returned.get_content_type() == "text/rfc822-headers"
    headers = returned.get_content()
    assert "Message-ID: <cr-2026-001@hygie.test>" in headers
    assert "Subject: =?utf-8?q?Compte_rendu_d=27=C3=A9chographie?=" in headers
    assert "rien à signaler" not in raw.decode("utf-8")


def test_a_huge_original_goes_back_as_header_only_even_with_ret_full() -> None:
    huge = ORIGINAL + b"x" * 998 * 1100 + b"\r\n"
    assert len(huge) > dsn.RETURN_LIMIT
    raw = build(original=huge, ret="FULL")
    assert len(raw) < 64 * 1024
    message = parse(raw)
    assert list(message.iter_parts())[2].get_content_type() == "text/rfc822-headers"
    text = next(message.iter_parts())
    assert isinstance(text, EmailMessage)
    assert "too large to be returned in full" in text.get_content()


def test_a_huge_header_section_is_cut_after_a_whole_field() -> None:
    many = b"".join(b"X-Filler-%05d: %s\r\n" % (i, b"y" * 60) for i in range(2000))
    raw = build(original=b"Subject: big\r\n" + many + b"\r\nbody\r\n")
    returned = list(parse(raw).iter_parts())[2].get_content().replace("\r\n", "\n")
    assert len(returned) <= dsn.HEADERS_LIMIT
    assert returned.startswith("Subject: big\n")
    assert all(re.fullmatch(r"X-Filler-\d{5}: y{60}", line) for line in returned.splitlines()[1:])


def test_only_crlf_line_endings() -> None:
    bare_lf_original = ORIGINAL.replace(b"\r\n", b"\n")
    for ret in ("FULL", "HDRS"):
        raw = build(original=bare_lf_original, ret=ret, envid="x")
        assert b"\r\n" in raw
        assert re.search(rb"(?<!\r)\n", raw) is None
        assert re.search(rb"\r(?!\n)", raw) is None


def test_eight_bit_original_is_declared_8bit() -> None:
    raw = build(ret="FULL")
    message = parse(raw)
    assert message["Content-Transfer-Encoding"] == "8bit"
    returned = list(message.iter_parts())[2]
    assert returned["Content-Transfer-Encoding"] == "8bit"
    # and a 7-bit original keeps the report 7-bit
    seven = build(original=b"Subject: hello\r\nMessage-ID: <a@b>\r\n\r\nhello\r\n", ret="FULL")
    assert max(seven) < 0x80


def test_non_ascii_original_subject_survives_in_the_returned_header() -> None:
    original = "Subject: Résultats d'analyse\r\nFrom: a@hygie.test\r\n\r\nbody\r\n".encode()
    raw = build(original=original)
    returned = list(parse(raw).iter_parts())[2]
    assert "Subject: Résultats d'analyse" in returned.get_content()


def test_internationalised_recipient_uses_the_utf8_address_type() -> None:
    message = parse(build([failed("jérôme@hôpital.test")]))
    _, block = status_blocks(message)
    assert block["Final-Recipient"] == "utf-8;j\\x{E9}r\\x{F4}me@h\\x{F4}pital.test"


def test_remote_text_cannot_inject_fields() -> None:
    evil = failed(diagnostic="smtp; 550 nope\r\nAction: delivered\r\n\r\nX-Evil: yes")
    message = parse(build([evil]))
    _, block = status_blocks(message)
    assert block["Action"] == "failed"
    assert block["X-Evil"] is None
    assert block["Diagnostic-Code"] == "smtp; 550 nope Action: delivered X-Evil: yes"


@pytest.mark.parametrize(
    "recipient",
    [
        RecipientStatus("a@b.test\r\nX: y", "failed", "5.1.1"),
        RecipientStatus("a@b.test", "bounced", "5.1.1"),
        RecipientStatus("a@b.test", "failed", "550"),
        RecipientStatus("a@b.test", "failed", "5.1.1", last_attempt=datetime(2026, 1, 1)),
    ],
)
def test_our_own_mistakes_raise_value_error(recipient: RecipientStatus) -> None:
    with pytest.raises(ValueError):
        build([recipient])


def test_no_recipients_is_a_mistake() -> None:
    with pytest.raises(ValueError, match="at least one recipient"):
        build([])


def test_long_diagnostics_are_folded() -> None:
    long = "smtp; 550 5.7.1 " + " ".join(["refused"] * 40)
    raw = build([failed(diagnostic=long)])
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78
    _, block = status_blocks(parse(raw))
    assert block["Diagnostic-Code"] == long


def test_untyped_diagnostic_and_typed_remote_mta() -> None:
    raw = build([failed(diagnostic="550 5.1.1 gone", remote_mta="dns; [192.0.2.1]")])
    _, block = status_blocks(parse(raw))
    assert block["Diagnostic-Code"] == "smtp; 550 5.1.1 gone"
    assert block["Remote-MTA"] == "dns; [192.0.2.1]"


def test_original_without_message_id_has_no_in_reply_to() -> None:
    message = parse(build(original=b"Subject: x\r\n\r\nbody\r\n"))
    assert message["In-Reply-To"] is None
    assert message["Message-ID"].endswith("@mx.hygie.test>")


@given(st.text(max_size=400), st.text(max_size=80))
def test_any_remote_text_keeps_the_report_well_formed(diagnostic: str, remote: str) -> None:
    raw = build([failed(diagnostic=diagnostic, remote_mta=remote or None)])
    assert re.search(rb"(?<!\r)\n|\r(?!\n)", raw) is None
    message = parse(raw)
    _, block = status_blocks(message)
    assert block["Action"] == "failed"
    assert block["Final-Recipient"] == "rfc822;marie.curie@autre-operateur.test"
    assert len(message.get_payload()) == 3


def test_an_unfoldable_remote_reply_is_cut_to_the_line_limit() -> None:
    raw = build([failed(diagnostic="smtp; 550 " + "x" * 5000)])
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    _, block = status_blocks(parse(raw))
    assert block["Diagnostic-Code"].startswith("smtp; 550 xxxx")


def test_an_internationalised_orcpt_goes_back_as_it_came() -> None:
    orcpt = dsn.parse_rcpt_params({"ORCPT": "utf-8;j\\x{E9}r\\x{F4}me@example.test"}).orcpt
    assert orcpt == "utf-8;jérôme@example.test"
    raw = build([failed("jerome@example.test", original_recipient=orcpt)])
    _, block = status_blocks(parse(raw))
    assert block["Original-Recipient"] == "utf-8;j\\x{E9}r\\x{F4}me@example.test"
