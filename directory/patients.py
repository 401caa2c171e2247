"""Patients known to this operator: INS (checked), identity traits, RNIV status, médecin
traitant; and the one rule that opens a patient's mailbox.

Only a QUAL identity may be used to address the patient's mailbox (design.md §5; MSSanté
ECO.2.2.6, reference test case 12): ``<INS matricule>@patient.<domain>`` is created only for
a matricule with a valid key, registered here with the status QUAL, under a production INS
OID (a test OID only when the operator runs in test mode). Every path that creates a
patient's account asks :func:`mailbox_refusal`: ``hygie user add``, ``hygie patient add``,
the opening of the spaces invited by ``hygie patient invite``, ``hygie init --demo``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Table, select
from sqlalchemy.engine import Connection

from directory.ins import IdentityStatus, Ins, InsError, check_matricule, check_oid
from directory.models import Patient
from storage.accounts import AccountInfo, AccountRefused, create_account, normalize_address
from storage.crypto import MasterKey
from storage.db import Database

PATIENTS: Table = Patient.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class Traits:
    birth_family: str
    given_names: tuple[str, ...]
    birth_date: dt.date
    sex: str  # M, F or I
    birthplace: str = ""  # INSEE code

    def __post_init__(self) -> None:
        if not self.birth_family or not self.given_names:
            raise InsError("the birth name and at least one given name are required")
        if self.sex not in ("M", "F", "I"):
            raise InsError("sex is M, F or I")


async def add_patient(
    db: Database,
    ins: Ins,
    traits: Traits,
    status: IdentityStatus,
    medecin_traitant_idnat: str = "",
) -> None:
    def write(conn: Connection) -> None:
        if conn.execute(select(PATIENTS.c.id).where(PATIENTS.c.ins == ins.matricule)).first():
            raise InsError("this INS is already registered")
        conn.execute(
            PATIENTS.insert().values(
                ins=ins.matricule,
                oid=ins.oid,
                birth_family=traits.birth_family,
                given_names=" ".join(traits.given_names),
                first_given=traits.given_names[0],
                birth_date=traits.birth_date,
                sex=traits.sex,
                birthplace=traits.birthplace,
                status=status.value,
                medecin_traitant_idnat=medecin_traitant_idnat,
                updated_at=dt.datetime.now(dt.UTC),
            )
        )

    await db.writer.run(write)


async def identity_status(db: Database, matricule: str) -> IdentityStatus | None:
    rows = await db.raw_rows("SELECT status FROM dir_patients WHERE ins = ?", matricule)
    return IdentityStatus(rows[0][0]) if rows else None


class MailboxRefused(InsError):
    """No mailbox for this patient address; the message says why in one line, never
    repeating the INS."""


def mailbox_refusal(status: IdentityStatus | None, oid: str, *, test_mode: bool) -> str | None:
    """Why a patient registered with ``status`` and ``oid`` (None: not registered) may not
    have a mailbox, or None when they may. The one rule of test case 12."""
    if status is None:
        return (
            "no patient is registered with this INS: register the identity first "
            "(hygie patient add, or hygie patient invite)"
        )
    if status is not IdentityStatus.QUAL:
        return (
            f"a patient mailbox needs a qualified identity (status QUAL); this one is "
            f"{status.value}"
        )
    try:
        check_oid(oid, test_mode=test_mode)
    except InsError as exc:
        return str(exc)
    return None


def patient_matricule(address: str, patient_domain: str) -> str:
    """The matricule of a patient address ``<INS>@<patient_domain>``, key checked, or
    :class:`MailboxRefused`."""
    local, _, domain = normalize_address(address).rpartition("@")
    if domain != patient_domain.lower():
        raise MailboxRefused(f"a patient address is <INS>@{patient_domain}")
    try:
        return check_matricule(local)
    except InsError as exc:
        raise MailboxRefused(f"a patient address is <INS>@{patient_domain}: {exc}") from None


def refusals(
    conn: Connection, matricules: Iterable[str], *, test_mode: bool
) -> dict[str, str | None]:
    """:func:`mailbox_refusal` for each matricule (upper case), read in ``conn``'s
    transaction: for a batch, and for the check made where the account is created."""
    wanted = sorted({m.upper() for m in matricules})
    found = {
        str(row.ins): (IdentityStatus(row.status), str(row.oid))
        for row in conn.execute(
            select(PATIENTS.c.ins, PATIENTS.c.status, PATIENTS.c.oid).where(
                PATIENTS.c.ins.in_(wanted)
            )
        )
    }
    return {
        m: mailbox_refusal(*found[m], test_mode=test_mode)
        if m in found
        else mailbox_refusal(None, "", test_mode=test_mode)
        for m in wanted
    }


async def open_patient_mailbox(
    db: Database,
    master: MasterKey,
    address: str,
    password: str | None,
    *,
    patient_domain: str,
    test_mode: bool,
) -> AccountInfo:
    """Create the mailbox of a patient address if the rule allows it, checked in the
    transaction that creates it; else :class:`MailboxRefused` (``AccountError`` if the
    mailbox exists already)."""
    matricule = patient_matricule(address, patient_domain)

    def guard(conn: Connection) -> str | None:
        return refusals(conn, [matricule], test_mode=test_mode)[matricule]

    try:
        return await create_account(db, master, address, password, guard=guard)
    except AccountRefused as exc:
        raise MailboxRefused(str(exc)) from None
