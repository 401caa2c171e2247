"""The patient's space in Chromium (issue 22 item 2), on a real `hygie serve` over HTTPS, after
the two-factor sign-in: the patient opens a CDA as a page and a PDF, hides a document from
professionals and shows it again (the médecin traitant's API answer follows), sees a
professional's reading in the history, reads a message and replies (the professional gets the
reply over IMAP), and cannot reply once the professional ended the exchange with ``[FIN]``.
Every value a sender controls (the CDA's title, sections and author; a message's subject,
sender name, HTML body and attachment name) reaches the page as text."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.policy
import html
import http.client
import imaplib
import json
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from icalendar import Calendar, Event

from bench.harness import ServerProcess
from dossier.cda import Author, Section, build_cda
from dossier.subject import mss_document_headers
from dossier.xdm import OutgoingDocument, build_xdm, parse_xdm
from tests.e2e.test_dossier_api import call
from tests.e2e.test_dossier_filing import DOCTOR, PDF, cda, send
from tests.e2e.test_patient_sessions import enrolled
from tests.e2e.test_patient_spaces import address, page_for, url
from tests.server.spaces_support import ins
from tests.support.servers import settle, stop_server

pytestmark = pytest.mark.e2e
MATRICULE = ins(41)
PATIENT = address(MATRICULE)
PASSWORD = "dossier-test-password-1"  # DOCTOR's in test_dossier_filing, and the patient's
TRAITANT = ("dr.traitant@hygie.test", "810005555555")
XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'
NAME_XSS = "<script>alert('x')</script><img src=x onerror=alert(1)>"  # a display name


@pytest.fixture(scope="module")
def served(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    srv = ServerProcess(
        users={PATIENT: PASSWORD, DOCTOR: PASSWORD, TRAITANT[0]: PASSWORD},
        env={"HYGIE_AUTH_FAILURE_DELAY_SECONDS": "0.1"},
        patients={PATIENT: ("--birth-name", "DUPONT", "--given", "Marie", "--birth-date",
                            "1979-03-12", "--sex", "F", "--medecin-traitant", TRAITANT[1])},
    )  # fmt: skip
    srv.start()
    populate(srv)
    yield srv
    stop_server(srv)


def populate(srv: ServerProcess) -> None:
    """The professionals' identities, and two documents in the patient's dossier (one CDA with
    sections carrying markup, one PDF) filed."""
    srv.hygie_batch(*((("user", "bind", who, "--idnat", idnat), None)
                      for who, idnat in (TRAITANT, (DOCTOR, "810001234567"))))  # fmt: skip
    structured = dataclasses.replace(
        cda(MATRICULE), title=f"Bilan {XSS}",
        author=Author("810001234567", f"MARTIN{XSS}", "Paul", "Dr", "Hôpital Hygie"),
    )  # fmt: skip
    sections = (Section(f"Conclusion {XSS}", ("Tension normale.", f"Note : {XSS}")),)
    send(srv, PATIENT, message(build_cda(structured, sections=sections), "Bilan"))
    send(srv, PATIENT, message(build_cda(cda(MATRICULE), pdf=PDF), "Compte rendu", PDF))
    settle(srv)


def message(document: bytes, subject: str, pdf: bytes | None = None) -> bytes:
    archive = build_xdm([OutgoingDocument(document, pdf=pdf)], source_id="1.2.250.1.999.1")
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = DOCTOR, PATIENT, subject
    for name, value in mss_document_headers(parse_xdm(archive), ins_qualified=True).items():
        mail[name] = value
    mail.set_content("Veuillez trouver le document ci-joint.")
    mail.add_attachment(archive, maintype="application", subtype="zip", filename="IHE_XDM.zip")
    return mail.as_bytes(policy=email.policy.SMTP)


@pytest.fixture(scope="module")
def patient_page(served: ServerProcess, browser: Any) -> Any:
    """One Chromium page signed in as the patient, shared by the tests of the module."""
    codes = enrolled(served, PATIENT)
    page = page_for(browser)
    page.goto(url(served, "/espace/connexion"))
    page.fill("#address", PATIENT)
    page.fill("#password", PASSWORD)
    page.fill("#code", codes.next())
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert page.inner_text("h1") == "Mon compte"
    return page


def traitant_sees(served: ServerProcess) -> int:
    status, body = call(served, "/dossier/patient/documents", TRAITANT[0], ins=MATRICULE)
    assert status == 200, body
    return len(json.loads(body)["documents"])


def test_documents_history_and_hiding(served: ServerProcess, patient_page: Any) -> None:
    page = patient_page
    page.click("nav >> text=Documents")
    assert page.inner_text("h1") == "Documents"
    titles = page.locator("ul.documents a.title").all_inner_texts()
    assert sorted(titles) == [f"Bilan {XSS}", "Consultation de cardiologie"]
    # The sender's markup is text: no element it names exists in the page.
    assert page.locator("script").count() == 0 and page.locator("img").count() == 0
    page.click("text=Par type de document")
    assert page.locator("h2").all_inner_texts() == ["Compte rendu de consultation"]

    # The CDA as a readable page: its sections as text.
    page.click(f"text=Bilan {XSS}")
    assert page.inner_text("h1") == f"Bilan {XSS}"
    assert page.locator("main h2").all_inner_texts() == [f"Conclusion {XSS}"]
    assert f"Note : {XSS}" in page.inner_text("main")
    assert f"Dr Paul MARTIN{XSS}" in page.inner_text("main")
    assert page.locator("script").count() == 0 and page.locator("img").count() == 0

    # The PDF, inline and as a download.
    page.click("text=Retour aux documents")
    page.click("text=Consultation de cardiologie")
    href = page.locator("text=Afficher le document PDF").get_attribute("href")
    pdf = page.context.request.get(url(served, href))
    assert (pdf.status, pdf.headers["content-type"], pdf.body()) == (200, "application/pdf", PDF)
    assert pdf.headers["content-disposition"].startswith("inline")
    with page.expect_download() as download:
        page.click("text=Télécharger le PDF")
    assert download.value.suggested_filename.endswith(".pdf")

    # Hide from professionals, then show again: the médecin traitant's answer follows.
    assert traitant_sees(served) == 2
    page.click("text=Retour aux documents")
    with page.expect_navigation():
        page.click("button[aria-label^='Masquer aux professionnels : Consultation']")
    assert page.inner_text("p.ok") == "Le document est masqué aux professionnels."
    assert page.locator(".badge").count() == 1
    assert traitant_sees(served) == 1
    with page.expect_navigation():
        page.click("button[aria-label^='Rendre visible aux professionnels']")
    assert traitant_sees(served) == 2

    # The history: the médecin traitant's reading, by name, and the patient's own.
    page.click("nav >> text=Historique des accès")
    rows = page.locator("table.history tbody tr").all_inner_texts()
    assert any(TRAITANT[0] in r and "a consulté la liste des documents" in r for r in rows)
    assert any("Vous" in r and "a masqué aux professionnels" in r for r in rows)
    assert sum("document ajouté" in r for r in rows) == 2


def test_the_pages_need_the_two_factor_session(served: ServerProcess) -> None:
    """No session cookie: every page sends back to the sign-in; a forged form is refused."""
    for path in ("/espace/documents", "/espace/documents/1", "/espace/historique"):
        conn = http.client.HTTPSConnection("localhost", served.https_port,
                                           context=served.ssl_context(), timeout=30)  # fmt: skip
        conn.request("GET", path)
        reply = conn.getresponse()
        assert reply.status == 303 and "/espace/connexion" in reply.getheader("location", "")
        conn.close()
    conn = http.client.HTTPSConnection("localhost", served.https_port,
                                       context=served.ssl_context(), timeout=30)  # fmt: skip
    conn.request("POST", "/espace/documents/1/masquer", body=b"csrf=forged",
                 headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert conn.getresponse().status == 403
    conn.close()


def mail_from_doctor(served: ServerProcess, subject: str, *, html: str = "",
                     attachment: tuple[str, bytes] | None = None) -> None:  # fmt: skip
    mail = EmailMessage()
    mail["From"] = f'"Dr Paul {NAME_XSS}" <{DOCTOR}>'
    mail["To"], mail["Subject"] = PATIENT, subject
    mail["Message-ID"] = f"<{abs(hash(subject))}@hygie.test>"
    mail.set_content("Bonjour, vos résultats sont bons.\nBien à vous.")
    if html:
        mail.add_alternative(html, subtype="html")
    if attachment is not None:
        mail.add_attachment(attachment[1], maintype="application", subtype="octet-stream",
                            filename=attachment[0])  # fmt: skip
    send(served, PATIENT, mail.as_bytes(policy=email.policy.SMTP))
    settle(served)


def doctor_inbox(served: ServerProcess) -> list[EmailMessage]:
    with imaplib.IMAP4_SSL("localhost", served.imap_tls_port,
                           ssl_context=served.ssl_context()) as imap:  # fmt: skip
        imap.login(DOCTOR, PASSWORD)
        imap.select("INBOX")
        found = []
        for uid in imap.uid("SEARCH", "ALL")[1][0].split():
            data = imap.uid("FETCH", uid, "(BODY.PEEK[])")[1][0]
            assert isinstance(data, tuple)
            parsed = email.message_from_bytes(data[1], policy=email.policy.default)
            assert isinstance(parsed, EmailMessage)
            found.append(parsed)
        return found


def test_read_a_message_reply_and_no_reply_after_fin(
    served: ServerProcess, patient_page: Any
) -> None:
    page = patient_page
    subject = f"Résultats {XSS}"
    mail_from_doctor(served, subject, html=f"<p>Bonjour</p>{XSS}<style>p{{}}</style>",
                     attachment=(f"{XSS}.txt", b"contenu"))  # fmt: skip
    page.click("nav >> text=Messagerie")
    assert page.inner_text("h1") == "Messagerie"
    page.click(f"ul.messages >> text={subject}")
    assert page.inner_text("h1") == subject
    assert "vos résultats sont bons" in page.inner_text(".message-text")
    assert f"Dr Paul {NAME_XSS} <{DOCTOR}>" in page.inner_text("dl.fields")
    assert page.locator("script").count() == 0 and page.locator("img").count() == 0
    missing = page.context.request.get(page.url.split("?")[0].rsplit("/", 1)[0] + "/999999")
    assert missing.status == 404 and "Ce message n'existe pas" in html.unescape(missing.text())
    with page.expect_download() as download:
        page.click(f"text={XSS}.txt")
    assert download.value.path().read_bytes() == b"contenu"

    # The reply, through the one pipeline: the doctor reads it over IMAP.
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    page.fill("#texte", "Merci docteur.")
    with page.expect_navigation():
        page.click("text=Envoyer la réponse")
    assert page.inner_text("p.ok") == "Votre réponse est envoyée."
    settle(served)
    replies = [m for m in doctor_inbox(served) if m["Subject"] == f"Re: {subject}"]
    assert len(replies) == 1 and replies[0]["From"] == PATIENT
    body = replies[0].get_body(("plain",))
    assert body is not None and "Merci docteur." in body.get_content()
    assert replies[0]["In-Reply-To"] == f"<{abs(hash(subject))}@hygie.test>"

    # The doctor ends the exchange: no form any more, and a forged post is refused.
    mail_from_doctor(served, "[FIN]")
    page.click("nav >> text=Messagerie")
    page.click("ul.messages >> text=[FIN]")
    assert page.locator("#texte").count() == 0
    assert "a clos l'échange" in page.inner_text("#no-reply")
    target = page.url.split("?")[0] + "/repondre"
    forged = page.context.request.post(target, form={"csrf": csrf, "texte": "Encore ?"})
    assert forged.status == 403
    assert "550 5.7.1 This professional has ended the exchange" in forged.text()
    settle(served)
    assert not [m for m in doctor_inbox(served) if "Encore" in str(m)]


def invitation(uid: str, summary: str, start: dt.datetime) -> bytes:
    """The doctor's iMIP REQUEST to the patient (RFC 6047), as a calendar program sends it."""
    calendar = Calendar()
    calendar.add("PRODID", "-//Hygie tests//FR")
    calendar.add("VERSION", "2.0")
    calendar.add("METHOD", "REQUEST")
    event = Event()
    event.add("UID", uid)
    event.add("DTSTAMP", dt.datetime.now(dt.UTC))
    event.add("SEQUENCE", 0)
    event.add("DTSTART", start)
    event.add("DTEND", start + dt.timedelta(minutes=30))
    event.add("SUMMARY", summary)
    event.add("ORGANIZER", f"mailto:{DOCTOR}")
    event.add("ATTENDEE", f"mailto:{PATIENT}",
              parameters={"PARTSTAT": "NEEDS-ACTION", "RSVP": "TRUE"})  # fmt: skip
    calendar.add_component(event)
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = DOCTOR, PATIENT, "Rendez-vous"
    mail.set_content("Invitation en pièce jointe.")
    mail.add_alternative(bytes(calendar.to_ical()), maintype="text", subtype="calendar",
                         params={"method": "REQUEST", "charset": "UTF-8"})  # fmt: skip
    return mail.as_bytes(policy=email.policy.SMTP)


