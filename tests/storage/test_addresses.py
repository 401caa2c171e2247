"""Mailbox addresses (RFC 5321 §4.1.2, RFC 6531 §3.3): the one form accounts are kept in."""

from __future__ import annotations

import pytest

from storage.accounts import AccountError, normalize_address


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("Jean.Dupont@Hygie.Test", "jean.dupont@hygie.test"),
        ("Zoé@autre.test", "zoé@autre.test"),
        ("zoe\u0301@autre.test", "zoé@autre.test"),  # NFC (RFC 6530 §10.1): one form, one account
        ("ÉLODIE.MÜLLER@autre.test", "élodie.müller@autre.test"),
    ],
)
def test_addresses_are_kept_in_one_form(given: str, kept: str) -> None:
    assert normalize_address(given) == kept


@pytest.mark.parametrize(
    "given",
    [
        "zo\u200fé@autre.test",  # a bidi mark
        "zoé\u00a0x@autre.test",  # a no-break space
        "€uro@autre.test",  # a symbol outside ASCII
        "é" * 33 + "@autre.test",  # 66 octets (RFC 5321 §4.5.3.1.1: 64)
        "zoé@autré.test",  # domains in A-label form
    ],
)
def test_other_utf8_addresses_are_refused(given: str) -> None:
    with pytest.raises(AccountError, match="not a valid mail address"):
        normalize_address(given)
