"""The dossier over HTTPS (issue 7 item 4): the patient reads their documents, hides one from
professionals, blocks a professional; the declared médecin traitant reads what is not masked
(MASQUE_PS) nor hidden; an author reads their own documents; another professional nothing;
every read is in the audit log."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from datetime import date

import pytest

from bench.harness import ServerProcess
from dossier.xdm import MASQUE_PS
from tests.e2e.test_dossier_filing import (
    DOCTOR,
    INS,
    PASSWORD,
    PATIENT,
    cda,
    error_code,
    send,
    xdm_message,
)
from tests.support.servers import bearer_token, start_server, stop_server

TRAITANT = ("dr.traitant@hygie.test", "810005555555")
OTHER = ("dr.autre@hygie.test", "810009999999")
AUTHOR_IDNAT = "810001234567"  # the author of the documents cda() builds


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    srv = start_server(
        request, "sqlite", {DOCTOR: PASSWORD, TRAITANT[0]: PASSWORD, OTHER[0]: PASSWORD}
    )
    srv.hygie_batch(  # one process for the four commands
        (("patient", "add", INS, "--birth-name", "Dupont", "--given", "Marie",
          "--birth-date", "1979-03-12", "--sex", "F", "--medecin-traitant", TRAITANT[1]), None),
        *((("user", "bind", address, "--idnat", idnat), None)
          for address, idnat in (TRAITANT, OTHER, (DOCTOR, AUTHOR_IDNAT))),
    )  # fmt: skip
    send(srv, PATIENT, xdm_message(cda(), PATIENT, "Visible", receipt=False))
    send(srv, PATIENT, xdm_message(cda(), PATIENT, "Masqué", receipt=False,
                                   restrictions=frozenset({MASQUE_PS})))  # fmt: skip
    send(srv, PATIENT, xdm_message(cda(), PATIENT, "À cacher", receipt=False))
    # Filing is after-commit work (design.md §2 step 5): the 250 came before it.
    deadline = time.monotonic() + 30
    while len(documents(srv, "/dossier/documents", PATIENT)) < 3:
        assert time.monotonic() < deadline, "the three documents were not filed"
        time.sleep(0.2)
    yield srv
    stop_server(srv)


def call(
    server: ServerProcess, path: str, who: str | None, method: str = "GET", *, ins: str = ""
) -> tuple[int, bytes]:
    """``ins``: the patient a professional reads, in the Patient-INS header (never the URL)."""
    request = urllib.request.Request(f"https://localhost:{server.https_port}{path}", method=method)
    if ins:
        request.add_header("Patient-INS", ins)
    if who is not None:
        request.add_header("Authorization", f"Bearer {bearer_token(server, who)}")
    try:
        with urllib.request.urlopen(  # noqa: S310 (https, our own server)
            request, context=server.ssl_context(), timeout=30
        ) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def documents(server: ServerProcess, path: str, who: str, *,
              ins: str = "") -> list[dict[str, object]]:  # fmt: skip
    status, body = call(server, path, who, ins=ins)
    assert status == 200, body
    found: list[dict[str, object]] = json.loads(body)["documents"]
    return found


def test_access_rules(server: ServerProcess) -> None:
    mine = documents(server, "/dossier/documents", PATIENT)
    assert len(mine) == 3
    assert {tuple(d["restrictions"]) for d in mine} == {(), (MASQUE_PS,)}  # type: ignore[arg-type]
    assert mine[0]["type"] == {"code": "11488-4", "label": "Compte rendu de consultation"}

    pro_path = "/dossier/patient/documents"
    assert len(documents(server, pro_path, TRAITANT[0], ins=INS)) == 2  # not the MASQUE_PS one
    assert len(documents(server, pro_path, DOCTOR, ins=INS)) == 2  # the author, same rule
    assert call(server, pro_path, OTHER[0], ins=INS)[0] == 404  # no tie to the patient: nothing

    to_hide = next(d for d in mine if not d["restrictions"])
    status, _ = call(server, f"/dossier/documents/{to_hide['id']}/hide", PATIENT, "POST")
    assert status == 200
    assert len(documents(server, pro_path, TRAITANT[0], ins=INS)) == 1
    status, _ = call(server, f"{pro_path}/{to_hide['id']}/cda", TRAITANT[0], ins=INS)
    assert status == 404
    visible = documents(server, pro_path, TRAITANT[0], ins=INS)[0]
    status, body = call(server, f"{pro_path}/{visible['id']}/cda", TRAITANT[0], ins=INS)
    assert status == 200 and body.startswith(b"<?xml") and b"ClinicalDocument" in body

    status, _ = call(server, f"/dossier/blocks/{TRAITANT[1]}", PATIENT, "POST")
    assert status == 200
    status, body = call(server, pro_path, TRAITANT[0], ins=INS)
    assert status == 403 and b"blocked" in body
    call(server, f"/dossier/blocks/{TRAITANT[1]}", PATIENT, "DELETE")
    assert len(documents(server, pro_path, TRAITANT[0], ins=INS)) == 1

    # Professionals cannot act for the patient, nor patients read as professionals.
    assert call(server, f"/dossier/documents/{visible['id']}/show", TRAITANT[0], "POST")[0] == 403
    assert call(server, pro_path, PATIENT, ins=INS)[0] == 403

    log = server.hygie("audit", "--action", "dossier.").stdout.decode()
    assert "dossier.read" in log and "dossier.hide" in log and "dossier.block" in log


def test_no_answer_tells_whether_a_patient_exists(server: ServerProcess) -> None:
    """Issue 17 finding 5: a professional with no tie to a patient (not their médecin
    traitant, the author of none of their documents) gets, byte for byte, the answer an INS
    unknown here gets: the route is no oracle of who is a patient of this operator."""
    unknown = ins_with_key("2790351215999")  # a valid INS that has no mailbox here
    for rest in ("", "/1/cda"):
        known = call(server, f"/dossier/patient/documents{rest}", OTHER[0], ins=INS)
        absent = call(server, f"/dossier/patient/documents{rest}", OTHER[0], ins=unknown)
        assert known == absent == (404, b'{"error": "no dossier you may read for this INS"}')
    # The patient blocks a professional they never dealt with: still the unknown INS's answer.
    assert call(server, f"/dossier/blocks/{OTHER[1]}", PATIENT, "POST")[0] == 200
    assert call(server, "/dossier/patient/documents", OTHER[0], ins=INS) == absent
    assert call(server, f"/dossier/blocks/{OTHER[1]}", PATIENT, "DELETE")[0] == 200
    # Whoever has a tie still reads; the attempts without one are in the audit log.
    assert len(documents(server, "/dossier/patient/documents", DOCTOR, ins=INS)) >= 1
    # MSSanté test case 19: the INS never in a URL; the old form says where it goes.
    status, body = call(server, f"/dossier/patients/{INS}/documents", DOCTOR)
    assert status == 400 and b"Patient-INS header" in body
    assert call(server, "/dossier/patient/documents", DOCTOR)[0] == 400  # no header
    log = server.hygie("audit", "--action", "dossier.denied").stdout.decode()
    assert log.count("dossier.denied") >= 5 and unknown not in log and INS not in log


def ins_with_key(thirteen: str) -> str:
    from directory.ins import ins_key

    return thirteen + ins_key(thirteen)


def test_authentication_is_required(server: ServerProcess) -> None:
    status, _ = call(server, "/dossier/documents", None)
    assert status == 401
    request = urllib.request.Request(f"https://localhost:{server.https_port}/dossier/documents")
    request.add_header("Authorization", "Bearer not-a-token")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, context=server.ssl_context(), timeout=30)  # noqa: S310
    assert caught.value.code == 401


def test_identity_traits_are_checked_against_the_directory(server: ServerProcess) -> None:
    """904 when the CDA's traits differ from the registered identity, 905 when some are
    missing (the 4 traits of the X-MSS-INS rule)."""
    base = cda()
    wrong = replace(base, patient=replace(base.patient, birth_date=date(1979, 3, 13)))
    code, subject = error_code(server, PATIENT, xdm_message(wrong, PATIENT, "Mauvaise date"))
    assert code == 904 and "[904]" in subject
    partial = replace(base, patient=replace(base.patient, sex=None))
    code, _ = error_code(server, PATIENT, xdm_message(partial, PATIENT, "Sans sexe"))
    assert code == 905
    accented = replace(base, patient=replace(base.patient, birth_name="Dupônt"))
    code, _ = error_code(server, PATIENT, xdm_message(accented, PATIENT, "Accents"))
    assert code is None  # traits compare without accents or case
