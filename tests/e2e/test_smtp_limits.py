"""Connection limits for the open network (issue 6 item 6): messages per connection, commands
per connection, and a total session time, each ending with a 421 the client can act on."""

from __future__ import annotations

import smtplib
import time
from collections.abc import Iterator

import pytest

from bench.harness import ServerProcess
from tests.support.servers import start_server, stop_server

USER, PASSWORD = "limits@hygie.test", "limits-password-1"


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    srv = start_server(request, "sqlite", {USER: PASSWORD}, env={
        "HYGIE_SMTP_MAX_MESSAGES_PER_SESSION": "2",
        "HYGIE_SMTP_MAX_SESSION_SECONDS": "8",
    })  # fmt: skip
    yield srv
    stop_server(srv)


def session(server: ServerProcess) -> smtplib.SMTP:
    smtp = smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30)
    smtp.starttls(context=server.ssl_context())
    smtp.login(USER, PASSWORD)
    return smtp


def test_messages_per_session(server: ServerProcess) -> None:
    smtp = session(server)
    for n in range(2):
        smtp.sendmail(USER, [USER], f"Subject: {n}\r\n\r\nx\r\n".encode())
    code, text = smtp.docmd("MAIL", f"FROM:<{USER}>")
    assert code == 421 and b"too many times" in text
    # A new connection may go on.
    smtp = session(server)
    smtp.sendmail(USER, [USER], b"Subject: again\r\n\r\nx\r\n")
    smtp.quit()


def test_noop_flood_is_cut(server: ServerProcess) -> None:
    smtp = session(server)
    codes = [smtp.docmd("NOOP")[0] for _ in range(101)]
    assert codes[:100] == [250] * 100 and codes[100] == 421


def test_session_time_limit(server: ServerProcess) -> None:
    smtp = session(server)
    time.sleep(8.5)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        code, text = smtp.docmd("NOOP")
        assert code == 421 and b"time limit" in text  # read the 421, then the close
        smtp.docmd("NOOP")
