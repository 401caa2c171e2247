"""Usage indicators (issue 11 item 4): what each structure and each software did this month.

:class:`UsageRecorder` is called after the acts it counts (a submitted message, a message
relayed in, documents filed in a dossier, an integration MDN sent back), turns them into
:class:`storage.usage.UsageEvent` rows without addresses or content, hands them to the
writer without waiting (`storage.usage.UsageLog`) and bumps the matching Prometheus counters
(`server.ops.metrics`). It never raises: the message is delivered already.

The structure of a mailbox comes from the directory (``dir_mailboxes``: the owning
structure, else the practitioner's activity, ``dir_activities``; then ``dir_organisations``
for its FINESS or SIRET); the software is the ``X-MSS-NIL`` header field (MSSanté ECO.2.4.3).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import time
from collections.abc import Sequence
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from typing import TYPE_CHECKING

import structlog

from server.delivery.patients import is_patient_address
from storage.db import Database
from storage.mailstore import Recipient
from storage.usage import UsageEvent, UsageLog, month_of

if TYPE_CHECKING:
    from server.ops.metrics import ServerMetrics

log = structlog.get_logger("hygie.usage")
PATIENT = "PAT"
#: Label under which the key of the patients-reached digests is derived from the master key.
REACH_SECRET = "usage-reach"  # noqa: S105 (a derivation label)
PROFILE_TTL = 300.0
PROFILE_CACHE = 10_000
SOFTWARE_MAX = 100


@dataclass(frozen=True)
class Profile:
    structure: str  # "FINESS:…", "SIRET:…", another structure IdNat, or ""
    mailbox_type: str  # PER, ORG, APP, CAB, PAT or ""


def software_of(raw: bytes) -> str:
    """The ``X-MSS-NIL`` value (printable, at most 100 characters), or ``""``."""
    end = raw.find(b"\r\n\r\n")
    head = raw[: end + 4] if end >= 0 else raw[:65536]
    if b"x-mss-nil" not in head.lower():
        return ""
    value = BytesHeaderParser().parsebytes(head).get("X-MSS-NIL")
    text = "".join(c for c in str(value or "") if c.isprintable()).strip()
    return text[:SOFTWARE_MAX]


def structure_of(identifier: str, finess: str = "", siret: str = "") -> str:
    """A structure's label: its FINESS or SIRET, from the directory row or the IdNat
    (``1`` + FINESS, ``3`` + SIRET, ANS TRE_G07)."""
    if finess:
        return f"FINESS:{finess}"
    if siret:
        return f"SIRET:{siret}"
    if identifier[:1] == "1" and len(identifier) == 10:
        return f"FINESS:{identifier[1:]}"
    if identifier[:1] == "3" and len(identifier) == 15:
        return f"SIRET:{identifier[1:]}"
    return identifier[:40]


class UsageRecorder:
    def __init__(
        self, db: Database, reach_key: bytes, metrics: ServerMetrics | None = None
    ) -> None:
        self.db = db
        self.log = UsageLog(db)
        self.metrics = metrics
        self._reach_key = reach_key
        self._profiles: dict[str, tuple[float, Profile]] = {}

    # -- the acts ---------------------------------------------------------------------------

    async def submitted(
        self, raw: bytes, sender: str, local: Sequence[Recipient], remote: int
    ) -> None:
        """A message a local account submitted: one ``sent``, a ``received`` per local
        mailbox, a ``patient`` per patient reached."""
        try:
            software = software_of(raw)
            origin = await self.profile(sender)
            events = [UsageEvent("sent", origin.structure, software, origin.mailbox_type)]
            events += await self._arrivals(software, origin, local)
            self._record(events)
        except Exception as exc:
            log.warning("usage_failed", error=type(exc).__name__)

    async def relayed(self, raw: bytes, local: Sequence[Recipient]) -> None:
        """A message from another operator, delivered here."""
        try:
            software = software_of(raw)
            # The sender is another operator's: no structure or type known here, but the
            # patients it reached here count (by software, and in the month's total).
            self._record(await self._arrivals(software, Profile("", ""), local))
        except Exception as exc:
            log.warning("usage_failed", error=type(exc).__name__)

    async def filed(self, raw: bytes, sender: str, patient: Recipient, documents: int) -> None:
        """``documents`` filed in ``patient``'s dossier, on behalf of the sender."""
        try:
            origin = await self.profile(sender)
            software = software_of(raw)
            self._record([
                UsageEvent("filed", origin.structure, software, origin.mailbox_type,
                           count=documents),
                UsageEvent("patient", origin.structure, software, origin.mailbox_type,
                           reach=self._reach(patient.account_id)),
            ])  # fmt: skip
        except Exception as exc:
            log.warning("usage_failed", error=type(exc).__name__)

    async def mdn(self, raw: bytes, sender: str, code: int) -> None:
        """An integration MDN sent back for the sender's message: 0 processed, else 900-906."""
        try:
            origin = await self.profile(sender)
            event = UsageEvent("mdn", origin.structure, software_of(raw), origin.mailbox_type,
                               code=code)  # fmt: skip
            self._record([event])
        except Exception as exc:
            log.warning("usage_failed", error=type(exc).__name__)

    async def flush(self) -> None:
        await self.log.flush()

    # -- helpers ----------------------------------------------------------------------------

    async def _arrivals(
        self, software: str, origin: Profile, local: Sequence[Recipient]
    ) -> list[UsageEvent]:
        events = []
        for recipient in local:
            target = await self.profile(recipient.address)
            events.append(UsageEvent("received", target.structure, software, target.mailbox_type))
            if target.mailbox_type == PATIENT:
                events.append(UsageEvent("patient", origin.structure, software,
                                         origin.mailbox_type,
                                         reach=self._reach(recipient.account_id)))  # fmt: skip
        return events

    def _record(self, events: list[UsageEvent]) -> None:
        self.log.record(events)
        if self.metrics is not None:
            for event in events:
                self.metrics.usage(event)

    def _reach(self, account_id: int) -> str:
        """A digest of the patient's mailbox that only compares within this month: distinct
        patients can be counted, nobody can be followed from month to month or named."""
        month = month_of(dt.datetime.now(dt.UTC))
        message = f"{month}:{account_id}".encode()
        return hmac.new(self._reach_key, message, hashlib.sha256).hexdigest()[:32]

    async def profile(self, address: str) -> Profile:
        address = address.strip().lower()
        if not address:
            return Profile("", "")
        if is_patient_address(address):
            return Profile("", PATIENT)
        now = time.monotonic()
        cached = self._profiles.get(address)
        if cached is not None and now - cached[0] < PROFILE_TTL:
            return cached[1]
        found = await self._lookup(address)
        if len(self._profiles) >= PROFILE_CACHE:
            self._profiles.clear()
        self._profiles[address] = (now, found)
        return found

    async def _lookup(self, address: str) -> Profile:
        try:
            rows = await self.db.lookup(
                "SELECT type, organisation_identifier, practitioner_idnat FROM dir_mailboxes"
                " WHERE address = ?",
                address,
            )
            if not rows:
                return Profile("", "")
            kind, organisation, practitioner = (str(v or "") for v in rows[0])
            if not organisation and practitioner:
                activity = await self.db.lookup(
                    "SELECT organisation_identifier FROM dir_activities"
                    " WHERE practitioner_idnat = ? AND organisation_identifier <> ''"
                    " ORDER BY organisation_identifier LIMIT 1",
                    practitioner,
                )
                organisation = str(activity[0][0]) if activity else ""
            if not organisation:
                return Profile("", kind)
            org = await self.db.lookup(
                "SELECT finess, siret FROM dir_organisations WHERE identifier = ?", organisation
            )
            finess, siret = (str(v or "") for v in org[0]) if org else ("", "")
            return Profile(structure_of(organisation, finess, siret), kind)
        except Exception as exc:  # an operator may run without the directory tables
            log.info("usage_profile_unknown", error=type(exc).__name__)
            return Profile("", "")
