"""``hygie-client send`` as a script would run it: exit 0 and the message arrives (with its
attachment, receipt requests and a copy in Sent); every failure is one line on stderr and a
non-zero exit."""

from __future__ import annotations

import email
import os
import subprocess
import sys
import uuid
from datetime import date
from email.policy import default as default_policy
from pathlib import Path

from bench.harness import ServerProcess, free_ports
from tests.client.conftest import CLAIRE, JEAN, PASSWORD, Setup
from tests.support.mail import find_by_subject, inbox_messages


def hygie_client(
    config: Path, *args: str, secret: str | None = PASSWORD, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "hygie-client"
    full_env = {**os.environ, **(env or {})}
    full_env.pop("HYGIE_CLIENT_SECRET", None)
    if secret is not None:
        full_env["HYGIE_CLIENT_SECRET"] = secret
    return subprocess.run(
        [str(script), "--config", str(config), *args],
        capture_output=True, text=True, timeout=120, env=full_env, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_send_with_attachment_and_receipts(
    server: ServerProcess, config_file: Path, tmp_path: Path
) -> None:
    subject = f"CR {uuid.uuid4().hex[:8]}"
    body = tmp_path / "body.txt"
    body.write_text("Bonjour Claire,\nvoici le compte rendu.\n", encoding="utf-8")
    report = tmp_path / "compte-rendu.pdf"
    report.write_bytes(b"%PDF-1.4\n% test\n")
    proc = hygie_client(
        config_file, "send", "--to", CLAIRE, "--subject", subject, "--body-file", str(body),
        "--attach", str(report), "--receipt", "dsn", "--receipt", "mdn",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    [raw] = find_by_subject(inbox_messages(server, CLAIRE, PASSWORD), subject)
    message = email.message_from_bytes(raw, policy=default_policy)
    assert message["Disposition-Notification-To"] == JEAN
    [attachment] = list(message.iter_attachments())  # type: ignore[attr-defined]
    assert attachment.get_filename() == "compte-rendu.pdf"
    assert attachment.get_content() == b"%PDF-1.4\n% test\n"
    assert "voici le compte rendu" in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_send_failures_are_one_line(
    server: ServerProcess, config_file: Path, tmp_path: Path
) -> None:
    body = tmp_path / "body.txt"
    body.write_text("x\n", encoding="utf-8")
    base = ["send", "--subject", "x", "--body-file", str(body)]

    refused = hygie_client(config_file, *base, "--to", "personne@hygie.test")
    assert refused.returncode == 1
    assert "personne@hygie.test" in refused.stderr and "refused" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1

    bad_login = hygie_client(config_file, *base, "--to", CLAIRE, secret="wrong-password")
    assert bad_login.returncode == 1
    assert "login refused" in bad_login.stderr
    assert len(bad_login.stderr.strip().splitlines()) == 1

    no_secret = hygie_client(config_file, *base, "--to", CLAIRE, secret=None)
    assert no_secret.returncode == 2
    assert "password" in no_secret.stderr

    [port] = free_ports(1)
    text = config_file.read_text(encoding="utf-8")
    down = tmp_path / "down.toml"
    down.write_text(text.replace(f"smtp_port = {server.smtp_tls_port}", f"smtp_port = {port}"))
    refused_conn = hygie_client(down, *base, "--to", CLAIRE)
    assert refused_conn.returncode == 1
    assert "connection refused" in refused_conn.stderr
    assert "Traceback" not in refused_conn.stderr

    xdm = hygie_client(config_file, *base, "--to", CLAIRE, "--patient", "1", "--doc-type", "2")
    assert xdm.returncode == 2 and "--attach" in xdm.stderr

    missing = hygie_client(tmp_path / "none.toml", *base, "--to", CLAIRE)
    assert missing.returncode == 2 and "no account" in missing.stderr


def test_account_add_writes_no_secret(tmp_path: Path, server: ServerProcess) -> None:
    config = tmp_path / "c.toml"
    proc = hygie_client(
        config, "account", "add", "jean", "--address", JEAN, "--host", "127.0.0.1",
        "--imap-port", str(server.imap_tls_port), "--smtp-port", str(server.smtp_tls_port),
        "--ca-file", str(server.ca_file),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert PASSWORD not in config.read_text()
    assert config.stat().st_mode & 0o077 == 0
    listed = hygie_client(config, "account", "list")
    assert JEAN in listed.stdout
    config.write_text(config.read_text() + 'password = "x"\n')
    broken = hygie_client(config, "account", "list")
    assert broken.returncode == 2 and "password" in broken.stderr


def test_xdm_hook_builds_the_attachment(tmp_path: Path) -> None:
    """``--patient`` goes through the registered builder and sends its zip as IHE_XDM.zip."""
    from client_tui import compose
    from client_tui.compose import (
        PatientTraits,
        XdmUnavailable,
        build_xdm_attachment,
        register_xdm_builder,
    )

    report = tmp_path / "cr.pdf"
    report.write_bytes(b"%PDF")
    registered = compose._xdm_builder  # client_tui.mssante's, if another test imported it
    seen: list[tuple[list[Path], str, str, object]] = []

    def builder(files: object, ins: str, loinc: str, /, *, traits: object = None,
                author: object = None, replacing: object = None) -> bytes:  # fmt: skip
        seen.append((list(files), ins, loinc, traits))  # type: ignore[call-overload]
        return b"PK zip"

    try:
        register_xdm_builder(None)
        try:
            build_xdm_attachment([report], "1", "2")
        except XdmUnavailable as exc:
            assert "dossier/xdm.py" in str(exc)
        else:
            raise AssertionError("no builder registered, yet a zip came back")
        register_xdm_builder(builder)
        traits = PatientTraits("Dupont", "Marie", date(1979, 3, 12), "F")
        assert build_xdm_attachment([report], "277076322082910", "11488-4",
                                    traits=traits) == b"PK zip"  # fmt: skip
    finally:
        register_xdm_builder(registered)
    assert seen == [([report], "277076322082910", "11488-4", traits)]


def test_send_by_certificate_and_by_token(client_setup: Setup, tmp_path: Path) -> None:
    """A cron job with a practitioner certificate (passphrase on stdin, SASL EXTERNAL) and one
    with a token command (OAUTHBEARER)."""
    from bench.harness import hygie_command
    from client_tui.config import Config
    from tests.client.conftest import PASSPHRASE, account_for

    server = client_setup.server
    config = Config(tmp_path / "c.toml", default="cert")
    config.accounts["cert"] = account_for(server, JEAN, name="cert", auth="certificate",
                                          pkcs12=str(client_setup.pkcs12))  # fmt: skip
    token = " ".join([*hygie_command(), "--data", str(server.data_dir), "token", "issue", JEAN])
    config.accounts["token"] = account_for(server, JEAN, name="token", auth="token",
                                           token_command=token)  # fmt: skip
    config.save()
    script = Path(sys.executable).parent / "hygie-client"
    for name in ("cert", "token"):
        subject = f"par {name} {uuid.uuid4().hex[:6]}"
        proc = subprocess.run(
            [str(script), "--config", str(config.path), "--account", name, "send",
             "--secret-stdin", "--to", CLAIRE, "--subject", subject],
            input=PASSPHRASE + "\n", capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert find_by_subject(inbox_messages(server, CLAIRE, PASSWORD), subject)
    wrong = subprocess.run(
        [str(script), "--config", str(config.path), "--account", "cert", "send",
         "--secret-stdin", "--to", CLAIRE, "--subject", "x"],
        input="wrong\n", capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert wrong.returncode == 1 and "passphrase" in wrong.stderr


def test_send_a_document_to_a_patient_for_real(
    tmp_path: Path, server: ServerProcess, config_file: Path
) -> None:
    """`send --patient INS --doc-type LOINC --attach cda.xml --attach report.pdf`: the client
    builds the IHE_XDM.zip and the MSSanté headers; the server files it in the dossier."""
    import imaplib
    from datetime import UTC, date, datetime

    from dossier.cda import (
        LOINC_OID,
        Author,
        CdaDocument,
        Code,
        Custodian,
        PatientIdentity,
        Section,
        build_cda,
    )  # fmt: skip
    from dossier.ins import Ins

    ins = "279035121518989"
    patient = f"{ins}@patient.hygie.test"
    server.add_user(patient, PASSWORD)
    document = CdaDocument(
        code=Code("11488-4", LOINC_OID, "Compte rendu de consultation"), title="Consultation",
        patient=PatientIdentity(Ins(ins), "DUPONT", ("Marie",), date(1979, 3, 12), "F"),
        author=Author("810001234567", "DUPONT", "Jean", "Dr"), custodian=Custodian("Cabinet"),
        effective_time=datetime(2026, 11, 20, 9, 0, tzinfo=UTC),
    )  # fmt: skip
    cda = tmp_path / "cr.xml"
    cda.write_bytes(build_cda(document, sections=[Section("Conclusion", ("Tout va bien.",))]))
    pdf = tmp_path / "cr.pdf"
    pdf.write_bytes(b"%PDF-1.4\n%%EOF\n")
    body = tmp_path / "body.txt"
    body.write_text("Compte rendu ci-joint.\n", encoding="utf-8")
    proc = hygie_client(config_file, "send", "--to", patient, "--subject", "", "--body-file",
                        str(body), "--patient", ins, "--doc-type", "11488-4",
                        "--attach", str(cda), "--attach", str(pdf))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    client = imaplib.IMAP4_SSL("127.0.0.1", server.imap_tls_port, ssl_context=server.ssl_context())
    client.login(patient, PASSWORD)
    typ, data = client.select("Dossier", readonly=True)
    assert typ == "OK" and int(data[0] or 0) == 1, "the document was not filed"
    client.logout()

    wrong = hygie_client(config_file, "send", "--to", patient, "--subject", "x", "--body-file",
                         str(body), "--patient", ins, "--doc-type", "18748-4",
                         "--attach", str(cda))  # fmt: skip
    assert wrong.returncode != 0 and "not a 18748-4" in wrong.stderr