def doctor_answer(served: ServerProcess, uid: str) -> str:
    """The patient's PARTSTAT in the doctor's own agenda (the .ics feed, bearer)."""
    status, body = call(served, "/agenda/calendar.ics", DOCTOR)
    assert status == 200, body
    for event in Calendar.from_ical(body).walk("VEVENT"):
        if str(event["UID"]) == uid:
            attendees = event.get("ATTENDEE")
            for attendee in attendees if isinstance(attendees, list) else [attendees]:
                if str(attendee).lower() == f"mailto:{PATIENT}":
                    return str(attendee.params["PARTSTAT"])
    raise AssertionError(f"no event {uid} in the doctor's agenda")


def test_accept_an_appointment_by_imip(served: ServerProcess, patient_page: Any) -> None:
    uid = "rdv-espace-1@hygie.test"
    start = (dt.datetime.now(dt.UTC) + dt.timedelta(days=7)).replace(microsecond=0)
    send(served, PATIENT, invitation(uid, f"Consultation {XSS}", start))
    settle(served)
    assert doctor_answer(served, uid) == "NEEDS-ACTION"
    page = patient_page
    page.click("nav >> text=Agenda")
    assert page.inner_text("h1") == "Agenda"
    item = page.locator("ul.agenda li", has_text=f"Consultation {XSS}")
    assert "En attente de votre réponse" in item.inner_text()
    assert page.locator("script").count() == 0 and page.locator("img").count() == 0
    with page.expect_navigation():
        item.locator("button", has_text="Accepter").click()
    assert page.inner_text("p.ok").startswith("Vous avez accepté le rendez-vous")
    settle(served)
    assert doctor_answer(served, uid) == "ACCEPTED"
    item = page.locator("ul.agenda li", has_text=f"Consultation {XSS}")
    page.reload()
    assert "Accepté" in item.inner_text()
    assert "/agenda/calendar.ics" in page.inner_text("code.feed")


