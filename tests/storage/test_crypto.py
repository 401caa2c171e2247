"""The key hierarchy: master key → mailbox key pair → per-message content key (design.md §4)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.crypto import (
    CHUNK_SIZE,
    ContentKey,
    CryptoError,
    MailboxKeyPair,
    MasterKey,
    open_content_key,
    seal_content_key,
)


def test_master_key_file_is_private_and_reloads(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "master.key"
    key = MasterKey.create(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert MasterKey.load(path) == key
    with pytest.raises(FileExistsError):
        MasterKey.create(path)


def test_master_key_refuses_group_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    MasterKey.create(path)
    path.chmod(0o640)
    with pytest.raises(CryptoError, match="readable by others"):
        MasterKey.load(path)


def test_mailbox_private_key_is_bound_to_its_account(tmp_path: Path) -> None:
    master = MasterKey.create(tmp_path / "k")
    pair = MailboxKeyPair.generate()
    wrapped = pair.wrapped_private(master, b"account:1")
    again = MailboxKeyPair.unwrap(pair.public, wrapped, master, b"account:1")
    assert again.public == pair.public
    with pytest.raises(CryptoError):
        MailboxKeyPair.unwrap(pair.public, wrapped, master, b"account:2")
    other = MasterKey.create(tmp_path / "k2")
    with pytest.raises(CryptoError):
        MailboxKeyPair.unwrap(pair.public, wrapped, other, b"account:1")


def test_content_key_opens_only_for_its_recipient() -> None:
    alice, bob = MailboxKeyPair.generate(), MailboxKeyPair.generate()
    key = os.urandom(32)
    sealed = seal_content_key(key, alice.public)
    assert open_content_key(sealed, alice) == key
    with pytest.raises(CryptoError):
        open_content_key(sealed, bob)


@settings(max_examples=50, deadline=None)
@given(
    body=st.binary(max_size=3 * CHUNK_SIZE + 17),
    start=st.integers(0, 4 * CHUNK_SIZE),
    length=st.integers(0, 4 * CHUNK_SIZE),
)
def test_body_round_trips_whole_and_by_range(body: bytes, start: int, length: int) -> None:
    ck = ContentKey.generate()
    ct = ck.encrypt_body(body)
    assert ck.decrypt_body(ct) == body
    assert ck.decrypt_range(ct, start, start + length) == body[start : start + length]


def test_tampered_truncated_or_reordered_body_is_refused() -> None:
    ck = ContentKey.generate()
    body = os.urandom(3 * CHUNK_SIZE)
    ct = ck.encrypt_body(body)
    flipped = bytearray(ct)
    flipped[100] ^= 1
    with pytest.raises(CryptoError):
        ck.decrypt_body(bytes(flipped))
    with pytest.raises(CryptoError):
        ck.decrypt_body(ct[: 12 + CHUNK_SIZE + 16])  # last chunks dropped
    block = CHUNK_SIZE + 16
    swapped = ct[:12] + ct[12 + block : 12 + 2 * block] + ct[12 : 12 + block] + ct[12 + 2 * block :]
    with pytest.raises(CryptoError):
        ck.decrypt_body(swapped)
    with pytest.raises(CryptoError):
        ContentKey.generate().decrypt_body(ct)


def test_ciphertext_holds_no_plaintext() -> None:
    marker = b"HYGIE-MARKER-0123456789"
    ck = ContentKey.generate()
    assert marker not in ck.encrypt_body(marker * 1000)
    assert marker not in ck.encrypt_meta(marker)
    assert ck.decrypt_meta(ck.encrypt_meta(marker)) == marker
