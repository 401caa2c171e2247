"""The key hierarchy of design.md §4: master key → one X25519 key pair per mailbox (BAL) →
one random content key per message, sealed to each recipient with HPKE (RFC 9180).

- The **master key** is 32 random bytes in a file outside the database (mode 0600). It wraps
  (AES-256-GCM) each mailbox's X25519 private key and derives other secrets (the CA passphrase).
- A **mailbox key pair** is X25519. Delivery needs only the public key.
- A message's **content key** is 32 random bytes. It is sealed to each recipient mailbox with
  HPKE base mode, suite DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM. Two subkeys are
  derived from it with HKDF (RFC 5869): one encrypts the body, one the IMAP metadata.
- The **owner seal**: the first time the account reads a message, its content key (and the
  compact IMAP summary of its metadata) is sealed again for the account alone, AES-256-GCM
  under a key derived from the mailbox private key, bound to the account and the message's
  blob (:class:`OwnerSeal`). Later reads pay one AES-GCM open instead of an X25519 agreement;
  delivery still needs only the public key, and whoever cannot unwrap the private key (the
  zero-access mode of design.md §4) cannot open the owner seal either.
- A **body** is encrypted in 64 KiB chunks with AES-256-GCM in the STREAM construction
  (Hoang, Reyhanitabar, Rogaway, Vizár 2015): nonce = 11-byte chunk counter ‖ last-chunk flag,
  so chunks cannot be reordered, dropped or truncated undetected, and a part of a large message
  can be decrypted without the rest.
"""

from __future__ import annotations

import functools
import hashlib
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_LEN = 32
NONCE_LEN = 12
TAG_LEN = 16
CHUNK_SIZE = 64 * 1024
BODY_MAGIC = b"HYB1"
_HPKE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
_HPKE_INFO = b"hygie/v1 message content key"
_OWNER_SEAL_VERSION = b"\x01"


class _Counter:
    """A thread-safe count (HPKE opens happen in worker threads too)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self, n: int = 1) -> None:
        with self._lock:
            self.value += n


#: HPKE opens of a content key by this process: what the owner seal and the message cache
#: save (read by tests and by ``hygie_message_key_unseals_total``).
UNSEALS = _Counter()


class CryptoError(Exception):
    """A key is missing, malformed or wrong, or a ciphertext failed authentication."""


def _hkdf(key: bytes, info: bytes, length: int = KEY_LEN) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(key)


@dataclass(frozen=True)
class MasterKey:
    key: bytes

    @classmethod
    def create(cls, path: Path) -> MasterKey:
        """Write a new random master key to ``path`` with mode 0600 (refuses to overwrite)."""
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = os.urandom(KEY_LEN)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, key.hex().encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        return cls(key)

    @classmethod
    def load(cls, path: Path) -> MasterKey:
        try:
            st = path.stat()
            text = path.read_text("ascii").strip()
        except FileNotFoundError:
            raise CryptoError(f"master key file {path} is missing") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise CryptoError(f"master key file {path} is unreadable: {exc}") from None
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise CryptoError(f"master key file {path} is readable by others: chmod 600 it")
        try:
            key = bytes.fromhex(text)
        except ValueError:
            key = b""
        if len(key) != KEY_LEN:
            raise CryptoError(f"master key file {path} does not hold a 256-bit hex key")
        return cls(key)

    def wrap(self, plaintext: bytes, context: bytes) -> bytes:
        """AES-256-GCM under a subkey for ``context``; the context is also bound as AAD."""
        nonce = os.urandom(NONCE_LEN)
        aead = AESGCM(_hkdf(self.key, b"hygie/v1 wrap " + context))
        return nonce + aead.encrypt(nonce, plaintext, context)

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        aead = AESGCM(_hkdf(self.key, b"hygie/v1 wrap " + context))
        try:
            return aead.decrypt(wrapped[:NONCE_LEN], wrapped[NONCE_LEN:], context)
        except InvalidTag:
            raise CryptoError("cannot unwrap: wrong master key or corrupted data") from None

    def derive_secret(self, purpose: str) -> bytes:
        """A stable secret for ``purpose`` (e.g. the CA key passphrase), hex-encoded."""
        return _hkdf(self.key, b"hygie/v1 derive " + purpose.encode()).hex().encode()


@dataclass(frozen=True)
class MailboxKeyPair:
    public: bytes  # raw 32-byte X25519 public key
    private: X25519PrivateKey

    @classmethod
    def generate(cls) -> MailboxKeyPair:
        private = X25519PrivateKey.generate()
        return cls(private.public_key().public_bytes_raw(), private)

    def wrapped_private(self, master: MasterKey, context: bytes) -> bytes:
        return master.wrap(self.private.private_bytes_raw(), context)

    @functools.cached_property
    def owner(self) -> OwnerSeal:
        """The account's symmetric seal, derived from the private key (never stored)."""
        return OwnerSeal(_hkdf(self.private.private_bytes_raw(), b"hygie/v1 owner seal"))

    @classmethod
    def unwrap(
        cls, public: bytes, wrapped: bytes, master: MasterKey, context: bytes
    ) -> MailboxKeyPair:
        private = X25519PrivateKey.from_private_bytes(master.unwrap(wrapped, context))
        if private.public_key().public_bytes_raw() != public:
            raise CryptoError("mailbox private key does not match its public key")
        return cls(public, private)


