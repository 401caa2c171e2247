"""Recipients from the FHIR directory: the Bundle read, the query sent, and completion in the
editor, against a small HTTPS stand-in for the operator's ``/fhir`` API (the real one lives
in ``server/http/fhir.py`` on another branch)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from textual.widgets import Input, Static

from client_tui.app import HygieClient
from client_tui.compose_screen import ComposeScreen
from client_tui.config import Config
from client_tui.credentials import tls_context
from client_tui.directory import parse_practitioners, search_directory, search_url
from tests.client.fake_mailbox import demo_account, fake_connect
from tests.client.pilot import wait_until
from tests.client.test_snapshots import signed_in

R38 = "https://mos.esante.gouv.fr/NOS/TRE_R38-SpecialiteOrdinale/FHIR/TRE-R38-SpecialiteOrdinale"


def practitioner(
    idnat: str, family: str, given: str, specialty: str, *boxes: str
) -> dict[str, Any]:
    return {
        "resourceType": "Practitioner", "id": idnat, "active": True,
        "name": [{"family": family, "given": [given], "prefix": ["DR"]}],
        "telecom": [{"system": "email", "value": box, **({"rank": 1} if i == 0 else {})}
                    for i, box in enumerate(boxes)],
        "qualification": [{"code": {"coding": [{"system": R38, "code": "SM04",
                                                "display": specialty}]}}],
    }  # fmt: skip


BUNDLE = {
    "resourceType": "Bundle", "type": "searchset",
    "entry": [
        {"resource": practitioner("810000000001", "MARTIN", "Sophie", "Cardiologie",
                                  "sophie.martin@chu.hygie.test")},
        {"resource": practitioner("810000000002", "MARTINEZ", "Luc", "Pédiatrie",
                                  "luc.martinez@hygie.test", "cabinet.martinez@hygie.test")},
    ],
}  # fmt: skip


class Stub(BaseHTTPRequestHandler):
    queries: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        Stub.queries.append(self.path)
        body = json.dumps(BUNDLE).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """An HTTPS server on 127.0.0.1 with a self-signed certificate; (base URL, CA file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "directory stub")])
    now = dt.datetime.now(dt.UTC)
    loopback = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(loopback, False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    folder = tmp_path_factory.mktemp("directory")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{httpd.server_address[1]}/fhir", cert_file
    httpd.shutdown()
    httpd.server_close()


def test_bundle_gives_one_recipient_per_mailbox() -> None:
    people = parse_practitioners(BUNDLE)
    assert [(p.name, p.address, p.specialty) for p in people] == [
        ("MARTIN Sophie", "sophie.martin@chu.hygie.test", "Cardiologie"),
        ("MARTINEZ Luc", "luc.martinez@hygie.test", "Pédiatrie"),
        ("MARTINEZ Luc", "cabinet.martinez@hygie.test", "Pédiatrie"),
    ]
    assert people[0].recipient == "MARTIN Sophie <sophie.martin@chu.hygie.test>"
    assert search_url("https://h/fhir/", "martin, Lyon") == (
        "https://h/fhir/Practitioner?name=martin&_count=10&address-city=Lyon"
    )


async def test_search_over_https(directory: tuple[str, Path]) -> None:
    base, ca = directory
    people = await search_directory(base, "mart", tls_context(ca))
    assert people[0].address == "sophie.martin@chu.hygie.test"
    assert Stub.queries[-1] == "/fhir/Practitioner?name=mart&_count=10"


async def test_editor_completes_from_the_directory(
    directory: tuple[str, Path], tmp_path: Path
) -> None:
    base, ca = directory
    account = demo_account()
    account.directory_url, account.ca_file = base, str(ca)
    app = HygieClient(Config(tmp_path / "c.toml", {account.name: account}, account.name),
                      connector=fake_connect)  # type: ignore[arg-type]  # fmt: skip
    async with app.run_test(size=(100, 30)) as pilot:
        await signed_in(pilot)
        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(app.screen, ComposeScreen)
                         and bool(app.screen.query("#to")), "the editor")  # fmt: skip
        await pilot.press(*"MARTIN S")
        matches = app.screen.query_one("#matches", Static)
        await wait_until(pilot, lambda: "Cardiologie" in str(matches.render()), "the matches")
        await pilot.press("right")  # accepts the suggestion, as in a shell
        to = app.screen.query_one("#to", Input)
        await wait_until(pilot, lambda: to.value == "MARTIN Sophie <sophie.martin@chu.hygie.test>",
                         "the completed address")  # fmt: skip
