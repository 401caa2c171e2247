"""Submission asks the directory (issue 5 item 6): a closed mailbox is refused at RCPT with
550 5.1.1; MAIL FROM and From: must be mailboxes the account may send as (its own, or its
structure's ORG mailbox where the practitioner has an activity). A real `hygie serve`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.harness import ServerProcess
from tests.directory.conftest import DUPONT, PS_EDGE
from tests.support.mail import make_message, smtp_session
from tests.support.servers import DATABASES, start_server, stop_server

pytestmark = pytest.mark.e2e
PASSWORD = "correct-horse-directory-5"
DR = "helene.dupont@hygie.test"  # Dr Dupont's PER mailbox, activity at FINESS 690000001
SECRETARIAT = "secretariat.cardio@hygie.test"  # ORG mailbox of that hospital
NURSE = "noel.leveque@hygie.test"  # no activity at the hospital
CLOSED = "ancien.interne@hygie.test"  # account still there, directory entry closed
PLAIN = "bob@hygie.test"  # an account the directory does not list


@pytest.fixture(scope="module", params=DATABASES)
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    users = {a: PASSWORD for a in (DR, SECRETARIAT, NURSE, CLOSED, PLAIN)}
    srv = start_server(request, request.param, users)
    srv.hygie_batch(  # one process for the five commands
        (("directory", "import", "ps-libreacces", str(PS_EDGE)), None),
        (("directory", "mailbox", DR, "--type", "PER", "--practitioner", DUPONT), None),
        (("directory", "mailbox", SECRETARIAT, "--type", "ORG", "--organisation", "1690000001"),
         None),
        (("directory", "mailbox", NURSE, "--type", "PER", "--practitioner", "0691234567"), None),
        (("directory", "mailbox", CLOSED, "--type", "PER", "--inactive"), None),
    )  # fmt: skip
    yield srv
    stop_server(srv)


def rcpt(server: ServerProcess, user: str, recipient: str) -> tuple[int, bytes]:
    with smtp_session(server, user, PASSWORD) as client:
        assert client.mail(user)[0] == 250
        return client.rcpt(recipient)


def test_rcpt_to_a_closed_mailbox_is_refused(server: ServerProcess) -> None:
    code, text = rcpt(server, DR, CLOSED)
    assert (code, text[:5]) == (550, b"5.1.1")
    assert rcpt(server, DR, SECRETARIAT)[0] == 250
    assert rcpt(server, DR, PLAIN)[0] == 250  # not in the directory: the account decides
    assert rcpt(server, DR, "personne@hygie.test")[0] == 550


def test_practitioner_sends_as_the_service_of_their_structure(server: ServerProcess) -> None:
    message = make_message(SECRETARIAT, [PLAIN], "Convocation", "Bonjour,\n")
    with smtp_session(server, DR, PASSWORD) as client:
        assert client.mail(SECRETARIAT)[0] == 250
        assert client.rcpt(PLAIN)[0] == 250
        assert client.data(message)[0] == 250


def test_no_sending_as_a_service_without_an_activity_there(server: ServerProcess) -> None:
    with smtp_session(server, NURSE, PASSWORD) as client:
        code, text = client.mail(SECRETARIAT)
        assert (code, text[:5]) == (553, b"5.7.1")
        assert client.mail(PLAIN)[0] == 553


def test_from_header_must_be_a_mailbox_the_account_may_use(server: ServerProcess) -> None:
    forged = make_message(PLAIN, [SECRETARIAT], "Pas moi", "Bonjour,\n")
    with smtp_session(server, NURSE, PASSWORD) as client:
        assert client.mail(NURSE)[0] == 250
        assert client.rcpt(SECRETARIAT)[0] == 250
        code, text = client.data(forged)
        assert (code, text[:5]) == (550, b"5.7.1")


def test_a_closed_mailbox_cannot_send(server: ServerProcess) -> None:
    with smtp_session(server, CLOSED, PASSWORD) as client:
        assert client.mail(CLOSED)[0] == 553