@functools.lru_cache(maxsize=4096)
def _public_key(raw: bytes) -> X25519PublicKey:
    # Deliveries go to a few busy mailboxes: parse each public key once.
    return X25519PublicKey.from_public_bytes(raw)


def seal_content_key(content_key: bytes, recipient_public: bytes) -> bytes:
    """HPKE-seal a content key to a mailbox public key (RFC 9180 base mode)."""
    return _HPKE.encrypt(content_key, _public_key(recipient_public), info=_HPKE_INFO)


def open_content_key(sealed: bytes, keypair: MailboxKeyPair) -> bytes:
    UNSEALS.add()
    try:
        return _HPKE.decrypt(sealed, keypair.private, info=_HPKE_INFO)
    except InvalidTag:
        raise CryptoError("content key was not sealed to this mailbox") from None


class OwnerSeal:
    """A message's content key and a summary of its metadata, sealed for its owner account.

    ``01`` ‖ nonce ‖ AES-256-GCM(content key ‖ summary), with the account id and the blob id
    as associated data: a seal copied onto another message row (another blob) or another
    account's row does not open. The key comes from :attr:`MailboxKeyPair.owner`.
    """

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    @staticmethod
    def _context(account_id: int, blob: str) -> bytes:
        return b"hygie/v1 owner seal|%d|%s" % (account_id, blob.encode("ascii"))

    def seal(self, account_id: int, blob: str, content_key: bytes, summary: bytes) -> bytes:
        nonce = os.urandom(NONCE_LEN)
        sealed = self._aead.encrypt(nonce, content_key + summary, self._context(account_id, blob))
        return _OWNER_SEAL_VERSION + nonce + sealed

    def open(self, account_id: int, blob: str, sealed: bytes) -> tuple[bytes, bytes]:
        """(content key, summary); :class:`CryptoError` if it was not sealed for this account
        and blob, or was altered."""
        if sealed[:1] != _OWNER_SEAL_VERSION or len(sealed) < 1 + NONCE_LEN + KEY_LEN + TAG_LEN:
            raise CryptoError("unknown owner seal format")
        try:
            plain = self._aead.decrypt(
                sealed[1 : 1 + NONCE_LEN], sealed[1 + NONCE_LEN :], self._context(account_id, blob)
            )
        except InvalidTag:
            raise CryptoError("owner seal failed authentication") from None
        return plain[:KEY_LEN], plain[KEY_LEN:]


