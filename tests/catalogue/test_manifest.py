"""The manifest's three layers (issue 10 item 2): our limits, the JSON Schema, the rules a
schema cannot say; malformed and hostile manifests get every problem, precisely, and never an
exception of another kind."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catalogue.manifest import CATEGORIES, MAX_BYTES, ManifestError, parse, siret_ok
from tests.catalogue.manifests import OTHER_SIRET, SIRET, encoded, good


def problems(data: bytes) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        parse(data)
    return caught.value.problems


def test_a_good_manifest() -> None:
    manifest = parse(encoded(good(certificate="00ab12")))
    assert manifest.key == "fr.exemple.suivi-diabete"
    assert manifest.certificate == "AB12"
    assert manifest.scopes == ("messages", "dossier-read", "dossier-write", "agenda-write")
    assert "<" in manifest.description  # a lone "<" is text, not markup


def test_siret_key() -> None:
    assert siret_ok(SIRET) and siret_ok(OTHER_SIRET)
    assert not siret_ok("73282932000075")
    assert siret_ok("35600000000048")  # La Poste's head office: Luhn
    assert siret_ok("35600000000010")  # another La Poste establishment: digit sum modulo 5
    assert not siret_ok("7328293200007")


def test_oversized_and_not_json() -> None:
    big = good(description="x" * 1000)
    big["padding"] = "y" * MAX_BYTES
    assert problems(encoded(big)) == ["the manifest is larger than 64 KiB"]
    assert problems(b"\xff\xfe{}") == ["the manifest is not UTF-8"]
    assert problems(b"{'id': 1}")[0].startswith("not valid JSON")
    assert problems(b'{"id": NaN}') == ["not valid JSON: NaN is not JSON (RFC 8259)"]
    assert problems(b'{"id": "a.b", "id": "c.d"}') == [
        "not valid JSON: the member 'id' appears twice"
    ]
    assert problems(b"[" * 5000 + b"]" * 5000) == ["the manifest is nested too deeply"]
    assert problems(b'{"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {}}}}}}}}}') == [
        "the manifest is nested deeper than 8 levels"
    ]
    assert problems(b"[]") == ["the manifest: must be of type object"]


def test_wrong_types_and_members() -> None:
    document = good(name=42, scopes="messages", categories=["jeux"], extra=True)
    del document["criteria"]
    document["editor"] = {"name": "X", "siret": 73282932000074}
    found = problems(encoded(document))
    assert "the manifest: unknown member(s) 'extra'" in found
    assert "the manifest: missing member(s) criteria" in found
    assert "/name: must be of type string" in found
    assert "/scopes: must be of type array" in found
    assert any(p.startswith("/categories/0: 'jeux' is not one of: télémédecine") for p in found)
    assert "/editor/siret: must be of type string" in found


def test_limits_and_rules() -> None:
    found = problems(encoded(good(
        name="n" * 81, version="v1", serviceUrl="http://user:pw@exemple.fr/",
        editor={"name": "Exemple", "siret": "73282932000075"}, scopes=["messages", "messages"],
    )))  # fmt: skip
    assert "/name: longer than 80 characters" in found
    assert "/version: 'v1' has not the expected form" in found
    assert "/serviceUrl: must be an https:// URL" in found
    assert "/serviceUrl: must not carry credentials" in found
    assert "/editor/siret: wrong check digit (Luhn key)" in found
    assert "/scopes: items must not repeat" in found
    assert problems(encoded(good(serviceUrl="https://localhost/"))) == [
        "/serviceUrl: needs a fully qualified host name"
    ]


@pytest.mark.parametrize(
    "text",
    [
        "<script>alert(1)</script>",
        "Voir <a href='x'>ici</a>",
        "<img src=x onerror=alert(1)>",
        "javascript:alert(1)",
        "clic onload = steal()",
        "&#60;script&#62;",
        "RLO \u202e evil",
        "bell \x07",
    ],
)
def test_script_and_markup_in_text(text: str) -> None:
    found = problems(encoded(good(description=text)))
    assert found and all(p.startswith("/description: ") for p in found)
    found = problems(encoded(good(criteria={**good()["criteria"], "ethique": text})))
    assert found and all(p.startswith("/criteria/ethique: ") for p in found)


def test_echoed_values_are_short_and_inert() -> None:
    found = problems(encoded(good(version="<script>alert('x')</script>")))
    assert found == ["/version: \"?script?alert('x')?/script?\" has not the expected form"]
    found = problems(encoded(good(categories=["<b>" + "x" * 100])))
    assert found == [f"/categories/0: '?b?{'x' * 37}…' is not one of: " + ", ".join(CATEGORIES)]


def test_the_reply_is_bounded() -> None:
    document = good(**{f"x{i}": i for i in range(500)})
    found = problems(encoded(document))
    assert len(found) == 1 and found[0].count("'x") == 10  # one line naming the first ten


@settings(max_examples=150, deadline=None)
@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from([*good(), "x"]), children, max_size=6),
    max_leaves=30,
))  # fmt: skip
def test_any_json_is_a_manifest_or_a_list_of_problems(document: object) -> None:
    try:
        parse(json.dumps(document).encode())
    except ManifestError as exc:
        assert exc.problems and all(isinstance(p, str) and len(p) < 400 for p in exc.problems)
