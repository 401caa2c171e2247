"""Screenshots of the patient's space ("Mon espace santé", issue 22) at phone (375 px) and
desktop (1280 px) widths, taken in Chromium on a real ``hygie serve`` with a patient, a
professional, two filed documents and a message:

    .venv/bin/python docs/screenshots/make_espace_screenshots.py

writes ``docs/screenshots/espace-<page>-phone.png`` and ``…-desktop.png``."""

from __future__ import annotations

import datetime as dt
import email.policy
import sys
from email.message import EmailMessage
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent.parent))

from playwright.sync_api import sync_playwright  # noqa: E402

from bench.harness import ServerProcess  # noqa: E402
from dossier.cda import Section, build_cda  # noqa: E402
from tests.e2e.test_dossier_filing import DOCTOR, PDF, cda, send  # noqa: E402
from tests.e2e.test_espace_pages import (  # noqa: E402
    MATRICULE,
    PASSWORD,
    PATIENT,
    TRAITANT,
    WIDTHS,
    invitation,
    message,
)
from tests.e2e.test_patient_sessions import enrolled  # noqa: E402
from tests.support.servers import settle  # noqa: E402
from tests.support.tools import ensure_debian_tool  # noqa: E402


def populate(srv: ServerProcess) -> None:
    srv.hygie_batch(*((("user", "bind", who, "--idnat", idnat), None)
                      for who, idnat in (TRAITANT, (DOCTOR, "810001234567"))))  # fmt: skip
    sections = (Section("Motif", ("Contrôle annuel.",)),
                Section("Conclusion", ("Tension artérielle normale.", "Revoir dans un an.")))
    send(srv, PATIENT, message(build_cda(cda(MATRICULE), sections=sections), "Bilan"))
    send(srv, PATIENT, message(build_cda(cda(MATRICULE), pdf=PDF), "Compte rendu", PDF))
    mail = EmailMessage()
    mail["From"], mail["To"] = f"Dr Paul Martin <{DOCTOR}>", PATIENT
    mail["Subject"] = "Vos résultats d'analyse"
    mail.set_content("Bonjour Madame Dupont,\n\nVos résultats sont bons. Nous en reparlerons "
                     "lors de votre prochain rendez-vous.\n\nBien cordialement,\nDr Martin")
    send(srv, PATIENT, mail.as_bytes(policy=email.policy.SMTP))
    start = (dt.datetime.now(dt.UTC) + dt.timedelta(days=9)).replace(hour=8, minute=30,
                                                                      second=0, microsecond=0)
    send(srv, PATIENT, invitation("rdv-1@hygie.test", "Consultation de suivi", start))
    settle(srv)


def main() -> None:
    srv = ServerProcess(
        users={PATIENT: PASSWORD, DOCTOR: PASSWORD, TRAITANT[0]: PASSWORD},
        env={"HYGIE_SERVER_WORKERS": "1"},
        patients={PATIENT: ("--birth-name", "DUPONT", "--given", "Marie", "--birth-date",
                            "1979-03-12", "--sex", "F", "--medecin-traitant", TRAITANT[1])},
    )  # fmt: skip
    srv.start()
    try:
        populate(srv)
        codes = enrolled(srv, PATIENT)
        base = f"https://localhost:{srv.https_port}"
        with sync_playwright() as play:
            executable = ensure_debian_tool("chromium", extra_packages=["fonts-dejavu-core"])
            browser = play.chromium.launch(executable_path=executable, args=["--no-sandbox"])
            context = browser.new_context(ignore_https_errors=True, java_script_enabled=False,
                                          locale="fr-FR")  # fmt: skip
            page = context.new_page()
            page.set_viewport_size(WIDTHS["desktop"])
            page.goto(base + "/espace/connexion")
            shots = {"connexion": base + "/espace/connexion"}
            page.fill("#address", PATIENT)
            page.fill("#password", PASSWORD)
            page.fill("#code", codes.next())
            with page.expect_navigation():
                page.click("button[type=submit]")
            page.goto(base + "/espace/messages")
            shots["messages"] = page.url
            shots["message"] = base + str(page.locator("ul.messages a.title").first
                                          .get_attribute("href"))  # fmt: skip
            page.goto(base + "/espace/documents")
            shots["documents"] = page.url
            shots["document"] = base + str(page.locator("ul.documents a.title").first
                                           .get_attribute("href"))  # fmt: skip
            shots["agenda"] = base + "/espace/agenda"
            shots["applications"] = base + "/espace/applications"
            shots["historique"] = base + "/espace/historique"
            shots["compte"] = base + "/espace/compte"
            for width, size in WIDTHS.items():
                page.set_viewport_size(size)
                for name, address in shots.items():
                    if name == "connexion":
                        fresh = browser.new_context(ignore_https_errors=True, locale="fr-FR",
                                                    java_script_enabled=False, viewport=size)
                        fresh.new_page().goto(address)
                        fresh.pages[0].screenshot(path=HERE / f"espace-{name}-{width}.png",
                                                  full_page=True)  # fmt: skip
                        fresh.close()
                        continue
                    page.goto(address)
                    page.screenshot(path=HERE / f"espace-{name}-{width}.png", full_page=True)
            browser.close()
    finally:
        srv.stop()
        srv.close()


if __name__ == "__main__":
    main()