@dataclass(frozen=True)
class ContentKey:
    """A message's content key and the two subkeys derived from it."""

    key: bytes

    @classmethod
    def generate(cls) -> ContentKey:
        return cls(os.urandom(KEY_LEN))

    # Derived once per ContentKey object: a cached key serves many reads.
    @functools.cached_property
    def _body(self) -> AESGCM:
        return AESGCM(_hkdf(self.key, b"hygie/v1 body"))

    @functools.cached_property
    def _meta(self) -> AESGCM:
        return AESGCM(_hkdf(self.key, b"hygie/v1 meta"))

    def encrypt_meta(self, plaintext: bytes) -> bytes:
        nonce = os.urandom(NONCE_LEN)
        return nonce + self._meta.encrypt(nonce, plaintext, b"meta")

    def decrypt_meta(self, ciphertext: bytes) -> bytes:
        try:
            return self._meta.decrypt(ciphertext[:NONCE_LEN], ciphertext[NONCE_LEN:], b"meta")
        except InvalidTag:
            raise CryptoError("message metadata failed authentication") from None

    def encrypt_body(self, plaintext: bytes) -> bytes:
        """``HYB1`` ‖ plaintext length (8 bytes) ‖ chunks, each ``CHUNK_SIZE`` + tag."""
        aead = self._body
        n = len(plaintext)
        header = BODY_MAGIC + n.to_bytes(8, "big")
        count = max(1, -(-n // CHUNK_SIZE))
        out = [header]
        for i in range(count):
            chunk = plaintext[i * CHUNK_SIZE : (i + 1) * CHUNK_SIZE]
            out.append(aead.encrypt(_stream_nonce(i, i == count - 1), chunk, header))
        return b"".join(out)

    def decrypt_body(self, ciphertext: bytes) -> bytes:
        return self.decrypt_range(ciphertext, 0, None)

    def decrypt_range(self, ciphertext: bytes, start: int, end: int | None) -> bytes:
        """Plaintext bytes ``[start:end]``, decrypting only the chunks that hold them."""
        if len(ciphertext) < 12 or ciphertext[:4] != BODY_MAGIC:
            raise CryptoError("not a Hygie body ciphertext")
        header = ciphertext[:12]
        n = int.from_bytes(ciphertext[4:12], "big")
        count = max(1, -(-n // CHUNK_SIZE))
        if len(ciphertext) != 12 + n + count * TAG_LEN:
            raise CryptoError("body ciphertext is truncated or padded")
        end = n if end is None else min(end, n)
        start = max(0, min(start, end))
        first, last = start // CHUNK_SIZE, max(start, end - 1) // CHUNK_SIZE
        aead = self._body
        parts = []
        for i in range(first, min(last, count - 1) + 1):
            off = 12 + i * (CHUNK_SIZE + TAG_LEN)
            block = ciphertext[off : off + CHUNK_SIZE + TAG_LEN]
            try:
                parts.append(aead.decrypt(_stream_nonce(i, i == count - 1), block, header))
            except InvalidTag:
                raise CryptoError("message body failed authentication") from None
        data = b"".join(parts)
        base = first * CHUNK_SIZE
        return data[start - base : end - base]


class BodyStream:
    """Decrypts a body ciphertext chunk by chunk, as its blocks are read (no whole copy)."""

    HEADER = 12
    BLOCK = CHUNK_SIZE + TAG_LEN

    def __init__(self, key: ContentKey, header: bytes) -> None:
        if len(header) != self.HEADER or header[:4] != BODY_MAGIC:
            raise CryptoError("not a Hygie body ciphertext")
        self._aead = key._body
        self._header = header
        self.size = int.from_bytes(header[4:12], "big")
        self.count = max(1, -(-self.size // CHUNK_SIZE))

    def decrypt(self, index: int, block: bytes) -> bytes:
        try:
            return self._aead.decrypt(
                _stream_nonce(index, index == self.count - 1), block, self._header
            )
        except InvalidTag:
            raise CryptoError("message body failed authentication") from None


def _stream_nonce(index: int, last: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def blob_id(ciphertext: bytes) -> str:
    """Blobs are content-addressed by the SHA-256 of their ciphertext."""
    return hashlib.sha256(ciphertext).hexdigest()
