"""Reading costs public-key work once per message and account (design.md §2 item 8, issue 19),
seen from outside: messages delivered by SMTP (sealed to the account's public key only) are
opened once by the first session that fetches them; a second session of the account, and the
server after a restart, answer FETCH and SEARCH without opening any key again, the same way.
The count is the server's ``hygie_message_key_unseals_total`` on ``/metrics``."""

from __future__ import annotations

import smtplib
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.imap_server.conftest import Connect
from tests.imap_server.dialogue import Script, lit
from tests.imap_server.servers import Account, PreparedServer


@pytest.fixture(scope="module")
def token(server: PreparedServer) -> str:
    return server.hygie("report", "metrics-token").stdout.decode().splitlines()[0].strip()


def metric(server: PreparedServer, token: str, name: str) -> float:
    request = urllib.request.Request(f"https://localhost:{server.https_port}/metrics")
    request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(  # noqa: S310 (https, our own server)
        request, context=server.ssl_context(), timeout=30
    ) as reply:
        body = reply.read().decode()
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == name and not sample.labels:
                return float(sample.value)
    raise AssertionError(f"{name} not in /metrics")


def submit(server: PreparedServer, account: Account, subjects: list[str]) -> None:
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30) as smtp:
        smtp.starttls(context=server.ssl_context())
        smtp.login(account.address, account.password)
        for subject in subjects:
            smtp.sendmail(
                account.address,
                [account.address],
                f"From: <{account.address}>\r\nTo: <{account.address}>\r\n"
                f"Subject: {subject}\r\nDate: Mon, 1 Jan 2024 08:00:00 +0000\r\n\r\n"
                f"Corps de {subject}.\r\n".encode(),
            )


def fetch_all(script: Script, tag: str) -> None:
    script.C(f"{tag}1 SELECT INBOX")
    script.S("* 3 EXISTS", f"{tag}1 OK …")
    script.C(f"{tag}2 FETCH 1:3 (ENVELOPE BODYSTRUCTURE INTERNALDATE)")
    script.S(
        '* 1 FETCH (ENVELOPE ("Mon, 1 Jan 2024 08:00:00 +0000" "Compte rendu" …) '
        'BODYSTRUCTURE ("TEXT" "PLAIN" …) INTERNALDATE "…")',
        '* 2 FETCH (ENVELOPE ("Mon, 1 Jan 2024 08:00:00 +0000" "Ordonnance" …) …)',
        '* 3 FETCH (ENVELOPE ("Mon, 1 Jan 2024 08:00:00 +0000" "Resultats" …) …)',
        f"{tag}2 OK …",
    )
    script.C(f'{tag}3 SEARCH SUBJECT "ordonnance"')
    script.S("* SEARCH 2", f"{tag}3 OK …")
    script.C(f"{tag}4 FETCH 3 (BODY.PEEK[TEXT])")
    text = lit("Corps de Resultats.\r\n")
    script.S(f"* 3 FETCH (BODY[TEXT] {text})", f"{tag}4 OK …")


def test_second_session_and_restart_open_no_key(
    server: PreparedServer, token: str, connect: Connect, account: Account
) -> None:
    submit(server, account, ["Compte rendu", "Ordonnance", "Resultats"])
    before = metric(server, token, "hygie_message_key_unseals_total")
    tc = connect("tc").open(account.address, account.password)
    fetch_all(tc, "a")
    assert metric(server, token, "hygie_message_key_unseals_total") - before == 3
    # Another session of the account, another client: no public-key work at all.
    tc2 = connect("tc2").open(account.address, account.password)
    fetch_all(tc2, "b")
    assert metric(server, token, "hygie_message_key_unseals_total") - before == 3
    assert metric(server, token, "hygie_message_cache_entries") >= 3
    # Flags changed by one session are seen by the other (never cached).
    tc.C("a5 STORE 2 +FLAGS (\\Flagged)")
    tc.S("* 2 FETCH (FLAGS (\\Flagged))", "a5 OK …")
    tc2.C("b5 FETCH 2 (FLAGS ENVELOPE)")
    tc2.S("* 2 FETCH (FLAGS (\\Flagged) ENVELOPE (…))", "b5 OK …")
    # An expunged message leaves the cache.
    entries = metric(server, token, "hygie_message_cache_entries")
    tc.C("a6 STORE 1 +FLAGS.SILENT (\\Deleted)")
    tc.S("a6 OK …")
    tc.C("a7 EXPUNGE")
    tc.S("* 1 EXPUNGE", "a7 OK …")
    assert metric(server, token, "hygie_message_cache_entries") == entries - 1
    tc.close()
    tc2.close()
    # After a restart (an empty cache), the owner seals written at the first read serve.
    server.stop()
    server.start()
    tc3 = connect("tc3").open(account.address, account.password)
    tc3.C("c1 SELECT INBOX")
    tc3.S("* 2 EXISTS", "c1 OK …")
    tc3.C("c2 FETCH 1:2 (ENVELOPE)")
    tc3.S(
        '* 1 FETCH (ENVELOPE ("Mon, 1 Jan 2024 08:00:00 +0000" "Ordonnance" …))',
        '* 2 FETCH (ENVELOPE ("Mon, 1 Jan 2024 08:00:00 +0000" "Resultats" …))',
        "c2 OK …",
    )
    assert metric(server, token, "hygie_message_key_unseals_total") == 0
