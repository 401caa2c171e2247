"""The FHIR R4 directory API over HTTPS on a running `hygie serve` (issue 5 item 5): every
response is validated with the `fhir.resources` models (R4B, see docs/decisions.md)."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.practitioner import Practitioner
from fhir.resources.R4B.practitionerrole import PractitionerRole

from bench.harness import ServerProcess
from directory.fhir import EXT_EMAIL_TYPE, EXT_MAILBOX
from tests.directory.conftest import DUPONT, MARTIN, MSS_EDGE, PS_EDGE
from tests.support.servers import DATABASES, start_server, stop_server

pytestmark = pytest.mark.e2e
MODELS: dict[str, Any] = {
    "Bundle": Bundle,
    "CapabilityStatement": CapabilityStatement,
    "OperationOutcome": OperationOutcome,
    "Practitioner": Practitioner,
    "PractitionerRole": PractitionerRole,
    "Organization": Organization,
}


@pytest.fixture(scope="module", params=DATABASES)
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    srv = start_server(request, request.param, {})
    srv.hygie("directory", "import", "ps-libreacces", str(PS_EDGE))
    srv.hygie("directory", "import", "mssante", str(MSS_EDGE))
    srv.hygie(
        "directory", "mailbox", "h.dupont.prive@hygie.test", "--type", "PER",
        "--practitioner", DUPONT, "--liste-rouge",
    )  # fmt: skip
    yield srv
    stop_server(srv)


def get(server: ServerProcess, path: str) -> tuple[int, dict[str, Any]]:
    url = f"https://localhost:{server.https_port}/fhir/{path}"
    try:
        with urllib.request.urlopen(url, context=server.ssl_context(), timeout=10) as resp:
            status, body, ctype = resp.status, resp.read(), resp.headers["Content-Type"]
    except urllib.error.HTTPError as err:
        status, body, ctype = err.code, err.read(), err.headers["Content-Type"]
    assert ctype.startswith("application/fhir+json")
    doc = json.loads(body)
    MODELS[doc["resourceType"]].model_validate(doc)  # raises on anything not FHIR
    return status, doc


def ids(bundle: dict[str, Any]) -> list[str]:
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    return [e["resource"]["id"] for e in bundle.get("entry", [])]


def test_read_practitioner_with_mssante_telecom(server: ServerProcess) -> None:
    status, doc = get(server, f"Practitioner/{DUPONT}")
    assert status == 200
    assert doc["name"][0] == {"family": "DUPONT", "given": ["Hélène"], "prefix": ["Docteur"]}
    assert {"system": "urn:oid:1.2.250.1.71.4.2.1", "value": DUPONT} in doc["identifier"]
    codes = [q["code"]["coding"][0]["code"] for q in doc["qualification"]]
    assert codes == ["10", "SM04"]
    (box,) = doc["telecom"]  # the liste-rouge mailbox never appears
    assert box["value"] == "helene.dupont@medecin.mssante.fr"
    urls = [e["url"] for e in box["extension"]]
    assert urls == [EXT_EMAIL_TYPE, EXT_MAILBOX]
    meta = {e["url"]: e for e in box["extension"][1]["extension"]}
    assert meta["type"]["valueCodeableConcept"]["coding"][0]["code"] == "PER"
    assert meta["listeRouge"]["valueBoolean"] is False


def test_search_by_names_accents_and_case_ignored(server: ServerProcess) -> None:
    assert ids(get(server, "Practitioner?family=dupon")[1]) == [DUPONT]
    assert ids(get(server, "Practitioner?given=HELENE")[1]) == [DUPONT]
    assert ids(get(server, "Practitioner?name=eric")[1]) == [MARTIN]
    assert ids(get(server, "Practitioner?name=leveque")[1]) == ["0691234567"]
    # Results come in the search index's order, which a re-import may change.
    assert sorted(ids(get(server, "Practitioner?family=dupont,martin")[1])) == [DUPONT, MARTIN]
    assert ids(get(server, "Practitioner?family=dupont&given=eric")[1]) == []


def test_search_by_identifier_and_mailbox(server: ServerProcess) -> None:
    rpps = DUPONT[1:]
    assert ids(get(server, f"Practitioner?identifier=https://rpps.esante.gouv.fr|{rpps}")[1]) == [
        DUPONT
    ]
    assert ids(get(server, f"Practitioner?identifier={DUPONT}")[1]) == [DUPONT]
    contains = get(server, "Practitioner?mailbox-mss:contains=@medecin.mssante.fr")[1]
    assert ids(contains) == [DUPONT]
    exact = "Practitioner?mailbox-mss:exact=helene.dupont@medecin.mssante.fr"
    assert ids(get(server, exact)[1]) == [DUPONT]
    assert ids(get(server, "Practitioner?mailbox-mss=helene.dup")[1]) == [DUPONT]
    # A liste-rouge address matches nothing: the API does not reveal it exists.
    assert ids(get(server, "Practitioner?mailbox-mss:exact=h.dupont.prive@hygie.test")[1]) == []
    assert ids(get(server, "Practitioner?mailbox-mss-type=PER")[1]) == [DUPONT]
    orgs = ids(get(server, "Organization?mailbox-mss-type=ORG")[1])
    assert orgs == ["1690000001"]


def test_roles_and_organisations_by_place(server: ServerProcess) -> None:
    roles = get(server, f"PractitionerRole?identifier={DUPONT}")[1]
    assert len(ids(roles)) == 2
    orgs = {e["resource"].get("organization", {}).get("reference") for e in roles["entry"]}
    assert orgs == {"Organization/1690000001", "Organization/312345678900017"}
    status, role = get(server, f"PractitionerRole/{ids(roles)[0]}")
    assert status == 200 and role["practitioner"]["reference"] == f"Practitioner/{DUPONT}"
    lyon = ids(get(server, "Organization?address-city=lyon")[1])
    assert lyon == ["1690000001"]
    assert ids(get(server, "Organization?address-postalcode=691")[1]) == ["312345678900017"]
    assert ids(get(server, "Practitioner?address-city=Paris")[1]) == [MARTIN]
    status, org = get(server, "Organization/1690000001")
    assert org["name"] == 'Hôpital "Édouard Herriot"'
    assert org["address"][0]["postalCode"] == "69003"
    assert [t["value"] for t in org["telecom"]] == ["secretariat.cardio@ch-lyon.mssante.fr"]


def test_paging_links_and_count(server: ServerProcess) -> None:
    first = get(server, "Practitioner?_count=2")[1]
    assert len(ids(first)) == 2
    nxt = next(link["url"] for link in first["link"] if link["relation"] == "next")
    path = nxt.split("/fhir/", 1)[1]
    second = get(server, path)[1]
    assert len(ids(second)) == 1 and second["total"] == 3
    assert not set(ids(first)) & set(ids(second))
    assert any(link["relation"] == "previous" for link in second["link"])


def test_last_updated(server: ServerProcess) -> None:
    assert len(ids(get(server, "Practitioner?_lastUpdated=gt2020-01-01")[1])) == 3
    assert ids(get(server, "Practitioner?_lastUpdated=lt2020-01-01")[1]) == []


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("Practitioner/899999999999", 404, "not-found"),
        ("Patient?name=x", 404, "not-found"),
        ("Practitioner?colour=blue", 400, "not-supported"),
        ("Practitioner?_lastUpdated=yesterday", 400, "invalid"),
        ("Practitioner?mailbox-mss-type=XYZ", 400, "invalid"),
        ("Practitioner?_count=many", 400, "invalid"),
    ],
)
def test_errors_are_operation_outcomes(
    server: ServerProcess, path: str, status: int, code: str
) -> None:
    got, doc = get(server, path)
    assert got == status
    assert doc["resourceType"] == "OperationOutcome"
    assert doc["issue"][0]["code"] == code


def test_plain_http_is_not_served_on_the_https_port(server: ServerProcess) -> None:
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        urllib.request.urlopen(
            f"http://localhost:{server.https_port}/fhir/metadata", timeout=5
        ).read()
    ctx = ssl.create_default_context()  # the system store does not trust our CA
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(
            f"https://localhost:{server.https_port}/fhir/metadata", context=ctx, timeout=5
        )


def send(
    server: ServerProcess, method: str, path: str, body: bytes, content_type: str
) -> tuple[int, dict[str, Any]]:
    url = f"https://localhost:{server.https_port}/fhir/{path}"
    request = urllib.request.Request(
        url, data=body, method=method, headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, context=server.ssl_context(), timeout=10) as resp:  # noqa: S310 (https)
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    doc = json.loads(raw)
    MODELS[doc["resourceType"]].model_validate(doc)
    return status, doc


def test_post_search_is_the_get_search(server: ServerProcess) -> None:
    form = "application/x-www-form-urlencoded"
    status, doc = send(server, "POST", "Practitioner/_search", b"family=dupon&_count=5", form)
    assert status == 200 and ids(doc) == [DUPONT]
    # Parameters may also be in the URL; both count (AND).
    both = send(server, "POST", "Practitioner/_search?given=eric", b"family=dupont", form)[1]
    assert ids(both) == []
    status, doc = send(
        server, "POST", "Practitioner/_search", b'{"family": "x"}', "application/json"
    )
    assert status == 415 and doc["issue"][0]["code"] == "not-supported"
    status, doc = send(server, "POST", "Practitioner/_search", b"colour=blue", form)
    assert status == 400 and doc["issue"][0]["code"] == "not-supported"


@pytest.mark.parametrize("method", ["PATCH", "PUT", "DELETE", "POST"])
def test_writes_are_refused(server: ServerProcess, method: str) -> None:
    body = b'[{"op": "replace", "path": "/active", "value": false}]'
    status, doc = send(
        server, method, f"Practitioner/{DUPONT}", body, "application/json-patch+json"
    )
    assert status == 405 and doc["issue"][0]["code"] == "not-supported"


def test_include_practitioner_and_organization(server: ServerProcess) -> None:
    path = f"PractitionerRole?identifier={DUPONT}&_include=PractitionerRole:practitioner"
    bundle = get(server, path)[1]
    modes = [(e["resource"]["resourceType"], e["search"]["mode"]) for e in bundle["entry"]]
    assert modes == [("PractitionerRole", "match")] * 2 + [("Practitioner", "include")]
    assert bundle["total"] == 2  # included resources are not matches
    included = bundle["entry"][2]
    assert included["resource"]["id"] == DUPONT
    assert included["fullUrl"].endswith(f"/fhir/Practitioner/{DUPONT}")
    assert [t["value"] for t in included["resource"]["telecom"]] == [
        "helene.dupont@medecin.mssante.fr"  # never the liste-rouge one
    ]
    both = get(
        server,
        f"PractitionerRole?identifier={DUPONT}&_include=PractitionerRole:organization"
        "&_include=PractitionerRole:practitioner",
    )[1]
    refs = {
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in both["entry"]
        if e["search"]["mode"] == "include"
    }
    assert refs == {
        f"Practitioner/{DUPONT}",
        "Organization/1690000001",
        "Organization/312345678900017",
    }
    # Every reference of a matched role resolves inside the Bundle.
    for entry in both["entry"]:
        if entry["search"]["mode"] == "match":
            role = entry["resource"]
            assert role["practitioner"]["reference"] in refs
            assert role["organization"]["reference"] in refs
    wildcard = get(server, f"PractitionerRole?identifier={DUPONT}&_include=PractitionerRole:*")[1]
    assert len(wildcard["entry"]) == 5
    status, doc = get(server, "Practitioner?_include=Practitioner:organization")
    assert status == 400 and doc["issue"][0]["code"] == "not-supported"
    capability = get(server, "metadata")[1]
    (role,) = [r for r in capability["rest"][0]["resource"] if r["type"] == "PractitionerRole"]
    assert role["searchInclude"] == [
        "PractitionerRole:organization",
        "PractitionerRole:practitioner",
    ]


def test_mailbox_substring_index_checks_exactly(server: ServerProcess) -> None:
    # "_" is a one-character wildcard for the trigram index's LIKE: the exact check drops
    # "helene.dupont" for "helene_dupont".
    assert ids(get(server, "Practitioner?mailbox-mss:contains=helene_dupont")[1]) == []
    assert ids(get(server, "Practitioner?mailbox-mss:contains=ENE.DUP")[1]) == [DUPONT]
    # Shorter than a trigram: no index, same answer.
    assert ids(get(server, "Practitioner?mailbox-mss:contains=e.d")[1]) == [DUPONT]
    assert ids(get(server, "Practitioner?mailbox-mss=HELENE.D")[1]) == [DUPONT]
    assert ids(get(server, "Practitioner?mailbox-mss:contains=.prive@")[1]) == []  # liste rouge
