"""Two reading processes, a half of the file each (issue 5 items 2 and 7): the cut falls
between two people, line numbers stay those of the file, and the directory is the same as
with one reader."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from directory import extracts, load, synth
from directory.extracts import PS_LIBREACCES, Part, halves
from directory.load import LINE_HANDLERS, import_extract
from storage.db import migrate

TABLES = {
    "dir_practitioners": "idnat, civility, family, given, profession_code, specialty_code,"
    " search, active",
    "dir_organisations": "identifier, finess, siret, name, trade_name, address, postcode, city,"
    " search, active",
    "dir_activities": "key, practitioner_idnat, organisation_identifier, mode, role, active",
    "dir_search": "kind, ref, doc",
    "dir_search_words": "word",
}


def _file(tmp_path: Path, rows: int) -> tuple[Path, list[int]]:
    """A synthetic PS_LibreAcces file with two bad lines, one in each half; their numbers."""
    path = tmp_path / "PS_LibreAcces_Personne_activite_test.txt"
    with path.open("w", encoding="utf-8") as fh:
        synth.write(PS_LIBREACCES, rows, fh)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    bad = [3, len(lines) - 2]  # 0-based: the 4th line of the file, the third from the end
    for i in bad:
        lines[i] = "8|not|enough|fields|\n"
    path.write_text("".join(lines), encoding="utf-8")
    return path, [i + 1 for i in bad]


def _contents(db: Path) -> dict[str, list[tuple[object, ...]]]:
    conn = sqlite3.connect(db)
    try:
        return {
            table: sorted(conn.execute(f"SELECT {columns} FROM {table}").fetchall())  # noqa: S608
            for table, columns in TABLES.items()
        }
    finally:
        conn.close()


def test_the_cut_falls_between_two_people(tmp_path: Path) -> None:
    path, _ = _file(tmp_path, 3000)
    parts = halves(path, "id", LINE_HANDLERS[PS_LIBREACCES][0])
    assert parts is not None
    first, second = parts
    assert (first.start, first.number) == (0, 2) and first.stop == second.start
    data = path.read_bytes()
    before, after = data[: second.start], data[second.start :]
    assert second.number == before.count(b"\n") + 1  # the cut line's number in the file
    assert len(data) // 2 <= second.start < len(data)
    previous = before.splitlines()[-1].decode().split("|")
    following = after.splitlines()[0].decode().split("|")
    # Column 1 is "Identifiant PP": one person's lines are on one side.
    assert previous[1] != following[1]
    assert following[1] not in {line.split(b"|")[1].decode() for line in before.splitlines()}


def test_a_file_with_one_person_after_its_middle_is_not_cut(tmp_path: Path) -> None:
    path, _ = _file(tmp_path, 50)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    middle = len(lines) // 3
    same = "|".join(lines[middle].split("|"))
    path.write_text("".join(lines[:middle] + [same] * (len(lines) - middle)), encoding="utf-8")
    assert halves(path, "id", LINE_HANDLERS[PS_LIBREACCES][0]) is None


def test_reading_a_part_numbers_lines_as_the_file_does(tmp_path: Path) -> None:
    path, bad = _file(tmp_path, 400)
    wanted, required, _ = LINE_HANDLERS[PS_LIBREACCES]
    parts = halves(path, "id", wanted)
    assert parts is not None
    numbers: list[int] = []
    rejected: list[int] = []
    for part in parts:
        with path.open("rb") as fh:
            for number, row in extracts.read_rows(fh, wanted, required, part):
                numbers.append(number)
                if isinstance(row, extracts.Rejected):
                    rejected.append(row.line)
    with path.open("rb") as fh:
        whole = [n for n, _ in extracts.read_rows(fh, wanted, required, Part())]
    assert numbers == whole  # each line once, in file order across the two parts
    assert rejected == bad


async def test_two_readers_write_what_one_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, bad = _file(tmp_path, 3000)
    reports, contents = [], []
    for readers, threshold in ((1, 1 << 40), (2, 0)):
        db = tmp_path / f"readers{readers}.db"
        url = f"sqlite+aiosqlite:///{db}"
        await migrate(url)
        monkeypatch.setattr(load, "CHILD_READER_BYTES", 0)
        monkeypatch.setattr(load, "TWO_READERS_BYTES", threshold)
        seen: list[int] = []
        monkeypatch.setattr(load, "_parsed_in_children", _counting(load._parsed_in_children, seen))
        reports.append(await import_extract(url, PS_LIBREACCES, path))
        assert seen == [readers]
        contents.append(_contents(db))
    one, two = reports
    assert (two.lines, two.imported, two.rejected) == (one.lines, one.imported, 2)
    assert [r.line for r in two.rejections] == [r.line for r in one.rejections] == bad
    words = [set(c.pop("dir_search_words")) for c in contents]
    assert contents[1] == contents[0]
    assert len(contents[0]["dir_practitioners"]) > 1000
    # The vocabulary may hold a few more words: a structure met again in the second half
    # with other values offers their words, though the structure keeps its first values.
    assert words[1] >= words[0]
    assert len(words[1] - words[0]) < 0.05 * len(words[0])


def _counting(real: Callable[..., Any], seen: list[int]) -> Callable[..., Any]:
    """``_parsed_in_children`` noting how many readers it was given."""

    def wrapper(path: Path, kind: str, parts: Sequence[Part | None]) -> Any:
        seen.append(len(parts))
        return real(path, kind, parts)

    return wrapper
