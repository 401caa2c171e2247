"""Importing the two extract layouts: IdNat prefixes, merged duplicates, rejected lines with
their numbers and reasons, re-import that updates and deactivates, ZIP input (issue 5 item 2)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from directory import synth
from directory.extracts import MSSANTE, PS_HEADER, PS_LIBREACCES, ExtractError
from directory.load import import_extract
from storage.db import Database
from tests.directory.conftest import DUPONT, MSS_EDGE, PS_EDGE


async def rows(db: Database, sql: str, *params: object) -> list[tuple[object, ...]]:
    return await db.raw_rows(sql, *params)


async def test_ps_libreacces_edge_cases(migrated: str, db: Database) -> None:
    report = await import_extract(migrated, PS_LIBREACCES, PS_EDGE)
    assert report.lines == 6
    assert report.imported == 4
    assert [(r.line, r.reason) for r in report.rejections] == [
        (5, "bad RPPS check digit"),
        (6, f"5 fields where the header has {len(PS_HEADER)}"),
    ]
    pracs = await rows(
        db, "SELECT idnat, family, given, specialty_code FROM dir_practitioners ORDER BY idnat"
    )
    assert [p[0][0] for p in pracs] == ["0", "8", "8"]  # ADELI first, then two RPPS
    assert (DUPONT, "DUPONT", "Hélène", "SM04") in pracs
    orgs = await rows(
        db, "SELECT identifier, name, city FROM dir_organisations ORDER BY identifier"
    )
    assert ("1690000001", 'Hôpital "Édouard Herriot"', "LYON") in orgs  # quotes kept as text
    acts = await rows(
        db, "SELECT count(*) FROM dir_activities WHERE practitioner_idnat = ?", DUPONT
    )
    assert acts == [(2,)]


async def test_mssante_duplicates_are_merged_and_bad_lines_reported(
    migrated: str, db: Database
) -> None:
    await import_extract(migrated, PS_LIBREACCES, PS_EDGE)
    report = await import_extract(migrated, MSSANTE, MSS_EDGE)
    assert [r.line for r in report.rejections] == [5, 6, 7]
    assert "unknown mailbox type" in report.rejections[0].reason
    assert report.rejections[1].reason == "not a mail address"
    boxes = await rows(
        db,
        "SELECT address, type, practitioner_idnat, organisation_identifier, service, active"
        " FROM dir_mailboxes ORDER BY address",
    )
    assert [(b[0], b[1], b[2], b[3], b[4], bool(b[5])) for b in boxes] == [
        ("helene.dupont@medecin.mssante.fr", "PER", DUPONT, "", "Cardiologie", True),
        ("secretariat.cardio@ch-lyon.mssante.fr", "ORG", "", "1690000001", "Cardiologie", True),
    ]


async def test_reimport_updates_changed_rows_and_deactivates_vanished_ones(
    migrated: str, db: Database, tmp_path: Path
) -> None:
    await import_extract(migrated, PS_LIBREACCES, PS_EDGE)
    await import_extract(migrated, MSSANTE, MSS_EDGE)
    before = await rows(db, "SELECT updated_at FROM dir_practitioners WHERE idnat = ?", DUPONT)
    # The next release: Dupont's name changed, Martin and the ORG mailbox are gone.
    lines = PS_EDGE.read_text("utf-8").splitlines()
    kept = [lines[0], lines[1].replace("DUPONT", "DUPONT-MOREAU"), lines[3]]
    newer = tmp_path / "PS_LibreAcces_Personne_activite_202612010000.txt"
    newer.write_text("\n".join(kept) + "\n", "utf-8")
    report = await import_extract(migrated, PS_LIBREACCES, newer)
    assert report.deactivated >= 2  # Martin, his cabinet, Dupont's cabinet activity
    prac = await rows(
        db, "SELECT family, active, updated_at FROM dir_practitioners WHERE idnat = ?", DUPONT
    )
    assert prac[0][0] == "DUPONT-MOREAU" and bool(prac[0][1])
    assert str(prac[0][2]) != str(before[0][0])
    gone = await rows(db, "SELECT active FROM dir_practitioners WHERE family = 'MARTIN'")
    assert [bool(g[0]) for g in gone] == [False]
    mss = MSS_EDGE.read_text("utf-8").splitlines()
    only_per = tmp_path / "Extraction_Correspondance_MSSante_202612010000.txt"
    only_per.write_text("\n".join(mss[:2]) + "\n", "utf-8")
    await import_extract(migrated, MSSANTE, only_per)
    boxes = await rows(db, "SELECT address, active FROM dir_mailboxes ORDER BY address")
    assert [(b[0], bool(b[1])) for b in boxes] == [
        ("helene.dupont@medecin.mssante.fr", True),
        ("secretariat.cardio@ch-lyon.mssante.fr", False),
    ]


async def test_the_published_zip_is_read_in_place(migrated: str, tmp_path: Path) -> None:
    archive = tmp_path / "Extraction_Correspondance_MSSante.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("Extraction_Correspondance_MSSante_202611220300.txt", MSS_EDGE.read_bytes())
    report = await import_extract(migrated, MSSANTE, archive)
    assert report.imported == 3
    wrong = tmp_path / "other.zip"
    with zipfile.ZipFile(wrong, "w") as z:
        z.writestr("README.txt", b"nothing")
    with pytest.raises(ExtractError, match="holds no Extraction_Correspondance_MSSante"):
        await import_extract(migrated, MSSANTE, wrong)


async def test_columns_are_found_by_name_in_any_order(migrated: str, tmp_path: Path) -> None:
    lines = PS_EDGE.read_text("utf-8").splitlines()
    cols = [line[:-1].split("|") for line in lines[:2]]
    order = list(reversed(range(len(cols[0]))))
    path = tmp_path / "drifted.txt"
    path.write_text("\n".join("|".join(c[i] for i in order) + "|" for c in cols) + "\n", "utf-8")
    report = await import_extract(migrated, PS_LIBREACCES, path)
    assert report.imported == 1 and report.rejected == 0
    missing = tmp_path / "missing.txt"
    missing.write_text("Nom d'exercice|Prénom d'exercice|\nA|B|\n", "utf-8")
    with pytest.raises(ExtractError, match="Type d'identifiant PP"):
        await import_extract(migrated, PS_LIBREACCES, missing)


async def test_synthetic_files_import_without_rejections(migrated: str, tmp_path: Path) -> None:
    ps, mss = tmp_path / "ps.txt", tmp_path / "mss.txt"
    with ps.open("w", encoding="utf-8") as fh:
        synth.write(PS_LIBREACCES, 3000, fh)
    with mss.open("w", encoding="utf-8") as fh:
        synth.write(MSSANTE, 1000, fh)
    first = await import_extract(migrated, PS_LIBREACCES, ps)
    second = await import_extract(migrated, MSSANTE, mss)
    assert (first.rejected, second.rejected) == (0, 0)
    assert (first.imported, second.imported) == (3000, 1000)
