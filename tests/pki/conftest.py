"""One RSA and one EC certificate authority for the whole session, with a server certificate
each; tests that change a CA make their own."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from pki.ca import CertificateAuthority, init_ca, write_server_credentials

PASSPHRASE = b"correct horse battery staple"
HOSTNAMES = ["mail.hygie.test", "imap.hygie.test", "localhost"]
IPS = ["127.0.0.1", "::1"]


@dataclass(frozen=True)
class Deployment:
    """A CA and the files a server would run with."""

    ca: CertificateAuthority
    root_file: Path
    cert_file: Path
    key_file: Path


def deploy(directory: Path, key_type: str) -> Deployment:
    ca = init_ca(directory / "pki", PASSPHRASE, key_type=key_type)
    issued = ca.issue_server(HOSTNAMES, IPS, key_type=key_type)
    cert_file, key_file = directory / "server.crt", directory / "server.key"
    write_server_credentials(issued, cert_file, key_file)
    return Deployment(ca, ca.files.root_cert, cert_file, key_file)


@pytest.fixture(scope="session")
def rsa_deployment(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    return deploy(tmp_path_factory.mktemp("rsa"), "rsa")


@pytest.fixture(scope="session")
def ec_deployment(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    return deploy(tmp_path_factory.mktemp("ec"), "ec")
