"""The demo directory of ``hygie init --demo``: a small synthetic PS_LibreAcces extract in
which the demo accounts are real entries (Dr Jean Dupont, généraliste; Dr Claire Martin,
cardiologue; the cardiology secretariat of their hospital), and the demo patient with a
qualified INS whose médecin traitant is Dr Dupont."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

from directory import synth
from directory.extracts import PS_HEADER, PS_LIBREACCES
from directory.ins import IdentityStatus, Ins
from directory.load import import_extract
from directory.local import set_mailbox
from directory.patients import Traits, add_patient
from storage.db import Database

SYNTHETIC_ROWS = 500
HOSPITAL = "1690000001"
#: Synthetic practitioners numbered beyond the generated ones.
JEAN = "8" + synth.rpps(900_001)
CLAIRE = "8" + synth.rpps(900_002)


def _line(idnat: str, given: str, family: str, specialty: tuple[str, str]) -> str:
    values = {
        "Type d'identifiant PP": "8",
        "Identifiant PP": idnat[1:],
        "Identification nationale PP": idnat,
        "Libellé civilité d'exercice": "Docteur",
        "Nom d'exercice": family,
        "Prénom d'exercice": given,
        "Code profession": "10",
        "Libellé profession": "Médecin",
        "Code savoir-faire": specialty[0],
        "Libellé savoir-faire": specialty[1],
        "Numéro FINESS site": HOSPITAL[1:],
        "Raison sociale site": "Hôpital de démonstration Hygie",
        "Code postal (coord. structure)": "69003",
        "Libellé commune (coord. structure)": "LYON",
        "Libellé mode exercice": "Salarié",
    }
    return "|".join(values.get(h, "") for h in PS_HEADER) + "|\n"


async def load_demo(db: Database, domain: str) -> None:
    with tempfile.TemporaryDirectory(prefix="hygie-demo-") as tmp:
        path = Path(tmp) / "PS_LibreAcces_Personne_activite_demo.txt"
        with path.open("w", encoding="utf-8") as fh:
            synth.write(PS_LIBREACCES, SYNTHETIC_ROWS, fh)
            fh.write(_line(JEAN, "Jean", "DUPONT", ("SM54", "Médecine générale")))
            fh.write(
                _line(CLAIRE, "Claire", "MARTIN", ("SM04", "Cardiologie et maladies vasculaires"))
            )
        await import_extract(db.url, PS_LIBREACCES, path)
    await set_mailbox(db, f"jean.dupont@{domain}", "PER", practitioner_idnat=JEAN, preferred=True)
    await set_mailbox(db, f"claire.martin@{domain}", "PER", practitioner_idnat=CLAIRE)
    await set_mailbox(
        db,
        f"secretariat.cardiologie@{domain}",
        "ORG",
        organisation_identifier=HOSPITAL,
        service="Cardiologie",
    )
    ins = Ins.parse("279035121518989")
    traits = Traits("MARTIN", ("Louise", "Marie"), dt.date(1979, 3, 12), "F", "51215")
    await add_patient(db, ins, traits, IdentityStatus.QUAL, medecin_traitant_idnat=JEAN)
