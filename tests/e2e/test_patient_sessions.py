"""Patients' sessions end when they must (issue 17 finding 7), against a running ``hygie serve``:
the sign-out (from the page, in Chromium, or ``POST /espace/api/sign-out``), a password change
(``hygie user passwd``) and a second-factor reset (``hygie patient 2fa reset``) each end every
page session and every token of the account at once: a copied cookie gets the sign-in page, a
token is refused by IMAP and by the JSON API, before their ten minutes are up. A form's CSRF
token is good only with the session it was made for.

Each test has a patient of its own (enrolled with the operator's ``hygie patient 2fa enrol``),
so that its TOTP codes, one-time and one per 30-second step, do not wait on another test's."""

from __future__ import annotations

import http.client
import imaplib
import json
import re
import subprocess
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest

from bench.harness import ServerProcess, hygie_command
from tests.e2e.test_patient_spaces import Codes, address, page_for, url
from tests.server.spaces_support import ins
from tests.support.servers import start_server, stop_server

PASSWORD = "patient-password-2026"
NEW_PASSWORD = "a-new-password-2026"
SIGN_OUT, API_SIGN_OUT, PASSWD, RESET, CSRF = (address(ins(n)) for n in range(31, 36))


@pytest.fixture(scope="module")
def served(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    env = {"HYGIE_AUTH_FAILURE_DELAY_SECONDS": "0.1", "HYGIE_AUTH_MAX_FAILURES_PER_MINUTE": "100"}
    users = dict.fromkeys((SIGN_OUT, API_SIGN_OUT, PASSWD, RESET, CSRF), PASSWORD)
    srv = start_server(request, "sqlite", users, env)
    yield srv
    stop_server(srv)


def enrolled(served: ServerProcess, who: str) -> Codes:
    """``hygie patient 2fa enrol WHO`` with the operator, answered with the first code."""
    enrol = subprocess.Popen(
        [*hygie_command(), "--data", str(served.data_dir), "patient", "2fa", "enrol", who],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=served.env(), text=True,
    )  # fmt: skip
    assert enrol.stdout is not None
    secret = ""
    while not secret:
        line = enrol.stdout.readline()
        assert line, enrol.communicate(timeout=30)
        if line.startswith("key: "):
            secret = line.split()[1]
    codes = Codes(secret)
    _, err = enrol.communicate(codes.next() + "\n", timeout=60)
    assert enrol.returncode == 0, err
    return codes


def https(served: ServerProcess, method: str, path: str, body: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    """One request over TLS, redirects not followed (a browser's view of each answer)."""
    conn = http.client.HTTPSConnection("localhost", served.https_port,
                                       context=served.ssl_context(), timeout=30)  # fmt: skip
    try:
        conn.request(method, path, body=body, headers=headers or {})
        reply = conn.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    finally:
        conn.close()


def cookie(headers: dict[str, str], name: str) -> str:
    found = re.search(rf"{name}=([^;]*)", headers.get("set-cookie", ""))
    assert found is not None, headers
    return found[1]


def form_token(page: bytes) -> str:
    found = re.search(rb'name="csrf" value="([^"]+)"', page)
    assert found is not None, page[:300]
    return found[1].decode()


def post_form(served: ServerProcess, path: str, fields: dict[str, str],
              cookies: dict[str, str]) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    jar = "; ".join(f"{k}={v}" for k, v in cookies.items())
    return https(served, "POST", path, urlencode(fields).encode(), {
        "Content-Type": "application/x-www-form-urlencoded", "Cookie": jar})  # fmt: skip


def sign_in(served: ServerProcess, who: str, code: str, password: str = PASSWORD) -> str:
    """The sign-in form, as a browser posts it: the page session's secret (cookie)."""
    status, headers, page = https(served, "GET", "/espace/connexion")
    nonce = cookie(headers, "hygie_csrf")
    status, headers, _ = post_form(served, "/espace/connexion", {
        "csrf": form_token(page), "lang": "fr", "address": who, "password": password,
        "code": code}, {"hygie_csrf": nonce})  # fmt: skip
    assert status == 303 and headers["location"].startswith("/espace/compte"), headers
    return cookie(headers, "hygie_session")


def account_page(served: ServerProcess, session: str) -> tuple[int, str]:
    """GET /espace/compte with this session cookie: (status, where a redirect leads)."""
    status, headers, _ = https(served, "GET", "/espace/compte",
                               headers={"Cookie": f"hygie_session={session}"})  # fmt: skip
    return status, headers.get("location", "")


def token(served: ServerProcess, who: str, code: str) -> str:
    status, _, body = https(served, "POST", "/espace/token", json.dumps(
        {"address": who, "password": PASSWORD, "code": code}).encode(),
        {"Content-Type": "application/json"})  # fmt: skip
    assert status == 200, body
    found: str = json.loads(body)["access_token"]
    return found


def imap_accepts(served: ServerProcess, who: str, bearer: str) -> bool:
    with imaplib.IMAP4_SSL("localhost", served.imap_tls_port,
                           ssl_context=served.ssl_context()) as imap:  # fmt: skip
        try:
            imap.authenticate(
                "XOAUTH2", lambda _: f"user={who}\x01auth=Bearer {bearer}\x01\x01".encode()
            )
        except imaplib.IMAP4.error:
            return False
        return imap.select("INBOX")[0] == "OK"


def api(served: ServerProcess, bearer: str, method: str = "GET",
        path: str = "/espace/api/app-passwords") -> tuple[int, Any]:  # fmt: skip
    status, _, body = https(served, method, path, headers={"Authorization": f"Bearer {bearer}"})
    return status, json.loads(body) if body else None


def alive(served: ServerProcess, who: str, session: str, bearer: str) -> tuple[bool, bool, bool]:
    """Whether the page session, the token over IMAP, and the token on the API still work."""
    return (account_page(served, session)[0] == 200, imap_accepts(served, who, bearer),
            api(served, bearer)[0] == 200)  # fmt: skip


def test_signing_out_ends_every_session_and_token(served: ServerProcess, browser: Any) -> None:
    codes = enrolled(served, SIGN_OUT)
    laptop = page_for(browser)  # in Chromium, as the patient does it
    laptop.goto(url(served, "/espace/connexion"))
    laptop.fill("#address", SIGN_OUT)
    laptop.fill("#password", PASSWORD)
    laptop.fill("#code", codes.next())
    with laptop.expect_navigation():
        laptop.click("button[type=submit]")
    assert laptop.inner_text("h1") == "Mon compte"
    copied = next(c["value"] for c in laptop.context.cookies() if c["name"] == "hygie_session")
    phone = sign_in(served, SIGN_OUT, codes.next())  # another device
    bearer = token(served, SIGN_OUT, codes.next())  # hygie-client's token
    assert alive(served, SIGN_OUT, copied, bearer) == (True, True, True)
    assert account_page(served, phone)[0] == 200
    laptop.reload()  # the account page lists the two browsers and the token
    listed = laptop.locator("ul.sessions li").all_inner_texts()
    assert sorted(item.split(" · ")[0] for item in listed) == [
        "Application (hygie-client, jeton)", "Navigateur", "Navigateur"]

    shown = laptop.inner_text("main")  # what the patient read before signing out
    with laptop.expect_navigation():
        laptop.click("button:has-text('Se déconnecter')")
    assert laptop.url.split("?")[0].endswith("/espace/connexion")
    told = laptop.inner_text("[role=status]")
    laptop.goto(url(served, "/espace/compte"))  # the browser's own cookie is gone
    assert laptop.inner_text("[role=alert]").startswith("Votre session a expiré")
    laptop.context.close()

    # The copied cookie, the other device and the token: all ended, minutes before expiry.
    assert account_page(served, copied) == (303, "/espace/connexion?lang=fr&expired=1")
    assert account_page(served, phone)[0] == 303
    assert alive(served, SIGN_OUT, copied, bearer) == (False, False, False)
    assert api(served, bearer) == (401, {"error": "token revoked"})
    log = served.hygie("audit", "--action", "espace.sessions").stdout.decode()
    assert "sign-out" in log and SIGN_OUT not in log
    assert "Met fin à toutes vos sessions, sur tous vos appareils" in shown
    assert told == "Vous êtes déconnecté, sur tous vos appareils."


def test_the_api_signs_out_everywhere(served: ServerProcess) -> None:
    codes = enrolled(served, API_SIGN_OUT)
    session = sign_in(served, API_SIGN_OUT, codes.next())
    bearer = token(served, API_SIGN_OUT, codes.next())
    assert api(served, bearer, "GET", "/espace/api/sign-out")[0] == 405
    assert api(served, bearer, "POST", "/espace/api/sign-out") == (204, None)
    assert alive(served, API_SIGN_OUT, session, bearer) == (False, False, False)


@pytest.mark.parametrize("change", ["password", "second factor"])
def test_a_password_change_or_a_second_factor_reset_ends_them(
    served: ServerProcess, change: str
) -> None:
    who = PASSWD if change == "password" else RESET
    codes = enrolled(served, who)
    session = sign_in(served, who, codes.next())
    bearer = token(served, who, codes.next())
    assert alive(served, who, session, bearer) == (True, True, True)
    if change == "password":  # the operator sets a new password (lost, or compromised)
        served.hygie("user", "passwd", who, "--password-stdin", input=NEW_PASSWORD.encode())
    else:  # the phone was lost: the operator removes the second factor
        served.hygie("patient", "2fa", "reset", who)
    assert alive(served, who, session, bearer) == (False, False, False)
    if change == "password":  # the new password signs in again
        assert account_page(served, sign_in(served, who, codes.next(), NEW_PASSWORD))[0] == 200


def test_a_csrf_token_is_good_for_its_own_session_only(served: ServerProcess) -> None:
    codes = enrolled(served, CSRF)
    victim = sign_in(served, CSRF, codes.next())
    create = {"lang": "fr", "action": "create", "label": "Ordinateur de l'attaquant"}
    # Double submit as an attacker does it: a cookie of their choice and the same value in
    # the form, sent along with the victim's session cookie (planted by a sibling site).
    chosen = "a" * 32
    status, _, page = post_form(served, "/espace/compte", {**create, "csrf": chosen},
                                {"hygie_session": victim, "hygie_csrf": chosen})  # fmt: skip
    assert status == 403 and "Le formulaire a expiré" in page.decode()
    # A real token of another (the attacker's own, pre-sign-in) browser: no better.
    status, headers, own = https(served, "GET", "/espace/connexion")
    nonce = cookie(headers, "hygie_csrf")
    status, _, _ = post_form(served, "/espace/compte", {**create, "csrf": form_token(own)},
                             {"hygie_session": victim, "hygie_csrf": nonce})  # fmt: skip
    assert status == 403
    status, _, page = https(served, "GET", "/espace/compte",
                            headers={"Cookie": f"hygie_session={victim}"})  # fmt: skip
    assert "Ordinateur de l" not in page.decode()  # nothing was created
    # The victim's own page's token, with the victim's session: the form works.
    status, _, page = post_form(served, "/espace/compte", {**create, "csrf": form_token(page)},
                                {"hygie_session": victim})  # fmt: skip
    assert status == 200 and 'id="new-app-password"' in page.decode()
