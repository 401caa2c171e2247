"""The patient pages on the HTTPS listener (issue 11 items 1, 3, 5), under ``/espace/``:

- ``/espace/refus``: refuse the space one was invited to, with the invitation's one-time code;
- ``/espace/activation``: once the space is open, the same code sets the first password;
- ``/espace/connexion``: sign in with the address, the password and the authenticator's code
  (the code is left empty before enrolment: the password alone then leads to enrolment only);
- ``/espace/2fa``: enrolment: the QR code (inline SVG) and the secret as text, confirmed by a
  first code;
- ``/espace/compte``: after a two-factor sign-in: create and revoke app passwords, close the
  space, sign out;
- ``POST /espace/token``: the token endpoint (form or JSON: address, password, code) returning
  ``{"access_token", "token_type": "Bearer", "expires_in"}`` for XOAUTH2/OAUTHBEARER;
- ``/espace/api/app-passwords``: the same app-password operations as JSON, with that token.

The pages are server-rendered HTML forms that work without JavaScript (there is none), in
French by default and in English with ``?lang=en`` or an ``Accept-Language`` preferring it.
Every POST form carries a CSRF token that must equal the ``hygie_csrf`` cookie (double submit;
cookies are ``Secure; HttpOnly; SameSite=Strict``). The page session is a short JWT from the
patient issuer in the ``hygie_session`` cookie, with an audience the SASL login never accepts.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import json
import secrets
from collections.abc import Callable
from html import escape
from typing import Any
from urllib.parse import parse_qsl

import structlog

from server.auth.oauth import TokenRejected
from server.auth.patient import (
    ENROL_AUDIENCE,
    SESSION_AUDIENCE,
    PatientSignIn,
    SignInError,
    token_response,
)
from server.config import Config
from server.http.server import Handler, Request, Response
from storage import audit
from storage.accounts import AccountInfo, find_account, hash_password
from storage.spaces import SpaceError, SpaceStore

log = structlog.get_logger("hygie.http.espace")
PREFIX = "/espace"
HTML = "text/html; charset=utf-8"
JSON = "application/json; charset=utf-8"
CSRF_COOKIE = "hygie_csrf"
MIN_PASSWORD = 12
SESSION_COOKIE = "hygie_session"
Clock = Callable[[], dt.datetime]

TEXT: dict[str, dict[str, str]] = {
    "fr": {
        "site": "Mon espace santé", "lang_other": "English", "skip": "Aller au contenu",
        "refuse_title": "Refuser l'ouverture de mon espace santé",
        "refuse_intro": "Saisissez le code à usage unique reçu dans votre invitation. "
                        "Une fois le refus enregistré, aucun espace ne sera ouvert pour vous.",
        "code": "Code de l'invitation", "code_hint": "10 caractères, sans espaces ni tirets",
        "refuse_button": "Refuser mon espace santé",
        "refused_title": "Votre refus est enregistré",
        "refused_text": "Aucun espace santé ne sera ouvert pour vous. Vous pouvez fermer "
                        "cette page.",
        "refuse_bad": "Ce code est inconnu, a déjà servi, ou le délai de refus est passé.",
        "activate_title": "Activer mon espace santé",
        "activate_intro": "Votre espace est ouvert. Saisissez le code de votre invitation et "
                          "choisissez votre mot de passe (12 caractères au moins).",
        "new_password": "Nouveau mot de passe", "new_password_again": "Le même, à nouveau",
        "activate_button": "Activer mon espace",
        "activated": "Votre espace est activé. Connectez-vous avec votre adresse : {address}",
        "activate_bad": "Ce code est inconnu, a déjà servi, ou votre espace n'est pas encore "
                        "ouvert.",
        "password_short": "Le mot de passe doit avoir 12 caractères au moins.",
        "password_differ": "Les deux mots de passe diffèrent.",
        "signin_title": "Connexion à mon espace santé",
        "address": "Adresse de messagerie santé", "password": "Mot de passe",
        "totp": "Code de l'application d'authentification",
        "totp_hint": "6 chiffres. Laissez vide si vous n'avez pas encore activé la double "
                     "authentification.",
        "signin_button": "Se connecter",
        "enrol_title": "Activer la double authentification",
        "enrol_intro": "Scannez ce QR code avec votre application d'authentification "
                       "(par exemple FreeOTP, Aegis ou Google Authenticator), puis saisissez "
                       "le code à 6 chiffres qu'elle affiche.",
        "enrol_secret": "Si vous ne pouvez pas scanner le QR code, saisissez cette clé :",
        "enrol_button": "Activer", "enrol_done": "La double authentification est activée.",
        "account_title": "Mon compte",
        "apps_title": "Mots de passe d'application",
        "apps_intro": "Votre logiciel de messagerie (Thunderbird, Apple Mail…) se connecte "
                      "avec un mot de passe d'application, jamais avec votre mot de passe.",
        "apps_none": "Aucun mot de passe d'application.",
        "app_label": "Nom de l'appareil ou du logiciel", "app_create": "Créer",
        "app_created": "Nouveau mot de passe d'application (il ne sera plus affiché) :",
        "app_revoke": "Révoquer", "app_revoked": "Mot de passe d'application révoqué.",
        "created": "créé le",
        "close_title": "Fermer mon espace santé",
        "close_intro": "Votre messagerie sera désactivée aussitôt ; vos données seront "
                       "supprimées après le délai de conservation ({days} jours).",
        "close_confirm": "Je confirme vouloir fermer mon espace santé",
        "close_button": "Fermer mon espace",
        "closed_title": "Votre espace santé est fermé",
        "closed_text": "Vos données seront supprimées le {date}.",
        "signout": "Se déconnecter", "signed_out": "Vous êtes déconnecté.",
        "csrf": "Le formulaire a expiré. Rechargez la page et recommencez.",
        "session": "Votre session a expiré. Connectez-vous à nouveau.",
        "error": "Erreur", "back": "Retour à la connexion",
        "wrong address or password": "Adresse ou mot de passe incorrect.",
        "wrong code": "Code incorrect.",
        "this code was already used; wait for the next one":
            "Ce code a déjà servi ; attendez le suivant.",
        "too many attempts; try again in a minute": "Trop de tentatives ; réessayez dans "
                                                    "une minute.",
        "two-factor sign-in is not enrolled": "La double authentification n'est pas activée.",
        "too many wrong codes today; try again tomorrow":
            "Trop de codes incorrects aujourd'hui ; réessayez demain.",
        "code_required": "Saisissez le code de votre application d'authentification.",
    },
    "en": {
        "site": "My health space", "lang_other": "Français", "skip": "Skip to content",
        "refuse_title": "Refuse the opening of my health space",
        "refuse_intro": "Enter the one-time code from your invitation. Once your refusal is "
                        "recorded, no space will be opened for you.",
        "code": "Invitation code", "code_hint": "10 characters, no spaces or dashes",
        "refuse_button": "Refuse my health space",
        "refused_title": "Your refusal is recorded",
        "refused_text": "No health space will be opened for you. You may close this page.",
        "refuse_bad": "This code is unknown, was already used, or the refusal period is over.",
        "activate_title": "Activate my health space",
        "activate_intro": "Your space is open. Enter the code from your invitation and choose "
                          "your password (at least 12 characters).",
        "new_password": "New password", "new_password_again": "The same again",
        "activate_button": "Activate my space",
        "activated": "Your space is active. Sign in with your address: {address}",
        "activate_bad": "This code is unknown, was already used, or your space is not open yet.",
        "password_short": "The password needs at least 12 characters.",
        "password_differ": "The two passwords differ.",
        "signin_title": "Sign in to my health space",
        "address": "Health mail address", "password": "Password",
        "totp": "Authenticator app code",
        "totp_hint": "6 digits. Leave empty if you have not enabled two-factor sign-in yet.",
        "signin_button": "Sign in",
        "enrol_title": "Enable two-factor sign-in",
        "enrol_intro": "Scan this QR code with your authenticator app (FreeOTP, Aegis, "
                       "Google Authenticator…), then enter the 6-digit code it shows.",
        "enrol_secret": "If you cannot scan the QR code, enter this key:",
        "enrol_button": "Enable", "enrol_done": "Two-factor sign-in is enabled.",
        "account_title": "My account",
        "apps_title": "App passwords",
        "apps_intro": "Your mail program (Thunderbird, Apple Mail…) signs in with an app "
                      "password, never with your password.",
        "apps_none": "No app passwords.",
        "app_label": "Device or program name", "app_create": "Create",
        "app_created": "New app password (it will not be shown again):",
        "app_revoke": "Revoke", "app_revoked": "App password revoked.",
        "created": "created on",
        "close_title": "Close my health space",
        "close_intro": "Your mailbox is disabled at once; your data is deleted after the "
                       "retention period ({days} days).",
        "close_confirm": "I confirm I want to close my health space",
        "close_button": "Close my space",
        "closed_title": "Your health space is closed",
        "closed_text": "Your data will be deleted on {date}.",
        "signout": "Sign out", "signed_out": "You are signed out.",
        "csrf": "The form expired. Reload the page and try again.",
        "session": "Your session expired. Please sign in again.",
        "error": "Error", "back": "Back to sign-in",
        "wrong address or password": "Wrong address or password.",
        "wrong code": "Wrong code.",
        "this code was already used; wait for the next one":
            "This code was already used; wait for the next one.",
        "too many attempts; try again in a minute": "Too many attempts; try again in a "
                                                    "minute.",
        "two-factor sign-in is not enrolled": "Two-factor sign-in is not enabled.",
        "too many wrong codes today; try again tomorrow":
            "Too many wrong codes today; try again tomorrow.",
        "code_required": "Enter the code from your authenticator app.",
    },
}  # fmt: skip

STYLE = """
:root { color-scheme: light; }
body { font: 1.05rem/1.5 system-ui, sans-serif; color: #1a1a1a; background: #ffffff;
       margin: 0; }
