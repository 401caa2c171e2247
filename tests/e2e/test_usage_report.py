"""Usage indicators (issue 11 item 4) from a real ``hygie serve``: a known set of messages
(two structures, two programs, a patient, a dossier filing, a processed MDN and a 902 error)
goes through submission; ``hygie report usage`` shows exactly those figures (as the change
since before they were sent: the server is the session's shared one) in table, CSV and JSON,
by structure, software and mailbox type; ``/metrics`` on the HTTPS port, with the operator's
bearer token, has the same counters and the servers' own, and refuses anyone else."""

from __future__ import annotations

import csv
import email.policy
import imaplib
import io
import json
import smtplib
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, date, datetime
from email.message import EmailMessage

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from bench.harness import ServerProcess
from dossier.cda import (
    LOINC_OID,
    Author,
    CdaDocument,
    Code,
    Custodian,
    PatientIdentity,
    build_cda,
    new_document_id,
)
from dossier.ins import NIR_OID, Ins
from dossier.subject import mss_document_headers
from dossier.xdm import OutgoingDocument, build_xdm, parse_xdm
from mailformats.mdn import parse_mdn
from server.cli.main import main as hygie_main
from storage.usage import month_of

INS = "285067512345639"  # this module's own patient
OTHER_INS = "180127512345642"
DMP = "dmp@hygie.test"
PATIENT = f"{INS}@patient.hygie.test"
DOCTOR = "usage.medecin@hygie.test"  # PER at FINESS 690099901, program A
SECRETARIAT = "usage.secretariat@hygie.test"  # ORG of SIRET 12345678900017, program B
NOBODY = "usage.sans.annuaire@hygie.test"  # not in the directory, no X-MSS-NIL
PASSWORD = "usage-report-password-1"
FINESS = "FINESS:690099901"
SIRET = "SIRET:12345678900017"
SOFT_A, SOFT_B = "USAGE-TEST-LOGICIEL-A 2.1", "USAGE-TEST-LOGICIEL-B"
PDF = b"%PDF-1.4\n% Hygie usage test\n%%EOF\n"
COLUMNS = ["messages_sent", "messages_received", "documents_filed", "patients_reached",
           "mdn_processed", "mdn_errors", *(f"mdn_error_{c}" for c in range(900, 907))]  # fmt: skip


def hygie(server: ServerProcess, *args: str, input: str | None = None) -> str:
    """The ``hygie`` command, in this process (a subprocess costs seconds of start-up)."""
    result = CliRunner().invoke(
        hygie_main, ["--data", str(server.data_dir), *args], input=input, env=server.env()
    )
    assert result.exit_code == 0, result.output
    return result.output


def report(server: ServerProcess, month: str, by: str | None = None) -> dict[str, dict[str, int]]:
    args = ["report", "usage", "--month", month, "--format", "json"]
    document = json.loads(hygie(server, *args, *(["--by", by] if by else [])))
    key = by or "all"
    assert document["month"] == month and document["by"] == key
    return {row[key]: {c: row[c] for c in COLUMNS} for row in document["rows"]}


def delta(before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]
          ) -> dict[str, dict[str, int]]:  # fmt: skip
    """What changed, row by row (rows that did not change left out)."""
    out = {}
    for group, row in after.items():
        old = before.get(group, dict.fromkeys(COLUMNS, 0))
        diff = {c: row[c] - old[c] for c in COLUMNS if row[c] != old[c]}
        if diff:
            out[group] = diff
    return out


def xdm_message(sender: str, ins: str, to: str) -> bytes:
    doc = CdaDocument(
        code=Code("11488-4", LOINC_OID, "Compte rendu de consultation"), title="Consultation",
        patient=PatientIdentity(Ins(ins, NIR_OID), "DURAND", ("Anne",), date(1985, 6, 7), "F"),
        author=Author("810001234567", "MARTIN", "Paul", "Dr", "Hôpital Hygie"),
        custodian=Custodian("Hôpital Hygie"),
        effective_time=datetime(2026, 11, 20, 9, 30, tzinfo=UTC),
        document_id=new_document_id(),
    )  # fmt: skip
    archive = build_xdm([OutgoingDocument(build_cda(doc, pdf=PDF), pdf=PDF)],
                        source_id="1.2.250.1.999.1")  # fmt: skip
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = "Compte rendu"
    message["X-MSS-NIL"] = SOFT_A
    for name, value in mss_document_headers(parse_xdm(archive), ins_qualified=True).items():
        message[name] = value
    message["Disposition-Notification-To"] = sender
    message.set_content("Compte rendu ci-joint.")
    message.add_attachment(archive, maintype="application", subtype="zip", filename="IHE_XDM.zip")
    return message.as_bytes(policy=email.policy.SMTP)


