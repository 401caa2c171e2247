"""Patients known to this operator: INS (checked), identity traits, RNIV status, médecin
traitant. Only a QUAL identity may be used to address the patient's mailbox (design.md §5)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Table, select
from sqlalchemy.engine import Connection

from directory.ins import IdentityStatus, Ins, InsError
from directory.models import Patient
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