header { background: #0b3d75; color: #ffffff; padding: .75rem 1.25rem; display: flex;
         justify-content: space-between; align-items: center; }
header a { color: #ffffff; }
main { max-width: 38rem; margin: 1.5rem auto; padding: 0 1.25rem; }
h1 { font-size: 1.6rem; margin-top: 0; }
label { display: block; font-weight: 600; margin-top: 1rem; }
.hint { color: #3d3d3d; font-size: .95rem; margin: .15rem 0 .3rem; }
input[type=text], input[type=password], input[type=email] {
  font: inherit; width: 100%; box-sizing: border-box; padding: .5rem;
  border: 2px solid #4a4a4a; border-radius: 4px; }
button { font: inherit; font-weight: 600; margin-top: 1.25rem; padding: .6rem 1.2rem;
         color: #ffffff; background: #0b3d75; border: 2px solid #0b3d75; border-radius: 4px;
         cursor: pointer; }
button.danger { background: #9b1c1c; border-color: #9b1c1c; }
a:focus, input:focus, button:focus { outline: 3px solid #e0a800; outline-offset: 2px; }
.error { color: #9b1c1c; border-left: 4px solid #9b1c1c; padding: .4rem .8rem;
         background: #fdf0f0; }
.ok { color: #14532d; border-left: 4px solid #14532d; padding: .4rem .8rem;
      background: #effaf2; }
code.secret { font-size: 1.2rem; letter-spacing: .08em; word-break: break-all; }
.checkbox label { display: inline; font-weight: normal; }
.skip { position: absolute; left: -999px; }
.skip:focus { left: 1rem; top: .5rem; background: #ffffff; color: #0b3d75; padding: .3rem; }
"""


def _lang(request: Request, form: dict[str, str] | None = None) -> str:
    for key, value in request.query:
        if key == "lang" and value in TEXT:
            return value
    if form and form.get("lang") in TEXT:
        return form["lang"]
    for part in request.headers.get("accept-language", "").split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in TEXT:
            return tag
    return "fr"


def _cookies(request: Request) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in request.headers.get("cookie", "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            out[name] = value
    return out


def _cookie(name: str, value: str, max_age: int | None = None) -> tuple[str, str]:
    age = f"; Max-Age={max_age}" if max_age is not None else ""
    return ("Set-Cookie", f"{name}={value}; Path={PREFIX}; Secure; HttpOnly; SameSite=Strict{age}")


def _form(request: Request) -> dict[str, str]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json":
        try:
            data = json.loads(request.body or b"{}")
        except (ValueError, RecursionError):  # RecursionError: nested too deeply
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    text = request.body.decode("utf-8", "replace")
    return dict(parse_qsl(text, keep_blank_values=True))


def row_id(text: str) -> int | None:
    """A row number from a path or a form: ASCII digits within a 64-bit integer, else None
    (``str.isdigit`` also takes "²" or "١", which ``int`` refuses or the database cannot
    hold: a 500 instead of a 404)."""
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        return None
    return int(text)


def _headers() -> list[tuple[str, str]]:
    return [
        ("Cache-Control", "no-store"),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; "
         "img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    ]  # fmt: skip


def _json(status: int, document: Any) -> Response:
    return Response(status, JSON, json.dumps(document, ensure_ascii=False).encode(), _headers())


class Page:
    """One rendered page: language, CSRF token, cookies to set."""

    def __init__(self, request: Request, form: dict[str, str] | None = None) -> None:
        self.request = request
        self.lang = _lang(request, form)
        self.t = TEXT[self.lang]
        cookies = _cookies(request)
        self.csrf = cookies.get(CSRF_COOKIE, "")
        self.set_cookies: list[tuple[str, str]] = []
        if len(self.csrf) < 20:
            self.csrf = secrets.token_urlsafe(24)
            self.set_cookies.append(_cookie(CSRF_COOKIE, self.csrf))

    def href(self, path: str) -> str:
        return f"{PREFIX}{path}?lang={self.lang}"

    def hidden(self) -> str:
        return (f'<input type="hidden" name="csrf" value="{escape(self.csrf)}">'
                f'<input type="hidden" name="lang" value="{self.lang}">')  # fmt: skip

    def render(self, title: str, body: str, status: int = 200) -> Response:
        other = "en" if self.lang == "fr" else "fr"
        path = escape(self.request.path)
        html = f"""<!DOCTYPE html>
<html lang="{self.lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} – {escape(self.t["site"])}</title>
<style>{STYLE}</style>
</head>
<body>
<a class="skip" href="#main">{escape(self.t["skip"])}</a>
<header><span>{escape(self.t["site"])}</span>
<a href="{path}?lang={other}" lang="{other}" hreflang="{other}">{escape(self.t["lang_other"])}</a>
</header>
<main id="main">
<h1>{escape(title)}</h1>
{body}
</main>
</body>
</html>
"""
        return Response(status, HTML, html.encode(), _headers() + self.set_cookies)

    def error(self, message: str) -> str:
        return f'<p class="error" role="alert" id="form-error">{escape(message)}</p>'

    def say(self, message: str) -> str:
        """The person's words for ``message`` (raw text: :meth:`error` escapes it)."""
        return self.t.get(message, message)


def _redirect(location: str, cookies: list[tuple[str, str]] | None = None) -> Response:
    headers = [("Location", location), *_headers(), *(cookies or [])]
    return Response(303, "text/plain; charset=utf-8", b"", headers)


class EspacePages:
    def __init__(
        self, config: Config, spaces: SpaceStore, signin: PatientSignIn,
        clock: Clock = lambda: dt.datetime.now(dt.UTC),
    ) -> None:  # fmt: skip
        self.config = config
        self.spaces = spaces
        self.signin = signin
        self.issuer = signin.issuer
        self.clock = clock

    async def handle(self, request: Request) -> Response:
        path = request.path[len(PREFIX):].rstrip("/") or "/"
        method = request.method
        if path == "/token" and method == "POST":
            return await self._token(request)
        if path.startswith("/api/app-passwords"):
            return await self._api(request, path[len("/api/app-passwords"):])
        if method not in ("GET", "HEAD", "POST"):
            return Response(405, "text/plain", b"method not allowed\n", [("Allow", "GET, POST")])
        form = _form(request) if method == "POST" else {}
        page = Page(request, form)
        if method == "POST" and not self._csrf_ok(request, form):
            return page.render(page.t["error"], page.error(page.t["csrf"]), 403)
        routes = {
            "/": self._root, "/refus": self._refuse, "/connexion": self._signin,
            "/activation": self._activate,
            "/2fa": self._enrol, "/compte": self._account, "/deconnexion": self._signout,
        }  # fmt: skip
        handler = routes.get(path)
        if handler is None:
            return page.render("404", "<p>Not found.</p>", 404)
        return await handler(request, page, form)

    def _csrf_ok(self, request: Request, form: dict[str, str]) -> bool:
        cookie = _cookies(request).get(CSRF_COOKIE, "")
        sent = form.get("csrf", "")
        return bool(cookie) and hmac.compare_digest(cookie.encode(), sent.encode())

    def _session(self, request: Request, audience: str) -> dict[str, Any] | None:
        token = _cookies(request).get(SESSION_COOKIE, "")
        if not token:
            return None
        try:
            return self.issuer.verify(token, audience=audience)
        except TokenRejected:
            return None

    def _start_session(self, account: AccountInfo, audience: str) -> tuple[str, str]:
        ttl = self.config.spaces.token_ttl_seconds
        token = self.issuer.issue(account.address, audience=audience, ttl=ttl, acc=account.id)
        return _cookie(SESSION_COOKIE, token, ttl)

    async def _account_of(self, claims: dict[str, Any]) -> AccountInfo | None:
        account = await find_account(self.signin.db, str(claims.get("sub", "")))
        if account is None or account.disabled or account.id != claims.get("acc"):
            return None
        return account

    # -- pages -------------------------------------------------------------------------------

    async def _root(self, request: Request, page: Page, form: dict[str, str]) -> Response:
        return _redirect(page.href("/connexion"))

    async def _refuse(self, request: Request, page: Page, form: dict[str, str]) -> Response:
        t = page.t
        message = ""
        status = 200
        if request.method == "POST":
            key = f"refusal-ip:{request.peer}"
            if self.signin.auth.limiter.blocked(key):
                message, status = page.say("too many attempts; try again in a minute"), 429
            else:
                done = await self.spaces.refuse(form.get("code", ""), self.clock(),
                                                peer=request.peer)  # fmt: skip
                if done is not None:
                    log.info("space_refused", space=done.id)
                    done_text = escape(t["refused_text"])
                    return page.render(t["refused_title"],
                                       f'<p class="ok" role="status">{done_text}</p>')
                self.signin.auth.limiter.record(key)
                message, status = t["refuse_bad"], 400
        described = ' aria-describedby="code-hint form-error"' if message else \
            ' aria-describedby="code-hint"'  # fmt: skip
        body = f"""{page.error(message) if message else ""}
<p>{escape(t["refuse_intro"])}</p>
<form method="post" action="{page.href("/refus")}">
{page.hidden()}
<label for="code">{escape(t["code"])}</label>
<p class="hint" id="code-hint">{escape(t["code_hint"])}</p>
<input type="text" id="code" name="code" required autocomplete="off" autocapitalize="characters"
 spellcheck="false" maxlength="20"{described}>
<button type="submit" class="danger">{escape(t["refuse_button"])}</button>
</form>"""
        return page.render(t["refuse_title"], body, status)

    async def _activate(self, request: Request, page: Page, form: dict[str, str]) -> Response:
        t = page.t
        message, status = "", 200
        if request.method == "POST":
            key = f"refusal-ip:{request.peer}"
            password = form.get("password", "")
            if self.signin.auth.limiter.blocked(key):
                message, status = page.say("too many attempts; try again in a minute"), 429
            elif len(password) < MIN_PASSWORD:
                message, status = t["password_short"], 400
            elif password != form.get("password2", ""):
                message, status = t["password_differ"], 400
            else:
                code = form.get("code", "")
                done = None
                # The code first: a wrong one costs no argon2id hash (64 MiB, 0.1 s of CPU).
                if await self.spaces.activation_due(code):
                    hashed = await asyncio.to_thread(hash_password, password)
                    done = await self.spaces.activate(code, hashed, self.clock(),
                                                      peer=request.peer)  # fmt: skip
                if done is not None:
                    text = escape(t["activated"].format(address=done.address))
                    title = escape(t["signin_title"])
                    link = f'<p><a href="{page.href("/connexion")}">{title}</a></p>'
                    return page.render(t["activate_title"],
                                       f'<p class="ok" role="status">{text}</p>{link}')
                self.signin.auth.limiter.record(key)
                message, status = t["activate_bad"], 400
        body = f"""{page.error(message) if message else ""}
<p>{escape(t["activate_intro"])}</p>
<form method="post" action="{page.href("/activation")}">
{page.hidden()}
<label for="code">{escape(t["code"])}</label>
<input type="text" id="code" name="code" required autocomplete="off" spellcheck="false"
 maxlength="20">
<label for="password">{escape(t["new_password"])}</label>
<input type="password" id="password" name="password" required minlength="{MIN_PASSWORD}"
 autocomplete="new-password">
<label for="password2">{escape(t["new_password_again"])}</label>
<input type="password" id="password2" name="password2" required minlength="{MIN_PASSWORD}"
 autocomplete="new-password">
<button type="submit">{escape(t["activate_button"])}</button>
</form>"""
        return page.render(t["activate_title"], body, status)

    async def _signin(self, request: Request, page: Page, form: dict[str, str]) -> Response:
        t = page.t
        message = ""
        status = 200
        if request.method == "POST":
            address, password = form.get("address", ""), form.get("password", "")
            code = form.get("code", "").strip()
            try:
                account = await self.signin.first_factor(address, password, request.peer)
                enrolled = await self.spaces.totp_enrolled(account.id)
                if not enrolled:
                    cookie = self._start_session(account, ENROL_AUDIENCE)
                    return _redirect(page.href("/2fa"), [cookie])
                if not code:
                    raise SignInError(400, "code_required")
                await self.signin.second_factor(account, code, request.peer)
                await audit.record(self.signin.db, f"account:{account.id}", "espace.signin.ok",
                                   f"account:{account.id}", peer=request.peer)  # fmt: skip
                return _redirect(page.href("/compte"),
                                 [self._start_session(account, SESSION_AUDIENCE)])  # fmt: skip
            except SignInError as exc:
                message, status = page.say(exc.message), exc.status
        elif request.query and ("expired", "1") in request.query:
            message = t["session"]
        elif ("out", "1") in request.query:
            message = ""
        signed_out = f'<p class="ok" role="status">{escape(t["signed_out"])}</p>' \
            if ("out", "1") in request.query else ""  # fmt: skip
        body = f"""{page.error(message) if message else ""}{signed_out}
<form method="post" action="{page.href("/connexion")}">
{page.hidden()}
<label for="address">{escape(t["address"])}</label>
<input type="email" id="address" name="address" required autocomplete="username"
 value="{escape(form.get("address", ""))}">
<label for="password">{escape(t["password"])}</label>
<input type="password" id="password" name="password" required autocomplete="current-password">
<label for="code">{escape(t["totp"])}</label>
<p class="hint" id="code-hint">{escape(t["totp_hint"])}</p>
<input type="text" id="code" name="code" inputmode="numeric" pattern="[0-9 ]*" maxlength="7"
 autocomplete="one-time-code" aria-describedby="code-hint">
<button type="submit">{escape(t["signin_button"])}</button>
</form>"""
        return page.render(t["signin_title"], body, status)

    async def _enrol(self, request: Request, page: Page, form: dict[str, str]) -> Response:
        t = page.t
        claims = self._session(request, ENROL_AUDIENCE)
        account = await self._account_of(claims) if claims else None
        if account is None:
            return _redirect(page.href("/connexion") + "&expired=1")
        message, status = "", 200
        found = await self.spaces.totp_secret(account.id)
        if request.method == "POST" and found is not None and not found[1]:
            try:
                await self.signin.confirm(account, form.get("code", ""), request.peer)
            except SignInError as exc:
                message, status = page.say(exc.message), exc.status
            else:
                cookie = self._start_session(account, SESSION_AUDIENCE)
                return _redirect(page.href("/compte") + "&enrolled=1", [cookie])
        if found is None or found[1]:
            try:
                enrolment = await self.signin.enrol(account, request.peer)
            except SignInError as exc:
                return page.render(t["error"], page.error(page.say(exc.message)), exc.status)
        else:
            enrolment = self.signin.enrolment(account, found[0])
        spaced = " ".join(enrolment.secret[i:i + 4] for i in range(0, len(enrolment.secret), 4))
        body = f"""{page.error(message) if message else ""}
<p>{escape(t["enrol_intro"])}</p>
<figure>{enrolment.svg()}</figure>
<p>{escape(t["enrol_secret"])}<br><code class="secret" id="secret">{escape(spaced)}</code></p>
<form method="post" action="{page.href("/2fa")}">
{page.hidden()}
<label for="code">{escape(t["totp"])}</label>
<input type="text" id="code" name="code" required inputmode="numeric" pattern="[0-9 ]*"
 maxlength="7" autocomplete="one-time-code">
<button type="submit">{escape(t["enrol_button"])}</button>
</form>"""
        return page.render(t["enrol_title"], body, status)

    async def _account(self, request: Request, page: Page, form: dict[str, str]) -> Response:
        t = page.t
        claims = self._session(request, SESSION_AUDIENCE)
        account = await self._account_of(claims) if claims else None
        if account is None:
            return _redirect(page.href("/connexion") + "&expired=1")
        notice = ""
        if ("enrolled", "1") in request.query:
            notice = f'<p class="ok" role="status">{escape(t["enrol_done"])}</p>'
        if request.method == "POST":
            action = form.get("action", "")
            if action == "create":
                try:
                    _, secret = await self.spaces.app_password_create(
                        account.id, form.get("label", ""), self.clock(), peer=request.peer
                    )
                except SpaceError as exc:
                    notice = page.error(str(exc))
                else:
                    notice = (f'<p class="ok" role="status">{escape(t["app_created"])} '
                              f'<code class="secret" id="new-app-password">{escape(secret)}'
                              "</code></p>")  # fmt: skip
            elif action == "revoke":
                ident = row_id(form.get("id", "")) or 0
                if await self.spaces.app_password_revoke(account.id, ident, self.clock(),
                                                         peer=request.peer):  # fmt: skip
                    notice = f'<p class="ok" role="status">{escape(t["app_revoked"])}</p>'
            elif action == "close" and form.get("confirm") == "yes":
                return await self._close(request, page, account)
        rows = []
        for ident, label, created in await self.spaces.app_passwords(account.id):
            rows.append(f"""<li><span>{escape(label)}</span> ({escape(t["created"])}
{created:%Y-%m-%d})
<form method="post" action="{page.href("/compte")}" style="display:inline">
{page.hidden()}<input type="hidden" name="action" value="revoke">
<input type="hidden" name="id" value="{ident}">
<button type="submit" aria-label="{escape(t["app_revoke"])} {escape(label)}">
{escape(t["app_revoke"])}</button>
</form></li>""")  # fmt: skip
        listing = f"<ul>{''.join(rows)}</ul>" if rows else f"<p>{escape(t['apps_none'])}</p>"
        days = self.config.spaces.retention_days
        body = f"""{notice}
<h2>{escape(t["apps_title"])}</h2>
<p>{escape(t["apps_intro"])}</p>
{listing}
<form method="post" action="{page.href("/compte")}">
{page.hidden()}<input type="hidden" name="action" value="create">
<label for="label">{escape(t["app_label"])}</label>
<input type="text" id="label" name="label" required maxlength="100">
<button type="submit">{escape(t["app_create"])}</button>
</form>
<h2>{escape(t["close_title"])}</h2>
<p>{escape(t["close_intro"].format(days=days))}</p>
<form method="post" action="{page.href("/compte")}">
{page.hidden()}<input type="hidden" name="action" value="close">
<p class="checkbox"><input type="checkbox" id="confirm" name="confirm" value="yes" required>
<label for="confirm">{escape(t["close_confirm"])}</label></p>
<button type="submit" class="danger">{escape(t["close_button"])}</button>
</form>
<form method="post" action="{page.href("/deconnexion")}">
{page.hidden()}<button type="submit">{escape(t["signout"])}</button>
</form>"""
        return page.render(t["account_title"], body)

    async def _close(self, request: Request, page: Page, account: AccountInfo) -> Response:
        t = page.t
        space = await self.spaces.by_account(account.id)
        if space is None:
            return page.render(t["error"], page.error("no space"), 404)
        retention = dt.timedelta(days=self.config.spaces.retention_days)
        closed = await self.spaces.close(space.ins, self.clock(), retention, peer=request.peer)
        if closed is None:
            return page.render(t["error"], page.error("no open space"), 409)
        purge = self.clock() + retention
        text = t["closed_text"].format(date=f"{purge:%Y-%m-%d}")
        response = page.render(t["closed_title"], f'<p class="ok" role="status">{escape(text)}</p>')
        response.headers.append(_cookie(SESSION_COOKIE, "", 0))
        return response

    async def _signout(self, request: Request, page: Page, form: dict[str, str]) -> Response:
        return _redirect(page.href("/connexion") + "&out=1", [_cookie(SESSION_COOKIE, "", 0)])

    # -- the token endpoint and the JSON API ---------------------------------------------------

    async def _token(self, request: Request) -> Response:
        form = _form(request)
        try:
            account = await self.signin.sign_in(form.get("address", form.get("username", "")),
                                                form.get("password", ""), form.get("code", ""),
                                                request.peer)  # fmt: skip
        except SignInError as exc:
            error = "invalid_grant" if exc.status == 401 else "access_denied"
            return _json(exc.status, {"error": error, "error_description": exc.message})
        ttl = self.config.spaces.token_ttl_seconds
        return Response(200, JSON, token_response(self.signin.token(account), ttl), _headers())

    async def _api(self, request: Request, rest: str) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            response = _json(401, {"error": "a bearer token from /espace/token is required"})
            response.headers.append(("WWW-Authenticate", 'Bearer realm="hygie-espace"'))
            return response
        try:
            claims = self.issuer.verify(token.strip(), audience=self.config.oauth.audience)
        except TokenRejected as exc:
            return _json(401, {"error": exc.reason})
        account = await find_account(self.signin.db, str(claims.get("sub", "")))
        if account is None or account.disabled or "otp" not in claims.get("amr", []):
            return _json(401, {"error": "not a two-factor patient token"})
        ident = rest.strip("/")
        if request.method == "GET" and not ident:
            items = await self.spaces.app_passwords(account.id)
            return _json(200, {"app_passwords": [
                {"id": i, "label": label, "created": created.isoformat()}
                for i, label, created in items]})  # fmt: skip
        if request.method == "POST" and not ident:
            try:
                new_id, secret = await self.spaces.app_password_create(
                    account.id, _form(request).get("label", ""), self.clock(), peer=request.peer
                )
            except SpaceError as exc:
                return _json(400, {"error": str(exc)})
            return _json(201, {"id": new_id, "password": secret})
        if request.method == "DELETE" and ident:
            number = row_id(ident)
            if number is None or not await self.spaces.app_password_revoke(
                account.id, number, self.clock(), peer=request.peer
            ):
                return _json(404, {"error": "no such app password"})
            return Response(204, JSON, b"", _headers())
        return _json(405, {"error": "GET, POST or DELETE /espace/api/app-passwords[/ID]"})


def espace_route(pages: EspacePages) -> Handler:
    return pages.handle
