"""The whole life of a health app through a real ``hygie serve`` (issue 10 item 6): the
editor submits a manifest by message and fixes it, the operator reviews and references it on
the command line, a patient connects it over HTTPS, the app acts by mail and reads the dossier
within that consent and nowhere beyond it, the patient revokes, the app's certificate is
revoked, the operator suspends it. Every refused attempt gets a precise SMTP reply, workflow
error or HTTP status, and is in the audit log. Hostile manifests get the list of what is
wrong, and nothing is stored."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email
import email.policy
import imaplib
import json
import smtplib
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from icalendar import Calendar, Event
from textual.app import App
from textual.widgets import DataTable

from bench.harness import ServerProcess
from client_tui.catalogue import CatalogueApi, CatalogueScreen, ConnectDialog
from dossier.cda import build_cda
from dossier.subject import mss_document_headers
from dossier.xdm import INVISIBLE_PATIENT, OutgoingDocument, build_xdm, parse_xdm
from pki.ca import CertificateAuthority
from pki.verify import identity_of
from server.auth.oauth import DevIssuer
from server.cli.main import main
from server.config import CA_SECRET, load_config
from storage import audit
from storage.accounts import SUBJECT, bind_identity, create_account
from storage.blobs import open_blob_store
from storage.crypto import MasterKey
from storage.db import Database
from tests.catalogue.manifests import SIRET, encoded, good
from tests.client.pilot import wait_until
from tests.e2e.test_dossier_filing import PDF, cda
from tests.support.servers import MAX_MESSAGE_SIZE, settle, stop_server

PASSWORD = "catalogue-test-password-1"
EDITOR = "editeur@hygie.test"
APP = "suivi-diabete@hygie.test"
INS = "279035121518989"
PATIENT = f"{INS}@patient.hygie.test"
UNKNOWN_INS = "279035121599955"  # a valid key, no mailbox here
CATALOGUE = "catalogue@hygie.test"


@dataclass
class World:
    server: ServerProcess
    app_serial: str
    app_cert: Path
    app_key: Path
    tokens: dict[str, str]
    # One SMTP and one IMAP session per user for the whole module (each login is an argon2id
    # verification); a refusal applies to sessions already open, which these show too.
    smtp: dict[str, smtplib.SMTP] = field(default_factory=dict)
    imap: dict[str, imaplib.IMAP4_SSL] = field(default_factory=dict)


async def prepare(server: ServerProcess, out: Path) -> tuple[str, Path, Path]:
    """The accounts, and an ORG certificate (the editor's SIRET) bound to each of the editor's
    and the app's mailboxes, as ``hygie user add`` and ``hygie pki issue org --mailbox`` do,
    in this process (each ``hygie`` command costs seconds of start-up)."""
    config = load_config(server.data_dir, server.env())
    master = MasterKey.load(config.path(config.storage.master_key_file))
    ca = CertificateAuthority.load(config.path("pki"), master.derive_secret(CA_SECRET))
    blobs = open_blob_store(config.storage.blob_store, config.path(config.storage.blob_dir))
    db = Database(config.database_url, blobs)
    await db.start()
    try:
        for address in (EDITOR, APP, PATIENT):
            await create_account(db, master, address, PASSWORD)
        for service, mailbox in (("Editeur", EDITOR), ("Suivi Diabete", APP)):
            issued = ca.issue_org(service, "Exemple Sante", siret=SIRET, key_type="ec")
            await bind_identity(db, mailbox, SUBJECT, identity_of(issued.certificate).subject)
    finally:
        await db.close()
    (out / "app.crt").write_bytes(issued.chain_pem())
    (out / "app.key").write_bytes(issued.key_pem(None))
    return f"{issued.certificate.serial_number:X}", out / "app.crt", out / "app.key"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    srv = ServerProcess(env={"HYGIE_SMTP_MAX_MESSAGE_SIZE": str(MAX_MESSAGE_SIZE)})
    try:
        srv.init()
        serial, crt, key = asyncio.run(prepare(srv, tmp_path_factory.mktemp("certs")))
        srv.start()
    except BaseException:
        srv.close()
        raise
    try:
        issuer = DevIssuer(load_config(srv.data_dir, srv.env()))
        tokens = {who: issuer.issue(who, ttl_seconds=1800) for who in (APP, PATIENT, EDITOR)}
        world = World(srv, serial, crt, key, tokens)
        yield world
        for session in [*world.smtp.values(), *world.imap.values()]:
            with contextlib.suppress(Exception):
                session.close()
    finally:
        stop_server(srv)


# -- mail ---------------------------------------------------------------------------------------


def smtp_session(world: World, who: str) -> smtplib.SMTP:
    if who not in world.smtp:
        smtp = smtplib.SMTP("127.0.0.1", world.server.smtp_port, timeout=60)
        smtp.starttls(context=world.server.ssl_context())
        smtp.login(who, PASSWORD)
        world.smtp[who] = smtp
    return world.smtp[who]


def send(world: World, who: str, to: str, raw: bytes) -> tuple[int, str]:
    """(code, text) of the first refusal (RCPT or DATA), or (250, "")."""
    smtp = smtp_session(world, who)
    smtp.rset()
    smtp.mail(who)
    code, text = smtp.rcpt(to)
    if code != 250:
        return code, text.decode()
    code, text = smtp.data(raw)
    if code != 250:
        return code, text.decode()
    settle(world.server)  # the catalogue's answer is after-commit work
    return 250, ""


def newest(world: World, who: str) -> EmailMessage:
    if who not in world.imap:
        world.imap[who] = imaplib.IMAP4_SSL("localhost", world.server.imap_tls_port,
                                            ssl_context=world.server.ssl_context())  # fmt: skip
        world.imap[who].login(who, PASSWORD)
    client = world.imap[who]
    _, data = client.select("INBOX", readonly=True)
    _, fetched = client.fetch(str(int(data[0] or 0)), "(BODY.PEEK[])")
    raw = next(i[1] for i in fetched if isinstance(i, tuple))
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def manifest_mail(data: bytes, *, filename: str = "manifest.json") -> bytes:
    message = EmailMessage()
    message["From"], message["To"] = EDITOR, CATALOGUE
    message["Subject"] = "Référencement"
    message["Message-ID"] = email.utils.make_msgid(domain="hygie.test")
    message.set_content("Manifeste en pièce jointe.")
    message.add_attachment(data, maintype="application", subtype="json", filename=filename)
    return message.as_bytes(policy=email.policy.SMTP)


def submit(world: World, data: bytes) -> EmailMessage:
    assert send(world, EDITOR, CATALOGUE, manifest_mail(data)) == (250, "")
    reply = newest(world, EDITOR)
    assert reply["From"].addresses[0].addr_spec == CATALOGUE
    return reply


def text(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def note(to: str, subject: str) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = APP, to, subject
    message.set_content("Pensez à noter votre glycémie ce soir.")
    return message.as_bytes(policy=email.policy.SMTP)


def xdm(to: str, *, invisible: bool = False) -> bytes:
    flags = frozenset({INVISIBLE_PATIENT}) if invisible else frozenset()
    archive = build_xdm([OutgoingDocument(build_cda(cda(), pdf=PDF), pdf=PDF,
                                          restrictions=flags)],
                        source_id="1.2.250.1.999.1")  # fmt: skip
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = APP, to, "Relevé de glycémie"
    message["X-MSS-NIL"] = "HYGIE-TEST"
    for name, value in mss_document_headers(parse_xdm(archive), ins_qualified=True).items():
        message[name] = value
    message.set_content("Relevé ci-joint.")
    message.add_attachment(archive, maintype="application", subtype="zip", filename="IHE_XDM.zip")
    return message.as_bytes(policy=email.policy.SMTP)


def invitation() -> bytes:
    calendar = Calendar()
    calendar.add("PRODID", "-//Exemple//Suivi Diabete//FR")
    calendar.add("VERSION", "2.0")
    calendar.add("METHOD", "REQUEST")
    event = Event()
    event.add("UID", "suivi-diabete-rdv-1@exemple.fr")
    event.add("DTSTAMP", dt.datetime(2026, 11, 22, 8, 0, tzinfo=dt.UTC))
    event.add("DTSTART", dt.datetime(2026, 12, 10, 9, 0, tzinfo=dt.UTC))
    event.add("DTEND", dt.datetime(2026, 12, 10, 9, 30, tzinfo=dt.UTC))
    event.add("SUMMARY", "Bilan diabétologique")
    event.add("ORGANIZER", f"mailto:{APP}")
    event.add("ATTENDEE", f"mailto:{PATIENT}", parameters={"PARTSTAT": "NEEDS-ACTION"})
    calendar.add_component(event)
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = APP, PATIENT, "Rendez-vous"
    message.set_content("Invitation en pièce jointe.")
    message.add_alternative(calendar.to_ical(), maintype="text", subtype="calendar",
                            params={"method": "REQUEST", "charset": "UTF-8"})  # fmt: skip
    return message.as_bytes(policy=email.policy.SMTP)


# -- HTTPS --------------------------------------------------------------------------------------


#: The professional's (and app's) dossier read; the patient goes in the Patient-INS header.
DOSSIER = "/dossier/patient/documents"


def call(world: World, path: str, who: str, method: str = "GET",
         body: object = None, *, ins: str = "") -> tuple[int, object]:  # fmt: skip
    """``ins``: the patient of a dossier read, in the Patient-INS header (never the URL)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"https://localhost:{world.server.https_port}{path}",
                                     data=data, method=method)  # fmt: skip
    request.add_header("Authorization", f"Bearer {world.tokens[who]}")
    if ins:
        request.add_header("Patient-INS", ins)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(  # noqa: S310 (https, our own server)
            request, context=world.server.ssl_context(), timeout=30
        ) as reply:
            return reply.status, json.loads(reply.read() or b"null")
    except urllib.error.HTTPError as exc:
        payload = exc.read()
        return exc.code, json.loads(payload) if payload.startswith(b"{") else payload


