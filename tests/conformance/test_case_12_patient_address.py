"""MSSanté reference (b) 12, patient address validation: "the 15-character key check passes for
279035121518989; Corsica 2A/2B keys are computed correctly; an address is refused unless the
identity status is QUAL; test OIDs are refused in production".

``<INS>@patient.<domain>`` is opened by one rule (``directory.patients.mailbox_refusal``)
whichever command opens it, against a running ``hygie serve`` (no test mode):

- ``hygie user add`` refuses a wrong key, an identity not registered and one registered with
  any status but QUAL, each with one line on stderr and exit status 1, and then no mailbox
  exists (the server answers ``550 5.1.1`` at RCPT); for a QUAL identity, Corsican ones
  included, it opens the mailbox, which receives an IHE_XDM.zip by SMTP that the patient reads
  over IMAP and HTTPS and their médecin traitant over HTTPS;
- ``hygie patient add`` refuses a mailbox for a status other than QUAL, and registers nothing;
- ``hygie patient invite`` invites no one whose registered identity is not QUAL, whatever the
  file says, refuses a test OID, and a space whose identity stopped being QUAL before its
  opening day does not open.
"""

from __future__ import annotations

import email
import email.policy
import imaplib
import json
import smtplib
import sqlite3
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.harness import ServerProcess, hygie_command
from tests.e2e.test_dossier_filing import DOCTOR, PASSWORD, cda, xdm_message
from tests.support.servers import bearer_token, settle, start_server, stop_server

pytestmark = pytest.mark.timeout(600)

TRAITANT = ("dr.traitant@hygie.test", "810005555555")
QUALIFIED = "279035121518989"  # the reference's example, key 89
IDENTITY = ("--birth-name", "DUPONT", "--given", "Marie", "--birth-date", "1979-03-12",
            "--sex", "F")  # fmt: skip
INVITATION_HEADER = "ins,oid,birth_name,given_names,birth_date,sex,birthplace,status,email\n"


def corsican(first13: str) -> str:
    """``first13`` with its key, département 2A read as 19 and 2B as 18 (INSEE rule)."""
    digits = first13.replace("2A", "19").replace("2B", "18")
    return f"{first13}{97 - int(digits) % 97:02d}"


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    # The spaces' jobs run when the test says (hygie patient run-jobs), not on their own.
    env = {"HYGIE_SPACES_JOB_SECONDS": "3600"}
    srv = start_server(request, "sqlite", {DOCTOR: PASSWORD, TRAITANT[0]: PASSWORD}, env)
    srv.hygie("user", "bind", TRAITANT[0], "--idnat", TRAITANT[1])
    yield srv
    stop_server(srv)


def hygie(server: ServerProcess, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """``hygie --data DIR ARGS`` as the operator runs it, whatever its exit status."""
    return subprocess.run(
        [*hygie_command(), "--data", str(server.data_dir), *args], input=stdin, text=True,
        capture_output=True, env=server.env(), timeout=120, check=False,
    )  # fmt: skip


def user_add(server: ServerProcess, address: str) -> subprocess.CompletedProcess[str]:
    return hygie(server, "user", "add", address, "--password-stdin", stdin=PASSWORD + "\n")


def refused(done: subprocess.CompletedProcess[str], reason: str) -> None:
    """Exit status 1, one line on stderr naming ``reason``, nothing on stdout."""
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("hygie: error: ") and reason in lines[0], lines


def rcpt(server: ServerProcess, address: str) -> int:
    """The reply code to ``RCPT TO:<address>`` from the doctor: 250 when the mailbox exists."""
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=60) as smtp:
        smtp.starttls(context=server.ssl_context())
        smtp.login(DOCTOR, PASSWORD)
        smtp.mail(DOCTOR)
        return smtp.rcpt(address)[0]


def address(matricule: str) -> str:
    return f"{matricule.lower()}@patient.hygie.test"


def test_user_add_refuses_a_wrong_key(server: ServerProcess) -> None:
    wrong = QUALIFIED[:-2] + "88"
    refused(user_add(server, address(wrong)), "key")
    refused(user_add(server, address(corsican("185022A123456")[:-2] + "00")), "key")
    assert rcpt(server, address(wrong)) == 550


def test_user_add_refuses_an_identity_not_registered(server: ServerProcess) -> None:
    matricule = corsican("2850275123456")
    refused(user_add(server, address(matricule)), "no patient is registered with this INS")
    assert rcpt(server, address(matricule)) == 550


def register(server: ServerProcess, matricule: str, *options: str) -> None:
    """``hygie patient add`` of a Paul MARTIN, without a mailbox unless ``options`` ask."""
    done = hygie(server, "patient", "add", matricule, "--birth-name", "MARTIN", "--given",
                 "Paul", "--birth-date", "1960-01-05", "--sex", "M", *options)  # fmt: skip
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("status", "first13"),
    [("PROV", "1600175123456"), ("RECUP", "1600175123457"), ("VALI", "1600175123458")],
)
def test_user_add_refuses_an_identity_that_is_not_qualified(
    server: ServerProcess, status: str, first13: str
) -> None:
    matricule = corsican(first13)
    register(server, matricule, "--status", status, "--no-mailbox")
    refused(user_add(server, address(matricule)), f"status QUAL); this one is {status}")
    assert rcpt(server, address(matricule)) == 550


