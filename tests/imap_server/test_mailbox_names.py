"""Mailbox names in modified UTF-7 (RFC 3501 §5.1.3) and in UTF-8 once UTF8=ACCEPT is
enabled (RFC 6855 §3): the same mailbox, seen both ways."""

from __future__ import annotations

from tests.imap_server.dialogue import Script, listed


def test_modified_utf7_round_trip(tc: Script) -> None:
    tc.C("a1 CREATE Cr&AOk-dits")  # "Crédits"
    tc.S("a1 OK …")
    tc.C('a2 LIST "" Cr*')
    tc.S('* LIST (…) "/" Cr&AOk-dits', "a2 OK …")
    tc.C("a3 SELECT Cr&AOk-dits")
    tc.S("* 0 EXISTS", "a3 OK …")


def test_non_latin_script(tc: Script) -> None:
    tc.C("a1 CREATE &ZeVnLIqe-")  # "日本語"
    tc.S("a1 OK …")
    tc.C("a2 STATUS &ZeVnLIqe- (MESSAGES)")
    tc.S("* STATUS &ZeVnLIqe- (MESSAGES 0)", "a2 OK …")


def test_utf8_name_is_utf7_to_a_legacy_client(tc: Script, tc2: Script) -> None:
    tc.C("a1 ENABLE UTF8=ACCEPT")
    tc.S("a1 OK …")
    tc.C('a2 CREATE "Résultats/Biologie"')
    tc.S("a2 OK …")
    tc.C('a3 LIST "" R*')
    reply = tc.S("a3 OK …")
    assert {"Résultats", "Résultats/Biologie"} <= set(listed(reply)), reply.lines

    tc2.C('b1 LIST "" R*')
    reply = tc2.S("b1 OK …")
    assert {"R&AOk-sultats", "R&AOk-sultats/Biologie"} <= set(listed(reply)), reply.lines


def test_utf7_name_is_utf8_after_enable(tc: Script, tc2: Script) -> None:
    tc.C("a1 CREATE Cr&AOk-dits")
    tc.S("a1 OK …")
    tc2.C("b1 ENABLE UTF8=ACCEPT")
    tc2.S("b1 OK …")
    tc2.C('b2 LIST "" Cr*')
    reply = tc2.S("b2 OK …")
    assert "Crédits" in listed(reply), reply.lines


def test_rename_keeps_the_encoding(tc: Script) -> None:
    tc.C("a1 CREATE Cr&AOk-dits")
    tc.S("a1 OK …")
    tc.C("a2 RENAME Cr&AOk-dits D&AOk-bits")
    tc.S("a2 OK …")
    tc.C('a3 LIST "" D*')
    tc.S('* LIST (…) "/" D&AOk-bits', "a3 OK …")


def test_invalid_modified_utf7_is_refused(tc: Script) -> None:
    tc.C("a1 CREATE Bad&Jjo")  # unterminated shift sequence
    tc.S("a1 {:NO|BAD} …")
    tc.C("a2 CREATE &AGE-")  # "a" encoded: ASCII MUST NOT be encoded
    tc.S("a2 {:NO|BAD} …")
    tc.C('a3 LIST "" *')
    reply = tc.S("a3 OK …")
    assert not {"Bad&Jjo", "&AGE-", "a"} & set(listed(reply))


# The ASCII graphic characters an IMAP4rev1 client may put in an atom, several of which do
# not form modified UTF-7 ("&'+,-" is a shift sequence that does not decode).
PUNCTUATION = "!#$&'+,-.0123456789:;<=>?@^_`|[}"


def test_a_name_that_is_not_modified_utf7_is_nonexistent_not_bad(tc: Script) -> None:
    # RFC 3501 §5.1.3 / RFC 9051 §6.3.2: valid syntax, no such mailbox.
    tc.C(f'a1 SELECT "{PUNCTUATION}"')
    tc.S("a1 NO [NONEXISTENT] …")
    tc.C(f'a2 EXAMINE "{PUNCTUATION}"')
    tc.S("a2 NO [NONEXISTENT] …")
    tc.C(f'a3 STATUS "{PUNCTUATION}" (MESSAGES)')
    tc.S("a3 NO [NONEXISTENT] …")


def test_such_a_name_is_a_list_pattern_that_matches_nothing(tc: Script) -> None:
    # RFC 9051 §6.3.9: a pattern, not a syntax error.
    tc.C(f'a1 LIST "" "{PUNCTUATION}"')
    reply = tc.S("a1 OK …")
    assert listed(reply) == {}


def test_tilde_starts_an_atom_not_a_literal8(tc: Script) -> None:
    # RFC 9051 §9: "~" is an ATOM-CHAR; only "~{" starts a literal8 (RFC 3516 §4.2).
    tc.C("a1 CREATE ~foo")
    tc.S("a1 OK …")
    tc.C('a2 LIST "" ~foo')
    tc.S('* LIST (…) "/" ~foo', "a2 OK …")
    tc.C("a3 SELECT ~foo")
    tc.S("* 0 EXISTS", "a3 OK [READ-WRITE] …")