def agenda_feed(world: World, who: str) -> bytes:
    request = urllib.request.Request(
        f"https://localhost:{world.server.https_port}/agenda/calendar.ics",
        headers={"Authorization": f"Bearer {world.tokens[who]}"},
    )
    with urllib.request.urlopen(  # noqa: S310 (https, our own server)
        request, context=world.server.ssl_context(), timeout=30
    ) as reply:
        return bytes(reply.read())


def connect(world: World, app: int, scopes: list[str], days: int = 30) -> None:
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(days=days)).isoformat()
    status, body = call(world, "/catalogue/connections", PATIENT, "POST",
                        {"app": app, "scopes": scopes, "expiresAt": expires})  # fmt: skip
    assert status == 201, body


# -- the tests ----------------------------------------------------------------------------------


def test_hostile_manifests_get_every_problem_and_store_nothing(world: World) -> None:
    oversized = good(certificate=world.app_serial)
    oversized["description"] = "x" * 70_000
    reply = submit(world, encoded(oversized))
    assert reply["Subject"] == "Catalogue : manifeste refusé (1 erreur(s))"
    assert "- the manifest is larger than 64 KiB" in text(reply)
    assert reply["In-Reply-To"] and reply["Auto-Submitted"] == "auto-replied"

    wrong = good(certificate=world.app_serial, name=["Suivi"], scopes=["messages", "tout"],
                 serviceUrl="http://suivi.exemple.fr", manifestVersion="1")  # fmt: skip
    wrong["criteria"] = {**wrong["criteria"], "ethique": "<script>fetch('//x')</script>"}
    body = text(submit(world, encoded(wrong)))
    for line in ("- /manifestVersion: must be 1", "- /name: must be of type string",
                 "- /scopes/1: 'tout' is not one of: messages, dossier-read, dossier-write, "
                 "agenda-write", "- /criteria/ethique: markup or script is not allowed in text",
                 "- /serviceUrl: must be an https:// URL"):  # fmt: skip
        assert line in body
    assert "<script>" not in body  # the reply never echoes the hostile text
    assert "not valid JSON" in text(submit(world, b'{"id": "fr.x.y",}'))
    no_manifest = manifest_mail(b"%PDF-1.4", filename="notice.pdf").replace(
        b"application/json", b"application/pdf"
    )
    assert send(world, EDITOR, CATALOGUE, no_manifest) == (250, "")
    assert "- no manifest attached" in text(newest(world, EDITOR))
    result = CliRunner(env=world.server.env()).invoke(
        main, ["--data", str(world.server.data_dir), "catalogue", "list"]
    )
    assert result.output == "no app\n"  # nothing half-stored


