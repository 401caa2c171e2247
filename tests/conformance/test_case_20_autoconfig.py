"""MSSanté reference (b) 20, autoconfiguration: "DNS SRV and autoconfig XML lead a generic
client to 587/143 + STARTTLS with OAuth2".

Against a running ``hygie serve``, a generic client's steps: ``hygie dns records`` prints the
RFC 6186 SRV records (and MX, autoconfig host, DKIM TXT) to publish; the Thunderbird
autoconfig document over HTTPS names the same host and ports, STARTTLS and OAuth2; following
only what they say, the client finds STARTTLS on both ports, then XOAUTH2 after it, and signs
in with a token of the operator's issuer.

C: GET /.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=claire.martin@hygie.test
S: 200 application/xml  <clientConfig> … imap 2143 STARTTLS OAuth2 … smtp 2587 STARTTLS OAuth2
"""

from __future__ import annotations

import base64
import http.client
import imaplib
import smtplib
from collections.abc import Iterator

import defusedxml.ElementTree as SafeET
import pytest

from bench.harness import ServerError, ServerProcess
from tests.support.servers import start_server, stop_server

pytestmark = pytest.mark.timeout(600)

CLAIRE = "claire.martin@hygie.test"
PASSWORD = "case-20-password-1"


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    srv = start_server(request, "sqlite", {CLAIRE: PASSWORD})
    srv.hygie("dkim", "keygen", "hygie.test")
    yield srv
    stop_server(srv)


def get(server: ServerProcess, target: str, host: str = "hygie.test") -> tuple[int, bytes]:
    conn = http.client.HTTPSConnection("127.0.0.1", server.https_port,
                                       context=server.ssl_context(), timeout=30)  # fmt: skip
    try:
        conn.request("GET", target, headers={"Host": host})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def srv_records(server: ServerProcess) -> dict[str, tuple[int, str]]:
    """``hygie dns records``'s SRV lines: service → (port, target)."""
    out = server.hygie("dns", "records", "hygie.test").stdout.decode()
    found = {}
    for line in out.splitlines():
        name, _, kind, *data = line.split()
        if kind == "SRV":
            found[name.split(".", 1)[0] + "." + name.split(".")[1]] = (int(data[2]), data[3])
    return found


def test_dns_records_name_submission_and_imap(server: ServerProcess) -> None:
    records = srv_records(server)
    assert records["_submission._tcp"] == (server.smtp_port, "mail.hygie.test.")
    assert records["_imap._tcp"] == (server.imap_port, "mail.hygie.test.")
    assert records["_pop3._tcp"] == (0, ".")  # no POP3 (RFC 6186 §4)
    out = server.hygie("dns", "records", "hygie.test").stdout.decode()
    assert "autoconfig.hygie.test. IN CNAME mail.hygie.test." in out
    [dkim] = [line for line in out.splitlines() if "._domainkey.hygie.test." in line]
    assert " IN TXT " in dkim and "v=DKIM1" in dkim
    with pytest.raises(ServerError, match="not a domain of this server"):
        server.hygie("dns", "records", "example.org")


def servers(document: bytes) -> dict[str, dict[str, object]]:
    root = SafeET.fromstring(document)
    assert root.tag == "clientConfig"
    provider = root.find("emailProvider")
    assert provider is not None and provider.get("id") == "hygie.test"
    found: dict[str, dict[str, object]] = {}
    for element in ("incomingServer", "outgoingServer"):
        node = provider.find(element)
        assert node is not None
        found[str(node.get("type"))] = {
            "hostname": node.findtext("hostname"), "port": int(node.findtext("port") or 0),
            "socketType": node.findtext("socketType"), "username": node.findtext("username"),
            "authentication": [a.text for a in node.findall("authentication")],
        }  # fmt: skip
    return found


@pytest.mark.parametrize(("target", "host"), [
    (f"/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress={CLAIRE}", "hygie.test"),
    ("/mail/config-v1.1.xml", "autoconfig.hygie.test"),
])  # fmt: skip
def test_autoconfig_leads_a_client_to_starttls_and_oauth2(server: ServerProcess, target: str,
                                                          host: str) -> None:  # fmt: skip
    status, document = get(server, target, host)
    assert status == 200
    found = servers(document)
    assert found["imap"] == {
        "hostname": "mail.hygie.test", "port": server.imap_port, "socketType": "STARTTLS",
        "username": "%EMAILADDRESS%", "authentication": ["OAuth2", "password-cleartext"],
    }  # fmt: skip
    assert found["smtp"]["port"] == server.smtp_port
    assert found["smtp"]["socketType"] == "STARTTLS"
    assert found["smtp"]["authentication"] == ["OAuth2", "password-cleartext"]
    oauth = SafeET.fromstring(document).find("oAuth2")
    assert oauth is not None and oauth.findtext("issuer") == "https://mail.hygie.test/oauth"


def test_autoconfig_for_another_domain_is_404(server: ServerProcess) -> None:
    status, _ = get(server, "/.well-known/autoconfig/mail/config-v1.1.xml"
                    "?emailaddress=someone@example.org")  # fmt: skip
    assert status == 404


def test_the_advertised_ports_take_starttls_then_oauth2(server: ServerProcess) -> None:
    """What the client does next with the document: connect where it says (the host name
    resolves to this machine here), STARTTLS, then sign in with a token."""
    status, document = get(server, f"/mail/config-v1.1.xml?emailaddress={CLAIRE}")
    assert status == 200
    found = servers(document)
    token = server.hygie("token", "issue", CLAIRE).stdout.decode().strip()
    sasl = f"user={CLAIRE}\x01auth=Bearer {token}\x01\x01"

    imap = imaplib.IMAP4("127.0.0.1", int(str(found["imap"]["port"])))
    assert "STARTTLS" in imap.capabilities and "LOGINDISABLED" in imap.capabilities
    imap.starttls(ssl_context=server.ssl_context())
    assert "AUTH=XOAUTH2" in imap.capabilities
    typ, _ = imap.authenticate("XOAUTH2", lambda _: sasl.encode())
    assert typ == "OK"
    imap.logout()

    smtp = smtplib.SMTP("127.0.0.1", int(str(found["smtp"]["port"])), timeout=30)
    smtp.ehlo()
    assert smtp.has_extn("starttls") and not smtp.has_extn("auth")
    smtp.starttls(context=server.ssl_context())
    smtp.ehlo()
    assert "XOAUTH2" in smtp.esmtp_features["auth"].split()
    code, _ = smtp.docmd("AUTH", "XOAUTH2 " + base64.b64encode(sasl.encode()).decode())
    assert code == 235
    smtp.quit()
