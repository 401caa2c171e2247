""" "Annule et remplace": version 2 of the imaging report replaces version 1 only when the
version, the set and the author agree (MSSanté errors 900 and 901)."""

from __future__ import annotations

import pytest

from dossier.cda import CdaHeader, parse_cda
from dossier.errors import DossierError
from dossier.versions import check_replacement, replaced_id
from tests.dossier.archives import sample

V2 = sample("cr-imagerie.xml")


def _version_1() -> bytes:
    text = V2.replace(b'extension="RAD-2026-11-0091-V2"', b'extension="RAD-2026-11-0091-V1"', 1)
    text = text.replace(b'<versionNumber value="2"/>', b'<versionNumber value="1"/>', 1)
    start, end = text.index(b"<relatedDocument"), text.index(b"</relatedDocument>")
    return text[:start] + text[end + len(b"</relatedDocument>") :]


V1 = parse_cda(_version_1())


def _code(previous: CdaHeader, replacement: bytes) -> int:
    with pytest.raises(DossierError) as caught:
        check_replacement(previous, parse_cda(replacement))
    return caught.value.code


def test_version_2_replaces_version_1() -> None:
    replacement = parse_cda(V2)
    assert replaced_id(replacement) == "1.2.250.1.999.2.1.3^RAD-2026-11-0091-V1"
    assert replaced_id(V1) is None
    check_replacement(V1, replacement)


def test_replacing_another_version_is_900() -> None:
    other = V2.replace(b'extension="RAD-2026-11-0091-V1"', b'extension="RAD-2026-11-0091-V0"')
    assert _code(V1, other) == 900


def test_a_version_number_that_does_not_grow_is_900() -> None:
    same = V2.replace(b'<versionNumber value="2"/>', b'<versionNumber value="1"/>', 1)
    assert _code(V1, same) == 900


def test_another_set_is_900() -> None:
    set_id = b'<setId root="1.2.250.1.999.2.1.3" extension="RAD-2026-11-0091"/>\n  <versionNumber'
    other = V2.replace(set_id, set_id.replace(b"RAD-2026-11-0091", b"RAD-OTHER"), 1)
    assert other != V2
    assert _code(V1, other) == 900


def test_no_rplc_is_900() -> None:
    assert _code(V1, _version_1()) == 900


def test_another_author_is_901() -> None:
    assert _code(V1, V2.replace(b'extension="810002345678"', b'extension="810009999999"')) == 901
