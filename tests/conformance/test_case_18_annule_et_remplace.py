"""MSSanté reference (b) 18, "annule et remplace": "a new version sets In-Reply-To/References
to the original and carries the 'annule et remplace' mention; the receiver replaces the old
version and returns 900 on a version mismatch".

Against a running ``hygie serve``: ``hygie-client send --patient … --replaces MESSAGE-ID``
sends the new version of a document it sent before (found in Sent; the CDA, written by the
doctor's software, names the version it replaces in relatedDocument RPLC); the patient's ``Dossier``
then holds the new version in place of the old one; replacing a version the patient's
dossier does not hold comes back as the MSSanté error 900.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.harness import ServerProcess
from dossier.cda import CdaDocument, build_cda
from dossier.xdm import parse_xdm
from tests.conformance.client_support import client_config, fetch_all, hygie_client
from tests.e2e.test_dossier_filing import cda
from tests.support.servers import settle, start_server, stop_server

pytestmark = pytest.mark.timeout(600)

DOCTOR = "paul.martin@hygie.test"
COLLEAGUE = "claire.martin@hygie.test"
PASSWORD = "case-18-password-1"
INS = "279035121518989"
PATIENT = f"{INS}@patient.hygie.test"


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    srv = start_server(request, "sqlite", dict.fromkeys([DOCTOR, COLLEAGUE, PATIENT], PASSWORD))
    yield srv
    stop_server(srv)


def send(server: ServerProcess, tmp_path: Path, to: str, subject: str, document: CdaDocument,
         pdf: bytes, *extra: str) -> None:  # fmt: skip
    """``hygie-client send --patient`` of ``document`` (a CDA R2 written by the doctor's
    software, with its author's IdNat) and its PDF rendering."""
    config = client_config(tmp_path / "client.toml", server, DOCTOR)
    text = tmp_path / "body.txt"
    text.write_text("Compte rendu ci-joint.\n", encoding="utf-8")
    report = tmp_path / "cr.pdf"
    report.write_bytes(pdf)
    cda_file = tmp_path / "cr.xml"
    cda_file.write_bytes(build_cda(document, pdf=pdf))
    proc = hygie_client(config, "send", "--to", to, "--subject", subject, "--body-file",
                        str(text), "--patient", INS, "--doc-type", "11488-4", "--attach",
                        str(cda_file), "--attach", str(report), *extra,
                        secret=PASSWORD)  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def sent_id(server: ServerProcess, subject: str) -> str:
    [message] = [m for m in fetch_all(server, DOCTOR, PASSWORD, "Sent") if m["Subject"] == subject]
    return str(message["Message-ID"])


def dossier(server: ServerProcess) -> list[bytes]:
    """The PDF of each document filed in the patient's Dossier (one message each)."""
    settle(server)
    return [
        part.get_content()
        for message in fetch_all(server, PATIENT, PASSWORD, "Dossier")
        for part in message.iter_attachments()
        if part.get_content_type() == "application/pdf"
    ]


def errors(server: ServerProcess) -> list[str]:
    """The subjects of the MSSanté error notices the doctor got back."""
    settle(server)
    return [str(m["Subject"]) for m in fetch_all(server, DOCTOR, PASSWORD)
            if str(m["Subject"]).startswith("[KO")]  # fmt: skip


def test_the_new_version_replaces_the_old(server: ServerProcess, tmp_path: Path) -> None:
    first = cda()
    send(server, tmp_path, PATIENT, "Compte rendu", first, b"%PDF-1.4\n% version 1\n%%EOF\n")
    assert dossier(server) == [b"%PDF-1.4\n% version 1\n%%EOF\n"]
    original = sent_id(server, "Compte rendu")

    second = cda(set_id=first.document_id, version=2, replaces=first.document_id)
    send(server, tmp_path, PATIENT, "Compte rendu corrigé", second,
         b"%PDF-1.4\n% version 2\n%%EOF\n", "--replaces", original)  # fmt: skip
    [new] = [m for m in fetch_all(server, PATIENT, PASSWORD) if "corrig" in m["Subject"]]
    assert new["In-Reply-To"] == original and new["References"] == original
    text = new.get_body(("plain",))
    assert text is not None
    assert text.get_content().startswith("Annule et remplace le message du ")
    assert original in text.get_content().splitlines()[0]
    # The receiver kept one document: the new version, in the old one's place.
    assert errors(server) == []
    assert dossier(server) == [b"%PDF-1.4\n% version 2\n%%EOF\n"]
    [archive] = [p for p in new.iter_attachments() if p.get_filename() == "IHE_XDM.zip"]
    [document] = parse_xdm(archive.get_content()).cda_documents
    assert document.cda is not None and document.cda.version_number == 2


def test_a_version_the_receiver_does_not_hold_is_900(server: ServerProcess,
                                                      tmp_path: Path) -> None:  # fmt: skip
    # Version 1 went to a colleague only: the patient's dossier never held it.
    first = cda()
    send(server, tmp_path, COLLEAGUE, "Pour avis", first, b"%PDF-1.4\n% avis\n%%EOF\n")
    original = sent_id(server, "Pour avis")
    before = len(dossier(server))
    second = cda(set_id=first.document_id, version=2, replaces=first.document_id)
    send(server, tmp_path, PATIENT, "Pour avis, corrigé", second, b"%PDF-1.4\n% v2\n%%EOF\n",
         "--replaces", original)  # fmt: skip
    assert [s for s in errors(server) if s.startswith("[KO Intégration système !][900]")]
    assert len(dossier(server)) == before


def test_replacing_needs_a_message_of_sent(server: ServerProcess, tmp_path: Path) -> None:
    config = client_config(tmp_path / "client.toml", server, DOCTOR)
    proc = hygie_client(config, "send", "--to", PATIENT, "--subject", "x", "--replaces",
                        "<absent@hygie.test>", secret=PASSWORD)  # fmt: skip
    assert proc.returncode != 0 and "no message <absent@hygie.test>" in proc.stderr