def server_rss(world: World) -> int:
    for line in Path(f"/proc/{world.server.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_manifests_beyond_the_limits_are_refused_in_bounded_time(world: World) -> None:
    """Issue 26: nesting, duplicate keys, a number of 60,000 digits, thousands of JSON parts
    in one message: each gets its reason back within seconds, the server's memory unmoved."""
    before = server_rss(world)
    deep = b"[" * 30_000 + b"]" * 30_000
    nine = b'{"id": "fr.x.y", "a": [[[[[[[[[1]]]]]]]]]}'
    duplicate = b'{"id": "fr.x.y", "name": "A", "name": "B"}'
    digits = b'{"id": ' + b"1" * 60_000 + b"}"
    for data, reason in (
        (deep, "the manifest is nested too deeply"),
        (nine, "the manifest is nested deeper than 8 levels"),
        (duplicate, "the member 'name' appears twice"),
        (digits, "not valid JSON"),
    ):
        started = time.monotonic()
        body = text(submit(world, data))
        assert reason in body and time.monotonic() - started < 10, body
    parts = EmailMessage()
    parts["From"], parts["To"], parts["Subject"] = EDITOR, CATALOGUE, "Référencement"
    parts.set_content("Manifestes.")
    for i in range(1000):  # 4 MB: within the test server's 8 MB
        parts.add_attachment(deep[:2000] + b"]" * 2000, maintype="application",
                             subtype="json", filename=f"m{i}.json")  # fmt: skip
    started = time.monotonic()
    assert send(world, EDITOR, CATALOGUE, parts.as_bytes(policy=email.policy.SMTP))[0] == 250
    assert "attach exactly one manifest per message" in text(newest(world, EDITOR))
    assert time.monotonic() - started < 20
    assert server_rss(world) - before < 64 * 2**20


def test_bad_requests_to_the_catalogue_api(world: World) -> None:
    assert call(world, "/catalogue/connections", EDITOR)[0] == 403  # not a patient
    connections = "/catalogue/connections"
    for body, answer in (
        ([1], "the body must be a JSON object"),
        ({"app": "1", "scopes": [], "expiresAt": "2027-01-01T00:00:00Z"}, "app: the app's number"),
        ({"app": 1, "scopes": "messages", "expiresAt": "x"}, "scopes: a list of scope names"),
        ({"app": 1, "scopes": ["messages"], "expiresAt": "demain"},
         "expiresAt: an RFC 3339 date-time"),
        ({"app": 1, "scopes": ["messages"], "expiresAt": "2027-01-01T00:00:00"},
         "expiresAt: give a time zone (Z or ±hh:mm)"),
    ):  # fmt: skip
        assert call(world, connections, PATIENT, "POST", body) == (400, {"error": answer})
    unknown = {"app": 99, "scopes": ["messages"], "expiresAt": "2027-01-01T00:00:00Z"}
    assert call(world, connections, PATIENT, "POST", unknown) == (404, {"error": "no such app"})
    assert call(world, "/catalogue/apps/99", PATIENT) == (404, {"error": "no such referenced app"})
    assert call(world, "/catalogue/apps?category=jeux", PATIENT)[0] == 400
    world.tokens["nobody"] = "not-a-token"
    assert call(world, "/catalogue/apps", "nobody")[0] == 401


async def test_the_life_of_an_app(world: World) -> None:
    hygie = world.server.hygie
    # Submit, with a mistake the editor then fixes.
    first = submit(world, encoded(good(certificate=world.app_serial, mailbox="absent@hygie.test")))
    assert "- /mailbox: no mailbox absent@hygie.test here" in text(first)
    ack = submit(world, encoded(good(certificate=world.app_serial)))
    assert ack["Subject"] == "Catalogue : manifeste reçu (fr.exemple.suivi-diabete 1.0.0)"
    assert "enregistrée sous le numéro 1" in text(ack)
    status, body = call(
        world,
        "/catalogue/connections",
        PATIENT,
        "POST",
        {"app": 1, "scopes": ["messages"], "expiresAt": "2027-01-01T00:00:00Z"},
    )
    assert (status, body) == (400, {"error": "only a referenced app can be connected"})

    # Review and reference it on the command line; the editor hears of it.
    hygie("catalogue", "review", "1", *[a for c in ("ins", "annuaire", "messagerie", "securite",
          "ethique", "interoperabilite") for a in ("--criterion", c)], "--verdict", "pass",
          "--note", "pièces vérifiées")  # fmt: skip
    hygie("catalogue", "decide", "1", "referenced", "--reason", "tous les critères sont remplis")
    decision = newest(world, EDITOR)
    assert decision["Subject"] == "Catalogue : fr.exemple.suivi-diabete référencée"
    assert "Motif : tous les critères sont remplis" in text(decision)
    assert decision["X-MSS-NIL"]

    # The patient finds it and connects it for messages and reading the dossier only.
    status, found = call(world, "/catalogue/apps?q=diab%C3%A8te&category=pr%C3%A9vention", PATIENT)
    assert status == 200 and [a["appId"] for a in found["apps"]] == ["fr.exemple.suivi-diabete"]
    assert call(world, "/catalogue/apps?q=cardio", PATIENT)[1] == {"apps": []}
    assert send(world, APP, PATIENT, note(PATIENT, "Avant")) == (
        550,
        "5.7.1 The patient has not connected this application",
    )
    # Not connected: reading the dossier answers as for an INS unknown here (issue 17 finding 5).
    assert call(world, DOSSIER, APP, ins=INS) == call(world, DOSSIER, APP, ins=UNKNOWN_INS) == (
        404, {"error": "no dossier you may read for this INS"})  # fmt: skip
    await client_connects(world)  # hygie-client's screen: messages and dossier-read

    # Within the consent: a message reaches the patient; the dossier is read.
    assert send(world, APP, PATIENT, note(PATIENT, "Glycémie du soir")) == (250, "")
    assert newest(world, PATIENT)["Subject"] == "Glycémie du soir"
    status, body = call(world, DOSSIER, APP, ins=INS)
    assert (status, body) == (200, {"documents": []})

    # Beyond it: filing in the dossier (by the patient's address or by dmp@), the agenda.
    assert send(world, APP, PATIENT, xdm(PATIENT)) == (
        550, "5.7.1 The patient's consent does not cover dossier-write "
             "(déposer des documents dans votre dossier)")  # fmt: skip
    assert send(world, APP, "dmp@hygie.test", xdm("dmp@hygie.test")) == (250, "")
    refusal = newest(world, APP)
    assert str(refusal["Subject"]).startswith("[KO Intégration système !][901]")  # not filed
    code, reply = send(world, APP, PATIENT, invitation())
    assert code == 550 and "does not cover agenda-write" in reply

    # The patient widens the consent: the app files a document, invites, reads it back.
    connect(world, 1, ["messages", "dossier-read", "dossier-write", "agenda-write"])
    assert send(world, APP, "dmp@hygie.test", xdm("dmp@hygie.test")) == (250, "")
    assert send(world, APP, PATIENT, invitation()) == (250, "")
    assert b"SUMMARY:Bilan diab" in agenda_feed(world, PATIENT)  # in the patient's agenda
    status, body = call(world, DOSSIER, APP, ins=INS)
    assert status == 200 and len(body["documents"]) == 1  # type: ignore[index]
    # The app acts for the patient: it sees what the patient sees, so not a document the
    # patient may not see (INVISIBLE_PATIENT), even one it filed itself.
    filed = world.server.log_bytes().count(b"dossier_filed")
    assert send(world, APP, "dmp@hygie.test", xdm("dmp@hygie.test", invisible=True)) == (250, "")
    settle(world.server)  # the filing is after-commit work
    assert world.server.log_bytes().count(b"dossier_filed") == filed + 1
    status, body = call(world, DOSSIER, APP, ins=INS)
    assert status == 200 and len(body["documents"]) == 1  # type: ignore[index]
    status, listing = call(world, "/catalogue/connections", PATIENT)
    connection = listing["connections"][0]  # type: ignore[index]
    assert connection["state"] == "active" and len(connection["scopes"]) == 4
    seen = {(a["scope"], a["outcome"]) for a in connection["recentAccess"]}
    assert {("messages", "allowed"), ("dossier-read", "allowed"), ("dossier-write", "refused"),
            ("dossier-write", "allowed"), ("agenda-write", "allowed"),
            ("mail", "refused")} <= seen  # fmt: skip

    # A new manifest opens version 2; version 1 keeps acting meanwhile.
    v2 = submit(world, encoded(good(certificate=world.app_serial, version="1.1.0")))
    assert "La version 2 (1.1.0)" in text(v2) and "La version 1 reste en vigueur" in text(v2)
    assert send(world, APP, PATIENT, note(PATIENT, "Pendant la revue")) == (250, "")

    # The patient revokes (in hygie-client): nothing passes any more, by mail or over HTTPS.
    await client_revokes(world)
    assert call(world, "/catalogue/connections/1", PATIENT, "DELETE") == (
        404,
        {"error": "this app is not connected"},
    )
    assert send(world, APP, PATIENT, note(PATIENT, "Après")) == (
        550, "5.7.1 The patient revoked this application's access")
    assert call(world, DOSSIER, APP, ins=INS) == (
        403, {"error": "The patient revoked this application's access"})
    connect(world, 1, ["messages", "dossier-read"])

    # Certificate login works until the app's certificate is revoked; then every path closes.
    with smtplib.SMTP("127.0.0.1", world.server.smtp_port, timeout=60) as smtp:
        context = world.server.ssl_context()
        context.load_cert_chain(world.app_cert, world.app_key)
        smtp.starttls(context=context)
        smtp.ehlo("app.exemple.fr")
        assert smtp.docmd("AUTH", "EXTERNAL =")[0] == 235
        smtp.mail(APP)
        assert smtp.rcpt(PATIENT)[0] == 250
    revoke_certificate(world)
    with smtplib.SMTP("127.0.0.1", world.server.smtp_port, timeout=60) as smtp:
        smtp.starttls(context=context)
        smtp.ehlo("app.exemple.fr")
        code, reply_text = smtp.docmd("AUTH", "EXTERNAL =")
        assert code == 535 and b"revoked" in reply_text
    assert send(world, APP, PATIENT, note(PATIENT, "Révoqué")) == (
        550, "5.7.1 This application's certificate is revoked")
    assert call(world, DOSSIER, APP, ins=INS)[0] == 403

    # Suspended: refused at once, whatever the consent; the editor is told.
    hygie("catalogue", "decide", "1", "suspended", "--reason", "certificat compromis")
    assert send(world, APP, PATIENT, note(PATIENT, "Suspendu")) == (
        550,
        "5.7.1 This application is suspended from the catalogue",
    )
    for someone in (INS, UNKNOWN_INS):  # decided before looking for the patient
        assert call(world, DOSSIER, APP, ins=someone) == (
            403, {"error": "This application is suspended from the catalogue"})
    assert "Elle n'a plus accès aux patients" in text(newest(world, EDITOR))
    assert call(world, "/catalogue/apps", PATIENT)[1] == {"apps": []}

    entries = await audit_log(world)
    assert {e.action for e in entries} >= {
        "catalogue.submit", "catalogue.review", "catalogue.decide", "catalogue.connect",
        "catalogue.revoke", "catalogue.refused",
    }  # fmt: skip
    refused = [e for e in entries if e.action == "catalogue.refused"]
    assert {e.detail["reason"] for e in refused} >= {
        "no-consent",
        "scope",
        "consent-revoked",
        "certificate-revoked",
        "suspended",
    }
    assert INS not in repr(entries)  # patients are account ids in the audit log


# -- hygie-client's screen, the CA, the audit log ------------------------------------------------


class CatalogueHarness(App[None]):
    """The catalogue screen alone, as ``k`` opens it from the mail screen."""

    def __init__(self, api: CatalogueApi) -> None:
        super().__init__()
        self.api = api

    def on_mount(self) -> None:
        self.push_screen(CatalogueScreen(self.api))


def patient_api(world: World) -> CatalogueApi:
    base = f"https://localhost:{world.server.https_port}"
    return CatalogueApi(base, lambda: world.tokens[PATIENT], world.server.ssl_context())


async def client_connects(world: World) -> None:
    """Search, find the app, tick two permissions (none is ticked for the patient), connect."""
    async with CatalogueHarness(patient_api(world)).run_test(size=(120, 40)) as pilot:
        apps = pilot.app.screen.query_one("#apps", DataTable)
        mine = pilot.app.screen.query_one("#connections", DataTable)
        await wait_until(pilot, lambda: apps.row_count == 1, "the referenced app")
        assert str(apps.get_row_at(0)[0]) == "Suivi Diabète" and mine.row_count == 0
        await pilot.click("#search")
        await pilot.press(*"cardio", "enter")
        await wait_until(pilot, lambda: apps.row_count == 0, "an empty search")
        await pilot.press(*["backspace"] * 6, "enter")
        await wait_until(pilot, lambda: apps.row_count == 1, "the app again")
        apps.focus()
        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, ConnectDialog), "the dialog")
        await pilot.click("#ok")  # nothing ticked: explicit consent only
        assert isinstance(pilot.app.screen, ConnectDialog)
        await pilot.click("#scope-messages")
        await pilot.click("#scope-dossier-read")
        await pilot.click("#ok")
        await wait_until(pilot, lambda: mine.row_count == 1, "the new connection")
        assert [str(c) for c in mine.get_row_at(0)[1:4:2]] == ["messages, dossier-read", "active"]