def test_patient_add_refuses_a_mailbox_to_an_identity_not_qualified(server: ServerProcess) -> None:
    matricule = corsican("1600175123459")
    refused(
        hygie(server, "patient", "add", matricule, "--birth-name", "MARTIN", "--given", "Paul",
              "--birth-date", "1960-01-05", "--sex", "M", "--status", "VALI"),
        "a patient mailbox needs a qualified identity",
    )  # fmt: skip
    refused(hygie(server, "patient", "status", matricule), "no patient with this INS")
    assert rcpt(server, address(matricule)) == 550


def test_a_qualified_identity_gets_its_mailbox_and_reads_its_documents(
    server: ServerProcess,
) -> None:
    done = hygie(server, "patient", "add", QUALIFIED, *IDENTITY, "--medecin-traitant",
                 TRAITANT[1], "--no-mailbox")  # fmt: skip
    assert done.returncode == 0, done.stderr
    created = user_add(server, address(QUALIFIED))
    assert (created.returncode, created.stdout) == (0, f"created {address(QUALIFIED)}\n")

    # The mailbox works: an XDM by SMTP, read by the patient over IMAP and HTTPS, and by the
    # médecin traitant over HTTPS.
    patient = address(QUALIFIED)
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=60) as smtp:
        smtp.starttls(context=server.ssl_context())
        smtp.login(DOCTOR, PASSWORD)
        smtp.sendmail(DOCTOR, [patient], xdm_message(cda(), patient, "Compte rendu",
                                                     receipt=False))  # fmt: skip
    settle(server)  # the filing runs once the message is committed
    with imaplib.IMAP4_SSL("localhost", server.imap_tls_port,
                           ssl_context=server.ssl_context()) as client:  # fmt: skip
        client.login(patient, PASSWORD)
        client.select("INBOX", readonly=True)
        _, fetched = client.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        subjects = [
            str(email.message_from_bytes(item[1], policy=email.policy.default)["Subject"])
            for item in fetched
            if isinstance(item, tuple)
        ]
        assert subjects == ["Compte rendu"]
    for who, path in ((patient, "/dossier/documents"),
                      (TRAITANT[0], "/dossier/patient/documents")):  # fmt: skip
        request = urllib.request.Request(f"https://localhost:{server.https_port}{path}")
        request.add_header("Authorization", f"Bearer {bearer_token(server, who)}")
        if who != patient:
            request.add_header("Patient-INS", QUALIFIED)
        with urllib.request.urlopen(  # noqa: S310 (https, our own server)
            request, context=server.ssl_context(), timeout=30
        ) as reply:
            titles = [d["title"] for d in json.loads(reply.read())["documents"]]
        assert titles == ["Consultation de cardiologie"], who


def test_corsican_identities_are_keyed_with_19_and_18(server: ServerProcess) -> None:
    for first13 in ("185022A123456", "285022B123456"):
        matricule = corsican(first13)
        register(server, matricule, "--no-mailbox")
        assert user_add(server, address(matricule)).returncode == 0
        assert rcpt(server, address(matricule)) == 250


def test_invitations_follow_the_registered_identity(server: ServerProcess, tmp_path: Path) -> None:
    provisional = corsican("2900175123456")
    register(server, provisional, "--status", "PROV", "--no-mailbox")
    stale = corsican("2900275123456")  # QUAL when invited, no longer on its opening day
    invitation = tmp_path / "invitation.csv"
    invitation.write_text(
        INVITATION_HEADER
        # The file says QUAL; the directory's PROV decides: not invited.
        + f"{provisional},1.2.250.1.213.1.4.8,LEROY,Anne,1990-01-05,F,,QUAL,a@example.org\n"
        + f"{stale},1.2.250.1.213.1.4.8,LEROY,Julie,1990-02-05,F,,QUAL,j@example.org\n",
        "utf-8",
    )
    done = hygie(server, "patient", "invite", str(invitation), "--period-days", "0")
    assert done.returncode == 0, done.stderr
    assert "1 invited" in done.stdout and "1 not qualified (no space)" in done.stdout
    # The identity management downgrades the second identity before the opening.
    with sqlite3.connect(server.data_dir / "hygie.db") as db:
        db.execute("UPDATE dir_patients SET status = 'PROV' WHERE ins = ?", (stale,))
    assert hygie(server, "patient", "run-jobs").returncode == 0
    for matricule in (provisional, stale):
        assert rcpt(server, address(matricule)) == 550
    assert "space: pending" in hygie(server, "patient", "status", stale).stdout

    test_oid = tmp_path / "test-oid.csv"
    test_oid.write_text(INVITATION_HEADER + f"{corsican('2900375123456')},"
                        "1.2.250.1.213.1.4.10,LEROY,Eve,1990-03-05,F,,QUAL,e@example.org\n",
                        "utf-8")  # fmt: skip
    refused(hygie(server, "patient", "invite", str(test_oid)), "test INS OID")
