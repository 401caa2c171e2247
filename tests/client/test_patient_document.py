"""A lone PDF sent to a patient: the client wraps it in a CDA (PDF-in-CDA) written from the
identity traits the practitioner types, builds the IHE_XDM.zip and the MSSanté headers, and a
real ``hygie serve`` files it in the patient's Dossier (which checks the traits against its
patient directory, MSSanté code 904). From the interface (Pilot) and from ``send``."""

from __future__ import annotations

import email
import imaplib
from datetime import date
from email.policy import default as default_policy
from pathlib import Path

import pytest
from textual.widgets import Input, Select

import client_tui.mssante  # noqa: F401 (registers the builder, as the command does)
from bench.harness import ServerProcess
from client_tui.app import HygieClient
from client_tui.cli import main
from client_tui.compose import DocumentAuthor, PatientTraits, XdmUnavailable
from client_tui.config import load_config
from client_tui.mail_screen import MailScreen
from client_tui.mssante import build_patient_archive
from client_tui.patient_screen import PatientDocumentScreen
from dossier.xdm import parse_xdm
from tests.client.conftest import PASSWORD
from tests.client.pilot import wait_until
from tests.client.test_app_pilot import SIZE, sign_in
from tests.support.mail import inbox_messages

ANNE = "285077512345655"  # F, born 07/1985
LUC = "162046912378943"  # M, born 04/1962
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\n%%EOF\n"


def register(server: ServerProcess, ins: str, family: str, given: str, born: str,
             sex: str) -> str:  # fmt: skip
    """The patient in the server's directory (traits checked on filing), and a password to
    read their mailbox in the test."""
    address = f"{ins}@patient.hygie.test"
    server.add_user(address, PASSWORD, patient=("--birth-name", family, "--given", given,
                                                "--birth-date", born, "--sex", sex))  # fmt: skip
    return address


def dossier_of(server: ServerProcess, address: str) -> list[bytes]:
    client = imaplib.IMAP4_SSL("127.0.0.1", server.imap_tls_port, ssl_context=server.ssl_context())
    try:
        client.login(address, PASSWORD)
        typ, data = client.select("Dossier", readonly=True)
        if typ != "OK" or int(data[0] or 0) == 0:  # created with the first document
            return []
        _, fetched = client.fetch("1:*", "(BODY.PEEK[])")
        return [part[1] for part in fetched if isinstance(part, tuple)]
    finally:
        client.logout()


def test_lone_pdf_is_wrapped_with_the_typed_traits(tmp_path: Path) -> None:
    pdf = tmp_path / "echo.pdf"
    pdf.write_bytes(PDF)
    traits = PatientTraits("Lefèvre", "Anne Marie", date(1985, 7, 3), "F")
    author = DocumentAuthor("Jean", "DUPONT", "810003456789")
    package = parse_xdm(build_patient_archive([pdf], ANNE, "18748-4", traits=traits,
                                              author=author))  # fmt: skip
    [document] = package.cda_documents
    header = document.cda
    assert header is not None and header.body.kind == "nonXML" and header.body.content == PDF
    assert header.patient.ins is not None and header.patient.ins.matricule == ANNE
    assert (header.patient.birth_name, header.patient.given_names) == ("LEFÈVRE", ("Anne", "Marie"))
    assert (header.patient.birth_date, header.patient.sex) == (date(1985, 7, 3), "F")
    assert header.authors[0].idnat == "810003456789" and header.code.code == "18748-4"

    # What the INS says must agree with the traits; a PDF alone needs them.
    for wrong, reason in (
        (PatientTraits("Lefèvre", "Anne", date(1985, 7, 3), "M"), "sex"),
        (PatientTraits("Lefèvre", "Anne", date(1986, 7, 3), "F"), "birth year"),
        (PatientTraits("Lefèvre", "Anne", date(1985, 8, 3), "F"), "birth month"),
    ):
        with pytest.raises(XdmUnavailable, match=reason):
            build_patient_archive([pdf], ANNE, "18748-4", traits=wrong, author=author)
    with pytest.raises(XdmUnavailable, match="identity traits"):
        build_patient_archive([pdf], ANNE, "18748-4", author=author)
    # Typed traits and a CDA must name the same person.
    cda = tmp_path / "cr.xml"
    cda.write_bytes(
        parse_xdm(build_patient_archive([pdf], ANNE, "18748-4", traits=traits, author=author))
        .cda_documents[0]
        .content
    )
    lefevre = PatientTraits("LEFEVRE", "anne", date(1985, 7, 3), "F")
    assert build_patient_archive([cda], ANNE, "18748-4", traits=lefevre, author=author)
    with pytest.raises(XdmUnavailable, match="other identity traits"):
        other = PatientTraits("Lefèvre", "Anne", date(1985, 7, 4), "F")
        build_patient_archive([cda], ANNE, "18748-4", traits=other, author=author)
    with pytest.raises(XdmUnavailable, match="key"):
        build_patient_archive([pdf], ANNE[:-2] + "00", "18748-4", traits=traits, author=author)