def plain(sender: str, to: list[str], software: str | None) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Subject"] = "Bonjour"
    if software:
        message["X-MSS-NIL"] = software
    message.set_content("Un message ordinaire.")
    return message.as_bytes(policy=email.policy.SMTP)


def send(server: ServerProcess, sender: str, to: list[str], raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=60) as smtp:
        smtp.starttls(context=server.ssl_context())
        smtp.login(sender, PASSWORD)
        smtp.sendmail(sender, to, raw)


def inbox(server: ServerProcess, user: str) -> list[bytes]:
    client = imaplib.IMAP4_SSL("localhost", server.imap_tls_port, ssl_context=server.ssl_context())
    client.login(user, PASSWORD)
    _, data = client.select("INBOX", readonly=True)
    found: list[bytes] = []
    if int(data[0] or 0):
        _, fetched = client.fetch("1:*", "(BODY.PEEK[])")
        found = [i[1] for i in fetched if isinstance(i, tuple)]
    client.logout()
    return found


def scrape(server: ServerProcess, token: str | None) -> tuple[int, bytes]:
    request = urllib.request.Request(f"https://localhost:{server.https_port}/metrics")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(  # noqa: S310 (https, our own server)
            request, context=server.ssl_context(), timeout=30
        ) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture(scope="module")
def traffic(server: ServerProcess) -> Iterator[dict[str, dict[str, dict[str, int]]]]:
    """Send the known set once per server; yield the report's changes by each grouping."""
    # The patient's identity first: only a registered QUAL identity gets a mailbox.
    hygie(server, "patient", "add", INS, "--birth-name", "DURAND", "--given", "Anne",
          "--birth-date", "1985-06-07", "--sex", "F", "--no-mailbox")  # fmt: skip
    for address in (DOCTOR, SECRETARIAT, NOBODY, PATIENT):
        hygie(server, "user", "add", address, "--password-stdin", input=PASSWORD)
    hygie(server, "directory", "mailbox", DOCTOR, "--type", "PER",
          "--organisation", "1690099901")  # fmt: skip
    hygie(server, "directory", "mailbox", SECRETARIAT, "--type", "ORG",
          "--organisation", "312345678900017", "--service", "Accueil")  # fmt: skip
    month = month_of(datetime.now(UTC))
    groupings = (None, "structure", "software", "mailbox-type")
    before = {str(by): report(server, month, by) for by in groupings}

    send(server, DOCTOR, [PATIENT], xdm_message(DOCTOR, INS, PATIENT))  # filed, processed
    # 902: a patient unknown here, through dmp@, which keeps no copy (a patient's mailbox
    # refuses another patient's document at DATA, MSSanté test case 13).
    send(server, DOCTOR, [DMP], xdm_message(DOCTOR, OTHER_INS, DMP))
    send(server, SECRETARIAT, [DOCTOR, NOBODY], plain(SECRETARIAT, [DOCTOR, NOBODY], SOFT_B))
    send(server, NOBODY, [DOCTOR], plain(NOBODY, [DOCTOR], None))
    deadline = time.monotonic() + 20
    while True:  # the two MDNs come back to the doctor, then the events are committed
        notices = [m for m in inbox(server, DOCTOR) if b"disposition-notification" in m]
        changes = {str(by): delta(before[str(by)], report(server, month, by)) for by in groupings}
        total = changes["None"].get("", {})
        if len(notices) == 2 and total.get("mdn_errors") == 1 and total.get("mdn_processed"):
            break
        assert time.monotonic() < deadline, f"usage not recorded: {changes}"
        time.sleep(0.2)
    codes = sorted(str(parse_mdn(n).error_code) for n in notices)
    assert codes == ["902", "None"]
    yield {"month": {month: {}}, **changes}


def test_report_totals(traffic: dict[str, dict[str, dict[str, int]]]) -> None:
    assert traffic["None"] == {"": {
        "messages_sent": 4, "messages_received": 4, "documents_filed": 1,
        "patients_reached": 1, "mdn_processed": 1, "mdn_errors": 1, "mdn_error_902": 1,
    }}  # fmt: skip


def test_report_by_structure(traffic: dict[str, dict[str, dict[str, int]]]) -> None:
    by = traffic["structure"]
    assert by[FINESS] == {"messages_sent": 2, "messages_received": 2, "documents_filed": 1,
                          "patients_reached": 1, "mdn_processed": 1, "mdn_errors": 1,
                          "mdn_error_902": 1}  # fmt: skip
    assert by[SIRET] == {"messages_sent": 1}
    # The patient and the mailbox outside the directory belong to no structure.
    assert by[""] == {"messages_sent": 1, "messages_received": 2}


