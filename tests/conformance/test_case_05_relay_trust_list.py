"""MSSanté reference (b) 5, the inter-operator relay: "a peer whose domain is missing from the
liste-blanche XML is rejected; IDN domains are handled; the whitelist is refreshed and its XML
parsed with the right namespace".

Against a running ``hygie serve``, on its relay port over mutual TLS (the client certificate
is an operator's server certificate): ``MAIL FROM`` a domain the list does not name gets
``550``; an internationalised domain listed in Unicode is matched by its A-label and by its
U-label (SMTPUTF8); the list file is read again while the server runs; a new version in
another namespace, or not XML at all, is refused and the last good list stays in force.

C: MAIL FROM:<dr@pas-sur-la-liste.test>
S: 550 5.7.1 … trusted-domain list
"""

from __future__ import annotations

import smtplib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.harness import ServerProcess
from server.outbound.trust import NAMESPACE
from tests.support.servers import stop_server

pytestmark = pytest.mark.timeout(600)

IDN = "hôpital-exemple.fr"
IDN_ASCII = IDN.encode("idna").decode("ascii")  # xn--hpital-exemple-…
PEER = "clinique.test"


def document(domains: list[str], namespace: str = NAMESPACE) -> bytes:
    xmlns = f' xmlns="{namespace}"' if namespace else ""
    names = "".join(f"<Domaine><Nom>{d}</Nom></Domaine>" for d in domains)
    return f'<?xml version="1.0" encoding="UTF-8"?><ListeBlanche{xmlns}>{names}</ListeBlanche>' \
        .encode()


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    # Host name "localhost": the CRL distribution point in the certificates resolves, so the
    # relay can check the client certificate's revocation.
    srv = ServerProcess(users={"dr.durand@hygie.test": "case-5-password-1"},
                        hostname="localhost")  # fmt: skip
    try:
        srv.start()
        write_list(srv, document(["hygie.test", PEER, IDN]))
        yield srv
    finally:
        stop_server(srv)


def write_list(server: ServerProcess, data: bytes) -> None:
    path = server.data_dir / "trust" / "liste-blanche.xml"
    tmp = path.with_suffix(".new")
    tmp.write_bytes(data)
    tmp.replace(path)


def mail_from(server: ServerProcess, sender: str, *options: str) -> int:
    tls: Path = server.data_dir / "tls"
    context = server.ssl_context()
    context.load_cert_chain(tls / "server.crt", tls / "server.key")
    with smtplib.SMTP("127.0.0.1", server.relay_port, timeout=30) as smtp:
        smtp.starttls(context=context)
        smtp.ehlo("mx.clinique.test")
        smtp.command_encoding = "utf-8"
        code, text = smtp.docmd("MAIL", f"FROM:<{sender}>{''.join(' ' + o for o in options)}")
        if code != 250:
            assert code == 550 and b"trusted-domain list" in text, text
        return code


def eventually(server: ServerProcess, sender: str, code: int) -> None:
    """The list file is read again within a few seconds (it is polled while the server runs)."""
    deadline = time.monotonic() + 30
    while mail_from(server, sender) != code:
        assert time.monotonic() < deadline, f"{sender}: never {code}"
        time.sleep(0.5)


def test_a_domain_off_the_list_is_refused(server: ServerProcess) -> None:
    eventually(server, f"dr@{PEER}", 250)
    assert mail_from(server, "dr@pas-sur-la-liste.test") == 550


def test_idn_domains_match_in_either_form(server: ServerProcess) -> None:
    eventually(server, f"dr@{PEER}", 250)
    assert mail_from(server, f"dr@{IDN_ASCII}") == 250
    assert mail_from(server, f"dr@{IDN}", "SMTPUTF8") == 250
    assert mail_from(server, "dr@" + "hôpital-autre.fr".encode("idna").decode()) == 550


def test_refresh_keeps_the_last_good_list(server: ServerProcess) -> None:
    eventually(server, f"dr@{PEER}", 250)
    # The same names in another namespace, or in none: not the MSSanté list, refused.
    for bad in (document(["hygie.test"], "urn:example:autre"), document(["hygie.test"], ""),
                b"<ListeBlanche><Domaine>"):  # fmt: skip
        write_list(server, bad)
        time.sleep(7)  # more than one polling period: the file was read
        assert mail_from(server, f"dr@{PEER}") == 250, bad
    # A good new version without PEER is taken.
    write_list(server, document(["hygie.test", IDN]))
    eventually(server, f"dr@{PEER}", 550)
    assert mail_from(server, f"dr@{IDN_ASCII}") == 250
    write_list(server, document(["hygie.test", PEER, IDN]))
    eventually(server, f"dr@{PEER}", 250)
