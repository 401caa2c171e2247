"""DKIM signing and verification (RSA and Ed25519) with a local key directory, and the
Authentication-Results helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.outbound.dkim import (
    DkimSigner,
    DkimVerifier,
    authentication_results,
    dns_record,
    ensure_key,
    key_path,
    strip_forged_results,
)

MESSAGE = (
    b"From: <alice@hygie.test>\r\nTo: <bob@autre.test>\r\nSubject: Compte rendu\r\n"
    b"X-MSS-NIL: HYGIE\r\n\r\nBonjour,\r\nvoici le compte rendu.\r\n"
)


@pytest.mark.parametrize("algorithm", ["rsa", "ed25519"])
def test_sign_then_verify(tmp_path: Path, algorithm: str) -> None:
    keys = tmp_path / "dkim"
    ensure_key(keys, "hygie.test", algorithm)
    assert (key_path(keys, "hygie.test").stat().st_mode & 0o077) == 0
    peers = tmp_path / "peers"
    peers.mkdir()
    record = dns_record(key_path(keys, "hygie.test"))
    assert record.startswith(f"v=DKIM1; k={algorithm}; p=")
    (peers / "hygie._domainkey.hygie.test.txt").write_text(record)

    signed = DkimSigner(keys, "hygie", ["hygie.test"]).sign(MESSAGE, "hygie.test")
    assert signed.startswith(b"DKIM-Signature:") and b"x-mss-nil" in signed.lower()
    verifier = DkimVerifier(peers)
    assert verifier.verify(signed) == ("pass", "hygie.test", "hygie")
    tampered = signed.replace(b"voici", b"VOICI")
    assert verifier.verify(tampered)[0] == "fail"
    assert verifier.verify(MESSAGE) == ("none", None, None)


def test_no_key_no_signature(tmp_path: Path) -> None:
    assert DkimSigner(tmp_path, "hygie", ["autre.test"]).sign(MESSAGE, "autre.test") == MESSAGE


def test_unknown_key_is_permerror(tmp_path: Path) -> None:
    ensure_key(tmp_path / "dkim", "hygie.test")
    signed = DkimSigner(tmp_path / "dkim", "hygie", ["hygie.test"]).sign(MESSAGE, "hygie.test")
    # No record anywhere (and no DNS for .test): the signature cannot be checked.
    assert DkimVerifier(tmp_path / "none").verify(signed)[0] == "permerror"


def test_forged_results_are_removed_and_ours_added() -> None:
    raw = (
        b"Authentication-Results: mail.hygie.test; dkim=pass\r\n\theader.d=evil\r\n"
        b"Authentication-Results: other.example; spf=pass\r\n" + MESSAGE
    )
    cleaned = strip_forged_results(raw, "mail.hygie.test")
    assert b"header.d=evil" not in cleaned and b"other.example; spf=pass" in cleaned
    assert cleaned.endswith(MESSAGE)
    field = authentication_results("mail.hygie.test", ["dkim=pass header.d=hygie.test"])
    assert (
        field == b"Authentication-Results: mail.hygie.test;\r\n\tdkim=pass header.d=hygie.test\r\n"
    )