async def client_revokes(world: World) -> None:
    async with CatalogueHarness(patient_api(world)).run_test(size=(120, 40)) as pilot:
        mine = pilot.app.screen.query_one("#connections", DataTable)
        await wait_until(pilot, lambda: mine.row_count == 1, "the connection")
        assert "autorisé" in str(mine.get_row_at(0)[4]) or "refusé" in str(mine.get_row_at(0)[4])
        mine.focus()
        await pilot.press("x")
        await wait_until(pilot, lambda: str(mine.get_row_at(0)[3]) == "revoked", "the revocation")


def revoke_certificate(world: World) -> None:
    """What ``hygie pki revoke SERIAL`` does (CA registry, then a new CRL), in this process."""
    config = load_config(world.server.data_dir, world.server.env())
    master = MasterKey.load(config.path(config.storage.master_key_file))
    ca = CertificateAuthority.load(config.path("pki"), master.derive_secret(CA_SECRET))
    ca.revoke(world.app_serial, x509.ReasonFlags.key_compromise)
    ca.write_crl()


async def audit_log(world: World) -> list[audit.AuditRecord]:
    config = load_config(world.server.data_dir, world.server.env())
    blobs = open_blob_store(config.storage.blob_store, config.path(config.storage.blob_dir))
    db = Database(config.database_url, blobs)
    await db.start()
    try:
        return await audit.entries(db, action_prefix="catalogue.", limit=500)
    finally:
        await db.close()


