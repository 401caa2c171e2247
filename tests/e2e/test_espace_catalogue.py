"""Connecting and revoking an app from the patient's space, in Chromium (issue 22 item 2,
*Catalogue*), on a real `hygie serve`: the patient finds the referenced app, connects it for
messages only for three months, sees what it did under that consent, then revokes it, and the
app's next message is refused at RCPT."""

from __future__ import annotations

from typing import Any

import pytest

from tests.catalogue.manifests import encoded, good
from tests.e2e.test_catalogue import APP, PASSWORD, PATIENT, World, note, send, submit, text, world
from tests.e2e.test_patient_sessions import enrolled
from tests.e2e.test_patient_spaces import page_for, url

pytestmark = pytest.mark.e2e
__all__ = ["world"]  # the module's server, as tests/e2e/test_catalogue.py builds it


def test_connect_see_and_revoke_an_app(world: World, browser: Any) -> None:
    hygie = world.server.hygie
    ack = submit(world, encoded(good(certificate=world.app_serial)))
    assert "enregistrée sous le numéro 1" in text(ack)
    hygie("catalogue", "review", "1", *[a for c in ("ins", "annuaire", "messagerie", "securite",
          "ethique", "interoperabilite") for a in ("--criterion", c)], "--verdict", "pass",
          "--note", "pièces vérifiées")  # fmt: skip
    hygie("catalogue", "decide", "1", "referenced", "--reason", "tous les critères sont remplis")

    codes = enrolled(world.server, PATIENT)
    page = page_for(browser)
    page.goto(url(world.server, "/espace/connexion"))
    page.fill("#address", PATIENT)
    page.fill("#password", PASSWORD)
    page.fill("#code", codes.next())
    with page.expect_navigation():
        page.click("button[type=submit]")
    page.click("nav >> text=Applications")
    assert page.inner_text("h1") == "Applications"
    assert page.locator("ul.apps li").count() == 1
    assert send(world, APP, PATIENT, note(PATIENT, "Avant")) == (
        550, "5.7.1 The patient has not connected this application")

    # Messages only, for three months.
    for scope in ("dossier-read", "dossier-write", "agenda-write"):
        page.uncheck(f"#scope-1-{scope}")
    page.select_option("#mois-1", "3")
    with page.expect_navigation():
        page.click("ul.apps button[type=submit]")
    assert page.inner_text("p.ok") == "L'application est connectée."
    row = page.locator("ul.connections li").first
    assert "Active" in row.inner_text() and "Autorisée à : vous écrire ·" in row.inner_text()

    # What the app did under it: its message, allowed; its filing, refused.
    assert send(world, APP, PATIENT, note(PATIENT, "Glycémie du soir")) == (250, "")
    page.reload()
    row = page.locator("ul.connections li").first
    row.locator("summary").click()
    assert "vous écrire · autorisé" in row.inner_text()

    # Revoked: the app's next message is refused.
    with page.expect_navigation():
        page.click("button[aria-label='Révoquer : " + page.inner_text("ul.connections .title")
                   + "']")  # fmt: skip
    assert page.inner_text("p.ok").startswith("L'application est révoquée")
    assert "Révoquée" in page.locator("ul.connections li").first.inner_text()
    code, _ = send(world, APP, PATIENT, note(PATIENT, "Après"))
    assert code == 550
    log = hygie("audit", "--action", "catalogue.").stdout.decode()
    assert "catalogue.connect" in log and "catalogue.revoke" in log