def test_report_by_software(traffic: dict[str, dict[str, dict[str, int]]]) -> None:
    by = traffic["software"]
    assert by[SOFT_A] == {"messages_sent": 2, "messages_received": 1, "documents_filed": 1,
                          "patients_reached": 1, "mdn_processed": 1, "mdn_errors": 1,
                          "mdn_error_902": 1}  # fmt: skip
    assert by[SOFT_B] == {"messages_sent": 1, "messages_received": 2}
    assert by[""] == {"messages_sent": 1, "messages_received": 1}


def test_report_by_mailbox_type(traffic: dict[str, dict[str, dict[str, int]]]) -> None:
    by = traffic["mailbox-type"]
    assert by["PER"] == {"messages_sent": 2, "messages_received": 2, "documents_filed": 1,
                         "patients_reached": 1, "mdn_processed": 1, "mdn_errors": 1,
                         "mdn_error_902": 1}  # fmt: skip
    assert by["ORG"] == {"messages_sent": 1}
    assert by["PAT"] == {"messages_received": 1}
    assert by[""] == {"messages_sent": 1, "messages_received": 1}


def test_report_table_and_csv(
    server: ServerProcess, traffic: dict[str, dict[str, dict[str, int]]]
) -> None:
    (month,) = traffic["month"]
    lines = hygie(server, "report", "usage", "--month", month, "--by", "structure").splitlines()
    assert lines[0] == f"Usage {month}"
    assert lines[1].split()[:7] == ["structure", "sent", "received", "filed", "patients",
                                    "MDN", "ok"]  # fmt: skip
    finess_row = next(line for line in lines if line.startswith(FINESS)).split()
    assert finess_row[0] == FINESS and len(finess_row) >= 7
    # CSV (RFC 4180): a header, one row per structure, the same figures as the JSON.
    text = hygie(server, "report", "usage", "--month", month, "--by", "structure",
                 "--format", "csv")  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == ["structure", *COLUMNS]
    siret = next(r for r in rows if r["structure"] == SIRET)
    assert siret["messages_sent"] == "1" and siret["messages_received"] == "0"


def test_report_refuses_a_bad_month(server: ServerProcess) -> None:
    result = CliRunner().invoke(
        hygie_main, ["--data", str(server.data_dir), "report", "usage", "--month", "2026-13"],
        env=server.env(),
    )  # fmt: skip
    assert result.exit_code != 0
    assert "--month must be YYYY-MM" in result.output


def test_metrics(server: ServerProcess, traffic: dict[str, dict[str, dict[str, int]]]) -> None:
    token = hygie(server, "report", "metrics-token").splitlines()[0].strip()
    # Unauthenticated, or with another token (a user's JWT included): refused.
    status, _ = scrape(server, None)
    assert status == 401
    assert scrape(server, token[:-2] + "xx")[0] == 401
    user_jwt = hygie(server, "token", "issue", DOCTOR).strip()
    assert scrape(server, user_jwt)[0] == 401
    status, body = scrape(server, token)
    assert status == 200
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value

    def value(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    doctor = {"structure": FINESS, "software": SOFT_A, "mailbox_type": "PER"}
    assert value("hygie_messages_sent_total", **doctor) == 2
    assert value("hygie_documents_filed_total", **doctor) == 1
    assert value("hygie_patient_deliveries_total", **doctor) == 2  # 1 message + 1 filing
    assert value("hygie_mdn_sent_total", **doctor, outcome="processed", code="0") == 1
    assert value("hygie_mdn_sent_total", **doctor, outcome="error", code="902") == 1
    secretariat = {"structure": SIRET, "software": SOFT_B, "mailbox_type": "ORG"}
    assert value("hygie_messages_sent_total", **secretariat) == 1
    assert value("hygie_messages_received_total", structure=FINESS, software=SOFT_B,
                 mailbox_type="PER") == 1  # fmt: skip
    # The servers' own.
    assert value("hygie_connections_total", service="submission") >= 4
    assert value("hygie_connections_total", service="imap") >= 1
    assert value("hygie_commands_total", service="submission", command="DATA") >= 4
    assert value("hygie_commands_total", service="imap", command="LOGIN") >= 1
    assert value("hygie_delivery_seconds_count") >= 5
    assert ("hygie_outbound_queue_depth", ()) in samples
    assert ("hygie_reminders_due", ()) in samples


def test_counted_commands_still_have_their_help(server: ServerProcess) -> None:
    """The command counters wrap aiosmtpd's verbs; HELP (RFC 5321 §4.1.1.8) still lists and
    describes them."""
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30) as smtp:
        smtp.starttls(context=server.ssl_context())
        smtp.login(NOBODY, PASSWORD)
        code, text = smtp.docmd("HELP")
        assert code == 250 and b"DATA" in text and b"STARTTLS" in text
        assert smtp.docmd("HELP", "DATA") == (250, b"Syntax: DATA")
