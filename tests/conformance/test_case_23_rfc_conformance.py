"""MSSanté reference (b) 23, RFC conformance: "Message-ID, In-Reply-To and References well
formed; UTF-8 text parts; multipart/alternative when HTML is sent".

Against a running ``hygie serve``: messages ``hygie-client send`` writes, read back from the
recipient's mailbox over IMAPS (RFC 5322 §3.6.4, RFC 2046 §5.1.4, RFC 2045).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from bench.harness import ServerProcess
from client_tui.compose import message_id, references
from tests.conformance.client_support import client_config, fetch_all, hygie_client
from tests.support.servers import settle, start_server, stop_server

pytestmark = pytest.mark.timeout(600)

DOCTOR = "paul.martin@hygie.test"
COLLEAGUE = "claire.martin@hygie.test"
PASSWORD = "case-23-password-1"
#: RFC 5322 §3.6.4 msg-id with a dot-atom on both sides (what a sender should generate).
ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
MSG_ID = re.compile(rf"<{ATOM}(?:\.{ATOM})*@{ATOM}(?:\.{ATOM})*>")


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    srv = start_server(request, "sqlite", dict.fromkeys([DOCTOR, COLLEAGUE], PASSWORD))
    yield srv
    stop_server(srv)


def send(server: ServerProcess, tmp_path: Path, subject: str, text: str, *extra: str) -> None:
    config = client_config(tmp_path / "client.toml", server, DOCTOR)
    body = tmp_path / "body.txt"
    body.write_text(text, encoding="utf-8")
    proc = hygie_client(config, "send", "--to", COLLEAGUE, "--subject", subject, "--body-file",
                        str(body), *extra, secret=PASSWORD)  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def received(server: ServerProcess, subject: str) -> EmailMessage:
    settle(server)
    [message] = [m for m in fetch_all(server, COLLEAGUE, PASSWORD) if m["Subject"] == subject]
    return message


def test_utf8_text_and_a_well_formed_message_id(server: ServerProcess, tmp_path: Path) -> None:
    text = "Température : 37,5 °C — à revoir dans 8 jours.\n"
    send(server, tmp_path, "Résultat", text)
    message = received(server, "Résultat")
    assert MSG_ID.fullmatch(str(message["Message-ID"]))
    assert str(message["Message-ID"]).endswith("@hygie.test>")
    assert not message.is_multipart()
    assert message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"
    assert message.get_content().replace("\r\n", "\n") == text


def test_html_is_sent_as_multipart_alternative(server: ServerProcess, tmp_path: Path) -> None:
    html = tmp_path / "body.html"
    html.write_text("<p>Résultat <b>normal</b>.</p>\n", encoding="utf-8")
    send(server, tmp_path, "HTML", "Résultat normal.\n", "--html-file", str(html))
    message = received(server, "HTML")
    assert message.get_content_type() == "multipart/alternative"
    plain, rich = message.iter_parts()
    # RFC 2046 §5.1.4: the plain text first, the HTML last; both UTF-8.
    assert (plain.get_content_type(), rich.get_content_type()) == ("text/plain", "text/html")
    assert plain.get_content_charset() == rich.get_content_charset() == "utf-8"
    assert plain.get_content().replace("\r\n", "\n") == "Résultat normal.\n"
    assert rich.get_content().replace("\r\n", "\n") == "<p>Résultat <b>normal</b>.</p>\n"


def test_in_reply_to_and_references_follow_the_thread(server: ServerProcess,
                                                      tmp_path: Path) -> None:  # fmt: skip
    """Each new version answers the one before it (--replaces names a message of Sent):
    In-Reply-To is the parent, References the whole chain, oldest first."""
    send(server, tmp_path, "Fil 1", "un\n")
    first = str(received(server, "Fil 1")["Message-ID"])
    send(server, tmp_path, "Fil 2", "deux\n", "--replaces", first)
    second = received(server, "Fil 2")
    assert second["In-Reply-To"] == first and second["References"] == first
    send(server, tmp_path, "Fil 3", "trois\n", "--replaces", str(second["Message-ID"]))
    third = received(server, "Fil 3")
    assert third["In-Reply-To"] == second["Message-ID"]
    assert str(third["References"]).split() == [first, str(second["Message-ID"])]
    for value in (third["Message-ID"], third["In-Reply-To"], *str(third["References"]).split()):
        assert MSG_ID.fullmatch(str(value)), value


def test_identifiers_stay_well_formed_from_odd_input() -> None:
    # An internationalised domain goes to its A-label; a mangled References keeps only the
    # msg-id tokens, each once.
    assert message_id("hôpital.fr").endswith("@xn--hpital-ixa.fr>")
    assert MSG_ID.fullmatch(message_id("hôpital.fr"))
    assert references('<a@x.fr> "junk" <a@x.fr> <no-at> <b@y.fr>', "<c@z.fr>") == (
        "<a@x.fr> <b@y.fr> <c@z.fr>"
    )
