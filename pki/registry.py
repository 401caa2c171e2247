"""What the CA remembers besides its keys: its settings (``ca.json``) and what it issued.

Files in the PKI directory::

    ca.json              0644  {"base_url": …, "crl_number": N}: where relying parties fetch the
                               CRL, OCSP and CA certificate, and the last CRL number used
    issued/<SERIAL>.pem  0644  every certificate issued, by upper-case hexadecimal serial
    issued/index.json    0644  one JSON document: {"certificates": [record, …]} (`IssuedRecord`)

Every file is replaced atomically (write, fsync, rename; see `pki.pemfile.replace`). There is no
lock: one process at a time administers the CA.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Final, Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pki import pemfile
from pki.errors import PkiError

DEFAULT_BASE_URL: Final = "http://localhost:8443/pki"
Status = Literal["valid", "revoked"]


@dataclass(frozen=True)
class CaSettings:
    base_url: str = DEFAULT_BASE_URL
    crl_number: int = 0

    @property
    def crl_url(self) -> str:
        return f"{self.base_url}/crl/intermediate.crl"

    @property
    def ocsp_url(self) -> str:
        return f"{self.base_url}/ocsp"

    @property
    def ca_issuers_url(self) -> str:
        # RFC 5280 §4.2.2.1: a single DER certificate (application/pkix-cert).
        return f"{self.base_url}/intermediate-ca.cer"

    @staticmethod
    def path(pki_dir: Path) -> Path:
        return pki_dir / "ca.json"

    @classmethod
    def load(cls, pki_dir: Path) -> CaSettings:
        path = cls.path(pki_dir)
        if not path.exists():
            return cls()  # a CA created before ca.json existed
        try:
            data = json.loads(pemfile.read(path, what="CA settings"))
            return cls(base_url=str(data["base_url"]), crl_number=int(data["crl_number"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise PkiError(f"CA settings {path} are damaged: {exc}") from exc

    def save(self, pki_dir: Path) -> None:
        data = json.dumps(asdict(self), indent=2).encode() + b"\n"
        try:
            pemfile.replace(self.path(pki_dir), data, private=False)
        except OSError as exc:
            raise PkiError(f"cannot write the CA settings in {pki_dir}: {exc}") from exc


def check_base_url(base_url: str) -> str:
    base_url = base_url.rstrip("/")
    if not base_url.startswith(("http://", "https://")) or any(c.isspace() for c in base_url):
        raise PkiError(f"the PKI base URL must be an http:// or https:// URL, not {base_url!r}")
    return base_url


@dataclass(frozen=True)
class IssuedRecord:
    """One issued certificate as the registry lists it. Times are aware UTC datetimes."""

    serial: int
    profile: str
    subject: str
    not_before: dt.datetime
    not_after: dt.datetime
    status: Status = "valid"
    revoked_at: dt.datetime | None = None
    reason: x509.ReasonFlags | None = None

    @property
    def serial_hex(self) -> str:
        return f"{self.serial:X}"

    def to_json(self) -> dict[str, object]:
        return {
            "serial": self.serial_hex,
            "profile": self.profile,
            "subject": self.subject,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "status": self.status,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "reason": self.reason.value if self.reason else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> IssuedRecord:
        status = data["status"]
        if status not in ("valid", "revoked"):
            raise ValueError(f"unknown status {status!r}")
        revoked_at, reason = data.get("revoked_at"), data.get("reason")
        return cls(
            serial=int(str(data["serial"]), 16),
            profile=str(data["profile"]),
            subject=str(data["subject"]),
            not_before=dt.datetime.fromisoformat(str(data["not_before"])),
            not_after=dt.datetime.fromisoformat(str(data["not_after"])),
            status=status,
            revoked_at=dt.datetime.fromisoformat(str(revoked_at)) if revoked_at else None,
            reason=x509.ReasonFlags(str(reason)) if reason else None,
        )


def parse_serial(serial: int | str) -> int:
    """A serial as an int; strings are hexadecimal, with optional ``0x`` and ``:`` separators."""
    if isinstance(serial, int):
        return serial
    text = serial.strip().replace(":", "").lower().removeprefix("0x")
    try:
        return int(text, 16)
    except ValueError as exc:
        raise PkiError(f"not a certificate serial number: {serial!r}") from exc


class Registry:
    """The certificates a CA issued, in ``pki_dir/issued``."""

    def __init__(self, pki_dir: Path) -> None:
        self.directory = pki_dir / "issued"
        self.index = self.directory / "index.json"

    def records(self) -> list[IssuedRecord]:
        if not self.index.exists():
            return []
        try:
            data = json.loads(pemfile.read(self.index, what="certificate index"))
            return [IssuedRecord.from_json(item) for item in data["certificates"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise PkiError(f"certificate index {self.index} is damaged: {exc}") from exc

    def find(self, serial: int | str) -> IssuedRecord | None:
        number = parse_serial(serial)
        return next((r for r in self.records() if r.serial == number), None)

    def certificate(self, serial: int | str) -> x509.Certificate:
        path = self.directory / f"{parse_serial(serial):X}.pem"
        return x509.load_pem_x509_certificate(pemfile.read(path, what="issued certificate"))

    def add(self, certificate: x509.Certificate, profile: str) -> IssuedRecord:
        record = IssuedRecord(
            serial=certificate.serial_number,
            profile=profile,
            subject=certificate.subject.rfc4514_string(),
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
        )
        records = self.records()
        if any(r.serial == record.serial for r in records):
            raise PkiError(f"serial {record.serial_hex} was already issued")
        try:
            self.directory.mkdir(mode=0o755, exist_ok=True)
            pemfile.replace(
                self.directory / f"{record.serial_hex}.pem",
                certificate.public_bytes(serialization.Encoding.PEM),
                private=False,
            )
        except OSError as exc:
            raise PkiError(f"cannot record the certificate in {self.directory}: {exc}") from exc
        self._save([*records, record])
        return record

    def revoke(
        self, serial: int | str, reason: x509.ReasonFlags, when: dt.datetime
    ) -> IssuedRecord:
        number = parse_serial(serial)
        records = self.records()
        for index, record in enumerate(records):
            if record.serial == number:
                if record.status == "revoked":
                    raise PkiError(f"certificate {record.serial_hex} is already revoked")
                records[index] = replace(record, status="revoked", revoked_at=when, reason=reason)
                self._save(records)
                return records[index]
        raise PkiError(f"no certificate with serial {number:X} was issued by this CA")

    def _save(self, records: list[IssuedRecord]) -> None:
        data = {"certificates": [r.to_json() for r in records]}
        try:
            pemfile.replace(self.index, json.dumps(data, indent=1).encode() + b"\n", private=False)
        except OSError as exc:
            raise PkiError(f"cannot write the certificate index {self.index}: {exc}") from exc