async def test_send_a_lone_pdf_from_the_interface(
    server: ServerProcess, config_file: Path, tmp_path: Path
) -> None:
    patient = register(server, ANNE, "Lefèvre", "Anne Marie", "1985-07-03", "F")
    pdf = tmp_path / "echographie.pdf"
    pdf.write_bytes(PDF)
    app = HygieClient(load_config(config_file), account_name="jean")
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot)
        await wait_until(pilot, lambda: isinstance(app.screen, MailScreen), "the mail screen")
        await pilot.press("p")
        await wait_until(pilot, lambda: isinstance(app.screen, PatientDocumentScreen), "form")
        screen = app.screen
        screen.query_one("#ins", Input).value = ANNE
        screen.query_one("#files", Input).value = str(pdf)
        screen.query_one("#doctype", Select).value = "18748-4"
        # Without the traits the client says what is missing and sends nothing.
        await pilot.press("ctrl+s")

        def refused() -> bool:
            return any("identity traits" in str(n.message) for n in app._notifications)

        await wait_until(pilot, refused, "the refusal")
        assert app.screen is screen
        screen.query_one("#family", Input).value = "Lefèvre"
        screen.query_one("#given", Input).value = "Anne Marie"
        screen.query_one("#birth-date", Input).value = "03/07/1985"
        screen.query_one("#sex", Select).value = "F"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, MailScreen), "the send", 90)
        await pilot.press("q")

    [filed] = dossier_of(server, patient)
    assert "LEFÈVRE" in str(email.message_from_bytes(filed, policy=default_policy)["Subject"])
    [received] = inbox_messages(server, patient, PASSWORD)
    message = email.message_from_bytes(received, policy=default_policy)
    assert (message["X-MSS-CODECDA"], message["X-MSS-INS"]) == ("18748-4", "O")
    assert message["Subject"] == "XDM/1.0/DDM+CR d'imagerie LEFÈVRE Anne 03/07/1985"


def test_send_a_lone_pdf_from_a_script(
    server: ServerProcess, config_file: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    patient = register(server, LUC, "Garnier", "Luc", "1962-04-21", "M")
    scan = tmp_path / "scanner.pdf"
    scan.write_bytes(PDF)
    base = ["--config", str(config_file), "send", "--to", patient, "--patient", LUC,
            "--doc-type", "18748-4", "--attach", str(scan)]  # fmt: skip
    traits = ["--patient-family", "Garnier", "--patient-given", "Luc",
              "--patient-birth-date", "1962-04-21", "--patient-sex", "M"]  # fmt: skip
    monkeypatch.setenv("HYGIE_CLIENT_SECRET", PASSWORD)

    # The command's own code, run in-process (test_send_command.py runs the installed one).
    def refused(*args: str) -> tuple[int, str]:
        code = main([*base, *args])
        return code, capsys.readouterr().err

    code, err = refused()
    assert code == 1 and "identity traits" in err
    code, err = refused("--patient-family", "Garnier")
    assert code == 2 and "--patient-birth-date" in err
    code, err = refused(*traits[:-1], "F")
    assert code == 1 and "sex does not match" in err and len(err.splitlines()) == 1
    assert dossier_of(server, patient) == []

    assert main([*base, *traits]) == 0, capsys.readouterr().err
    [filed] = dossier_of(server, patient)
    assert b"GARNIER Luc 21/04/1962" in filed  # the filed document, named by its traits
