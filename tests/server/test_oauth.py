"""Bearer tokens (RFC 7628 with JWTs): the development issuer's tokens pass; expired, early,
foreign-audience, foreign-issuer, badly signed and unsigned ones do not; a JWKS fetched over
HTTPS is cached, follows key rotation, and survives a failing provider."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pki.ca import init_ca, write_server_credentials
from pki.tls import server_context
from server.auth.oauth import DevIssuer, TokenRejected, TokenVerifier
from server.config import Config, OAuthSection
from tests.pki.conftest import PASSPHRASE

ADDRESS = "claire.martin@hygie.test"


@pytest.fixture()
def config(tmp_path: Path) -> Config:
    cfg = Config(data_dir=tmp_path)
    DevIssuer(cfg).ensure()
    return cfg


def subject(config: Config, token: str) -> str:
    return asyncio.run(TokenVerifier(config).subject(token))


def rejected(config: Config, token: str) -> str:
    with pytest.raises(TokenRejected) as caught:
        subject(config, token)
    return caught.value.reason


def test_dev_issuer_token_names_its_subject(config: Config) -> None:
    token = DevIssuer(config).issue(ADDRESS, ttl_seconds=60)
    assert subject(config, token) == ADDRESS
    assert (config.data_dir / "oauth" / "issuer.key").stat().st_mode & 0o077 == 0


def test_expired_and_early_tokens(config: Config) -> None:
    issuer = DevIssuer(config)
    old = issuer.issue(ADDRESS, ttl_seconds=-120)
    assert rejected(config, old) == "token expired"
    early = issuer.issue(ADDRESS, ttl_seconds=600, not_before=int(time.time()) + 300)
    assert rejected(config, early) == "token not yet valid"


def test_other_audience_and_issuer(config: Config) -> None:
    issuer = DevIssuer(config)
    assert rejected(config, issuer.issue(ADDRESS, ttl_seconds=60, audience="other-app")) == (
        "token is for another audience"
    )
    foreign = issuer.issue(ADDRESS, ttl_seconds=60, issuer="https://evil.example/oauth")
    assert rejected(config, foreign) == "token from another issuer"


def _claims(config: Config) -> dict[str, object]:
    now = int(time.time())
    return {
        "iss": config.oauth_issuer,
        "aud": config.oauth.audience,
        "sub": ADDRESS,
        "exp": now + 60,
        "nbf": now,
    }


def test_badly_signed_tokens(config: Config) -> None:
    kid = json.loads((config.data_dir / "oauth" / "jwks.json").read_text())["keys"][0]["kid"]
    # Another key claiming the issuer's key id.
    impostor = ec.generate_private_key(ec.SECP256R1())
    forged = jwt.encode(_claims(config), impostor, algorithm="ES256", headers={"kid": kid})
    assert rejected(config, forged) == "bad token signature"
    # A key id the issuer never published.
    unknown = jwt.encode(_claims(config), impostor, algorithm="ES256", headers={"kid": "nope"})
    assert rejected(config, unknown) == "unknown signing key"
    # alg=none, and an RSA signature against the issuer's EC key.
    unsigned = jwt.encode(_claims(config), None, algorithm="none", headers={"kid": kid})
    assert rejected(config, unsigned) == "unsupported signature algorithm"
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    mixed = jwt.encode(_claims(config), rsa_key, algorithm="RS256", headers={"kid": kid})
    assert rejected(config, mixed) == "signature algorithm does not match the key"
    assert rejected(config, "not.a.jwt") == "malformed token"


def test_missing_subject_claim(config: Config) -> None:
    claims = _claims(config)
    del claims["sub"]
    key = DevIssuer(config)._key()
    kid = DevIssuer(config)._kid(key)
    token = jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid})
    assert rejected(config, token) == "token names no user"


def test_pro_sante_connect_style_subject_claim(config: Config) -> None:
    psc = replace(config, oauth=replace(config.oauth, subject_claim="SubjectNameID"))
    token = DevIssuer(psc).issue("810001234567", ttl_seconds=60)
    assert asyncio.run(TokenVerifier(psc).subject(token)) == "810001234567"


# -- JWKS over HTTPS -------------------------------------------------------------------------


class JwksServer:
    """An OpenID provider's jwks_uri on a real TLS socket, whose answer the test controls."""

    def __init__(self, directory: Path) -> None:
        ca = init_ca(directory / "pki", PASSPHRASE)
        issued = ca.issue_server(["localhost"], ["127.0.0.1"])
        cert, key = directory / "srv.crt", directory / "srv.key"
        write_server_credentials(issued, cert, key)
        self.ca_file = ca.files.root_cert
        self.body = b"{}"
        self.status = 200
        self.hits = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits += 1
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = server_context(cert, key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://localhost:{self.httpd.server_address[1]}/jwks"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def provider(tmp_path: Path) -> Iterator[JwksServer]:
    server = JwksServer(tmp_path / "provider")
    yield server
    server.close()


def test_jwks_url_cached_rotated_and_kept_on_failure(
    config: Config, provider: JwksServer, tmp_path: Path
) -> None:
    local = config.data_dir / "oauth" / "jwks.json"
    provider.body = local.read_bytes()
    remote = replace(
        config,
        oauth=replace(
            config.oauth,
            jwks=provider.url,
            jwks_ca_file=str(provider.ca_file),
            jwks_refresh_seconds=3600,
        ),
    )
    verifier = TokenVerifier(remote)
    token = DevIssuer(config).issue(ADDRESS, ttl_seconds=60)

    async def scenario() -> None:
        assert await verifier.subject(token) == ADDRESS
        assert await verifier.subject(token) == ADDRESS
        assert provider.hits == 1  # cached
        # The provider fails: the last good key set still verifies tokens.
        provider.status, provider.body = 500, b"oops"
        verifier.jwks._fetched_at -= 7200
        assert await verifier.subject(token) == ADDRESS
        assert provider.hits == 2
        # Key rotation: a token signed by a key not yet seen makes the verifier fetch again
        # (at most once a minute), and the new key is found.
        rotated_cfg = replace(config, data_dir=tmp_path / "rotated")
        rotated = DevIssuer(rotated_cfg)
        rotated.ensure()
        provider.status = 200
        provider.body = (tmp_path / "rotated" / "oauth" / "jwks.json").read_bytes()
        new_token = rotated.issue(ADDRESS, ttl_seconds=60)
        with pytest.raises(TokenRejected, match="unknown signing key"):
            await verifier.subject(new_token)  # fetched a moment ago: not again yet
        verifier.jwks._fetched_at -= 120
        assert await verifier.subject(new_token) == ADDRESS
        assert provider.hits == 3

    asyncio.run(scenario())


def test_jwks_url_must_be_trusted(config: Config, provider: JwksServer) -> None:
    provider.body = (config.data_dir / "oauth" / "jwks.json").read_bytes()
    # No CA file: the system trust store does not know the provider's private CA.
    remote = replace(config, oauth=replace(config.oauth, jwks=provider.url))
    token = DevIssuer(config).issue(ADDRESS, ttl_seconds=60)
    with pytest.raises(TokenRejected, match="unknown signing key"):
        asyncio.run(TokenVerifier(remote).subject(token))


def test_default_oauth_section_is_the_dev_issuer() -> None:
    assert OAuthSection().issuer == ""
    assert Config(data_dir=Path("/x")).oauth_issuer == "https://mail.hygie.test/oauth"
