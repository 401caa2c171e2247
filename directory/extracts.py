"""Streaming readers of the Annuaire Santé public extracts (ANS, service.annuaire.sante.fr).

Both files are UTF-8, ``|``-delimited, with one header row, and every line ends with ``|``.
Values are never quoted: a ``"`` is an ordinary character. Columns drift between releases, so
they are found by header name (compared without accents, case or punctuation), never by
position. A ``.zip`` as published is read in place: the member whose name starts with the
extract's name (``PS_LibreAcces_Personne_activite``, ``Extraction_Correspondance_MSSante``).

Lines are read one at a time (memory does not grow with the file), each at most
:data:`MAX_LINE` bytes: a longer one is skipped unread, in pieces (a file without a newline
costs no more memory than one line). A line that cannot be used is returned as a
:class:`Rejected` with its line number (1 = the header) and the reason. A header of more than
:data:`MAX_COLUMNS` columns, or not UTF-8, fails the import (issue 26).
"""

from __future__ import annotations

import re
import unicodedata
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import IO

PS_LIBREACCES = "ps-libreacces"
MSSANTE = "mssante"

#: ``PS_LibreAcces_Personne_activite`` (56 columns, release 2024–2026).
PS_HEADER = (
    "Type d'identifiant PP", "Identifiant PP", "Identification nationale PP",
    "Code civilité d'exercice", "Libellé civilité d'exercice", "Code civilité",
    "Libellé civilité", "Nom d'exercice", "Prénom d'exercice", "Code profession",
    "Libellé profession", "Code catégorie professionnelle", "Libellé catégorie professionnelle",
    "Code type savoir-faire", "Libellé type savoir-faire", "Code savoir-faire",
    "Libellé savoir-faire", "Code mode exercice", "Libellé mode exercice", "Numéro SIRET site",
    "Numéro SIREN site", "Numéro FINESS site", "Numéro FINESS établissement juridique",
    "Identifiant technique de la structure", "Raison sociale site", "Enseigne commerciale site",
    "Complément destinataire (coord. structure)",
    "Complément point géographique (coord. structure)", "Numéro Voie (coord. structure)",
    "Indice répétition voie (coord. structure)", "Code type de voie (coord. structure)",
    "Libellé type de voie (coord. structure)", "Libellé Voie (coord. structure)",
    "Mention distribution (coord. structure)", "Bureau cedex (coord. structure)",
    "Code postal (coord. structure)", "Code commune (coord. structure)",
    "Libellé commune (coord. structure)", "Code pays (coord. structure)",
    "Libellé pays (coord. structure)", "Téléphone (coord. structure)",
    "Téléphone 2 (coord. structure)", "Télécopie (coord. structure)",
    "Adresse e-mail (coord. structure)", "Code Département (structure)",
    "Libellé Département (structure)", "Ancien identifiant de la structure",
    "Autorité d'enregistrement", "Code secteur d'activité", "Libellé secteur d'activité",
    "Code section tableau pharmaciens", "Libellé section tableau pharmaciens", "Code rôle",
    "Libellé rôle", "Code genre activité", "Libellé genre activité",
)  # fmt: skip

#: ``Extraction_Correspondance_MSSante`` (31 columns, from "Type de BAL" to "Pays").
MSS_HEADER = (
    "Type de BAL", "Adresse BAL", "Type Identifiant PP", "Identifiant PP",
    "Identification nationale PP", "Type identifiant structure", "Identification Structure",
    "Service de rattachement", "Civilité d'exercice", "Nom d'exercice", "Prénom d'exercice",
    "Catégorie profession", "Libellé de catégorie profession", "Code Profession",
    "Libellé Profession", "Code savoir-faire", "Libellé savoir-faire", "Dématérialisation",
    "Raison Sociale structure BAL", "Enseigne commerciale structure BAL",
    "Complément localisation structure BAL", "Complément distribution structure BAL",
    "Numéro Voie structure BAL", "Complément numéro voie structure BAL",
    "Type de voie structure BAL", "Libellé Voie structure BAL", "Lieu-dit structure BAL",
    "Ligne d'acheminement structure BAL", "Code postal", "Département", "Pays",
)  # fmt: skip

#: The longest line read (bytes): the published lines are under 1 KiB.
MAX_LINE = 64 * 1024
#: Columns of the header (56 and 31 in the published files).
MAX_COLUMNS = 500

_MEMBER_PREFIX = {
    PS_LIBREACCES: "PS_LibreAcces_Personne_activite",
    MSSANTE: "Extraction_Correspondance_MSSante",
}


class ExtractError(Exception):
    """The file as a whole cannot be read (missing, not UTF-8, a required column absent …)."""


@dataclass(frozen=True)
class Rejected:
    line: int
    reason: str


def header_key(name: str) -> str:
    """A column name without accents, case, punctuation or spacing differences."""
    folded = unicodedata.normalize("NFKD", name.replace("\ufeff", ""))
    folded = "".join(c for c in folded if not unicodedata.combining(c)).lower()
    return re.sub(r"[^a-z0-9]+", "", folded)


class Columns:
    """Where each wanted field is in this file's header.

    ``wanted`` maps a field name to its header aliases (the first is the current name); fields
    in ``required`` must be present, the others read as empty when absent.
    """

    def __init__(
        self, header: Sequence[str], wanted: dict[str, Sequence[str]], required: Sequence[str]
    ) -> None:
        where = {header_key(h): i for i, h in enumerate(header) if h.strip()}
        self.width = len(header)
        self.index: dict[str, int] = {}
        for field_name, aliases in wanted.items():
            for alias in aliases:
                if header_key(alias) in where:
                    self.index[field_name] = where[header_key(alias)]
                    break
        missing = [wanted[f][0] for f in required if f not in self.index]
        if missing:
            raise ExtractError(f"column {missing[0]!r} not found in the header")
        self.fields = list(self.index.items())