def test_operator_mistakes_and_withdrawal(world: World) -> None:
    """The review commands' refusals (one clear line, exit 1), in this process; then the app
    is withdrawn: no access, and its id cannot come back."""
    runner = CliRunner(env=world.server.env())

    def hygie(*args: str, code: int = 1) -> str:
        result = runner.invoke(main, ["--data", str(world.server.data_dir), "catalogue", *args])
        assert result.exit_code == code, result.output
        return result.output

    assert hygie("review", "99", "--criterion", "ins", "--verdict", "pass") == (
        "hygie: error: no app '99' in the catalogue\n"
    )
    assert hygie("review", "1", "--criterion", "ethique", "--verdict", "fail") == (
        "hygie: error: a failed criterion needs a --note saying why\n"
    )
    assert hygie("decide", "1", "suspended", "--reason", "encore") == (
        "hygie: error: only a referenced app can be suspended (it is suspended)\n"
    )
    assert "not passed: ins, annuaire" in hygie("decide", "1", "referenced", "--reason", "v2")
    assert "Missing option '--reason'" in hygie("decide", "1", "withdrawn", code=2)
    shown = hygie("show", "1", code=0)
    assert "status:      suspended (live version 1)" in shown
    assert "submitted v2" in shown and "suspended v1  by cli:" in shown
    assert "criteria (version 2):\n  ins               pending" in shown
    assert hygie("list", code=0).startswith("   1  suspended     fr.exemple.suivi-diabete")
    assert hygie("decide", "1", "withdrawn", "--reason", "fin du service", code=0) == (
        "app 1 withdrawn; editor told\n"
    )
    assert send(world, APP, PATIENT, note(PATIENT, "Retirée")) == (
        550,
        "5.7.1 This application is withdrawn from the catalogue",
    )
    again = submit(world, encoded(good(certificate=world.app_serial, version="2.0.0")))
    assert "- /id: fr.exemple.suivi-diabete was withdrawn; submit it under a new id" in text(again)