#: The signed-in pages, by name (docs/screenshots/espace-<name>-*.png).
PAGES = {"messages": "/espace/messages", "agenda": "/espace/agenda",
         "documents": "/espace/documents", "documents-type": "/espace/documents?par=type",
         "applications": "/espace/applications", "historique": "/espace/historique",
         "compte": "/espace/compte"}  # fmt: skip
WIDTHS = {"phone": {"width": 375, "height": 812}, "desktop": {"width": 1280, "height": 800}}


def test_every_page_is_accessible_on_a_phone_and_a_desktop(
    served: ServerProcess, patient_page: Any, browser: Any
) -> None:
    """axe-core finds no serious or critical violation (WCAG 2.1 A and AA rules) on each
    signed-in page, at 375 and 1280 pixels wide; on the phone nothing scrolls sideways. (axe
    runs in a context of its own, with the same session: the pages have no script, and axe
    needs one.)"""
    context = browser.new_context(ignore_https_errors=True, locale="fr-FR", bypass_csp=True)
    context.add_cookies(patient_page.context.cookies())
    page, axe = context.new_page(), Axe()
    page.goto(url(served, PAGES["documents"]))
    pages = dict(PAGES, document=page.locator("ul.documents a.title").first.get_attribute("href"))
    page.goto(url(served, PAGES["messages"]))
    pages["message"] = page.locator("ul.messages a.title").first.get_attribute("href")
    options = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}
    for width, size in WIDTHS.items():
        page.set_viewport_size(size)
        for name, path in pages.items():
            page.goto(url(served, path))
            found = axe.run(page, options=options).response["violations"]
            serious = [(v["id"], v["help"]) for v in found
                       if v["impact"] in ("serious", "critical")]  # fmt: skip
            assert serious == [], (width, name, serious)
            if width == "phone":
                scroll = page.evaluate("document.scrollingElement.scrollWidth")
                assert scroll <= size["width"], (name, scroll)