Row = dict[str, str]


@contextmanager
def open_extract(path: Path, kind: str) -> Iterator[IO[bytes]]:
    """The extract's bytes: the file itself, or the right member of a published ZIP."""
    if not path.exists():
        raise ExtractError(f"no such file: {path}")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            prefix = _MEMBER_PREFIX[kind].lower()
            names = [n for n in archive.namelist() if Path(n).name.lower().startswith(prefix)]
            if not names:
                raise ExtractError(f"{path} holds no {_MEMBER_PREFIX[kind]}*.txt")
            with archive.open(sorted(names)[-1]) as member:
                yield member
        return
    with path.open("rb") as fh:
        yield fh


def lines(stream: IO[bytes]) -> Iterator[tuple[bytes | None, int]]:
    """Each line of ``stream`` and its size in bytes; ``None`` for one longer than
    :data:`MAX_LINE`, which is read through in pieces and not kept."""
    while raw := stream.readline(MAX_LINE + 1):
        if len(raw) <= MAX_LINE or raw.endswith(b"\n"):
            yield raw, len(raw)
            continue
        size = len(raw)
        while more := stream.readline(MAX_LINE + 1):
            size += len(more)
            if more.endswith(b"\n"):
                break
        yield None, size


def _header(stream: IO[bytes]) -> list[str]:
    first = stream.readline(MAX_LINE + 1)
    if len(first) > MAX_LINE and not first.endswith(b"\n"):
        raise ExtractError(f"the header line is longer than {MAX_LINE // 1024} KiB")
    try:
        header = _split(first.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ExtractError("the header is not UTF-8") from None
    if len(header) > MAX_COLUMNS:
        raise ExtractError(f"the header has more than {MAX_COLUMNS} columns")
    return header


@dataclass(frozen=True)
class Part:
    """The data lines one reader takes: those starting at byte ``start`` (0: the first after
    the header) up to byte ``stop`` (None: the end); ``number`` is the line number at
    ``start``."""

    start: int = 0
    stop: int | None = None
    number: int = 2


def halves(path: Path, key: str, wanted: dict[str, Sequence[str]]) -> tuple[Part, Part] | None:
    """The file cut in two at a line near its middle, for two readers; None for a file too
    short to cut. The cut falls where the ``key`` field (the practitioner's identifier)
    changes, so that the lines of one person, which follow one another, stay with one reader
    and merge in file order as before."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        cols = Columns(_header(fh), wanted, ())
        column = cols.index.get(key)
        middle = max(size // 2, fh.tell())
        fh.seek(middle - 1)
        for _ in lines(fh):  # the rest of the line the middle falls in
            break
        cut = fh.tell()
        first: str | None = None
        for raw, length in lines(fh):
            if raw is None:  # an over-long line goes with the first reader
                cut += length
                continue
            values = _split(raw.decode("utf-8", "replace"))
            value = values[column] if column is not None and column < len(values) else ""
            if first is None:
                first = value
            elif value != first or column is None:
                break
            cut += length
        else:
            return None  # no other person after the middle: one reader
        fh.seek(0)
        newlines = 0
        while fh.tell() < cut:
            newlines += fh.read(min(1 << 20, cut - fh.tell())).count(b"\n")
    return Part(0, cut, 2), Part(cut, None, newlines + 1)


def read_rows(
    stream: IO[bytes],
    wanted: dict[str, Sequence[str]],
    required: Sequence[str],
    part: Part = Part(),
) -> Iterator[tuple[int, Row | Rejected]]:
    """``(line number, row)`` for each data line, a :class:`Rejected` for each bad one; only
    the lines of ``part`` when given (the stream must then be the file itself)."""
    header = _header(stream)
    if len(header) < 2:
        raise ExtractError("no |-delimited header row")
    cols = Columns(header, wanted, required)
    names = [name for name, _ in cols.fields]
    pick = itemgetter(*[i for _, i in cols.fields])
    width = cols.width
    absent = {name: "" for name in wanted if name not in cols.index}
    number = part.number - 1
    offset = stream.tell() if part.stop is not None else 0
    if part.start:
        stream.seek(part.start)
        offset = part.start
    stop = part.stop
    for raw, length in lines(stream):
        if stop is not None:
            if offset >= stop:
                break
            offset += length
        number += 1
        if raw is None:
            yield number, Rejected(number, f"longer than {MAX_LINE // 1024} KiB")
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            yield number, Rejected(number, "not UTF-8")
            continue
        values = _split(text)
        if len(values) != width:
            if len(values) == 1 and not values[0].strip():
                continue  # a blank line (often the last one)
            yield number, Rejected(number, f"{len(values)} fields where the header has {width}")
            continue
        picked = pick(values)
        row = dict(zip(names, picked if len(names) > 1 else (picked,), strict=True))
        if absent:
            row.update(absent)
        yield number, row


def _split(line: str) -> list[str]:
    # Values are used as they are (no padding in the published files); ids are stripped
    # where they are checked.
    line = line.rstrip("\r\n")
    if line.endswith("|"):  # every line ends with "|": not an extra empty column
        line = line[:-1]
    return line.split("|")
