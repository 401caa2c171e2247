"""The patient pages on the HTTPS listener (issue 11 items 1, 3, 5), under ``/espace/``:

- ``/espace/refus``: refuse the space one was invited to, with the invitation's one-time code;
- ``/espace/activation``: once the space is open, the same code sets the first password;
- ``/espace/connexion``: sign in with the address, the password and the authenticator's code
  (the code is left empty before enrolment: the password alone then only gets a one-time code
  sent to the patient's personal address);
- ``/espace/verification``: that e-mailed code, which leads to enrolment (issue 17 finding 8);
  the activation page leads there too, its invitation code being the proof;
- ``/espace/2fa``: enrolment: the QR code (inline SVG) and the secret as text, confirmed by a
  first code;
- ``/espace/compte``: after a two-factor sign-in: create and revoke app passwords, close the
  space, sign out (every session and token of the account ends);
- ``POST /espace/token``: the token endpoint (form or JSON: address, password, code) returning
  ``{"access_token", "token_type": "Bearer", "expires_in"}`` for XOAUTH2/OAUTHBEARER;
- ``/espace/api/app-passwords``: the same app-password operations as JSON, with that token;
  ``POST /espace/api/sign-out``: end every session and token of the account (204).

The pages are server-rendered HTML forms (Jinja2 templates in ``templates/``) that work
without JavaScript (there is none), in French by default and in English with ``?lang=en`` or an
``Accept-Language`` preferring it; sessions, CSRF and cookies are `server.http.espace.site`'s.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import structlog
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from server.auth.oauth import TokenRejected
from server.auth.patient import PatientSignIn, PatientTokens, SignInError, token_response
from server.config import Config
from server.http.espace.site import ENDED, Handler, Page, Site, form_of
from server.http.responses import ANY, JSON, PRIVATE, error, json_response, peer, row_id
from storage import audit
from storage.accounts import AccountInfo, hash_password
from storage.patient_sessions import ENROL, KINDS, PAGE, VERIFY
from storage.spaces import SpaceError, SpaceStore

log = structlog.get_logger("hygie.http.espace")
MIN_PASSWORD = 12


def _masked(email: str) -> str:
    """``m•••@example.org``: enough for the patient to recognise the address, not to learn it."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}•••@{domain}" if domain else "•••"


class EspacePages:
    """The pages before and around the sign-in, and the account's settings."""

    def __init__(self, config: Config, spaces: SpaceStore, signin: PatientSignIn,
                 site: Site) -> None:  # fmt: skip
        self.config = config
        self.spaces = spaces
        self.signin = signin
        self.site = site
        self.clock = site.clock
        self.tokens = PatientTokens(config, signin.issuer, signin.sessions)

    def routes(self) -> list[BaseRoute]:
        pages: dict[str, Handler] = {
            "/refus": self._refuse, "/connexion": self._signin, "/activation": self._activate,
            "/verification": self._verify, "/2fa": self._enrol, "/compte": self._account,
            "/deconnexion": self._signout,
        }  # fmt: skip
        routes: list[BaseRoute] = [
            Route("/", self._root, methods=["GET"]),
            Route("/token", self._token, methods=["POST"]),
            Route("/api/sign-out", self._api_signout, methods=ANY),
            Route("/api/app-passwords", self._api_passwords, methods=ANY),
            Route("/api/app-passwords/{ident}", self._api_passwords, methods=ANY),
        ]
        routes += [Route(path, self.page(handler), methods=["GET", "POST"])
                   for path, handler in pages.items()]  # fmt: skip
        return routes

    def page(self, handler: Handler) -> Any:
        """A page: its form read, its CSRF token checked on POST."""

        async def run(request: Request) -> Response:
            form = await form_of(request) if request.method == "POST" else {}
            page = self.site.page(request, form)
            if request.method == "POST" and not self.site.csrf_ok(request, form):
                return self.site.notice(page, page.t["error"], page.t["csrf"], 403, error=True)
            return await handler(request, page, form)

        return run

    async def _start_session(self, account: AccountInfo, kind: str) -> tuple[str, str, int | None]:
        return self.site.session_cookie(await self.signin.start_session(account, kind))

    def expired(self, page: Page) -> Response:
        """Back to the sign-in: no live two-factor session."""
        return self.site.redirect(page.href("/connexion", expired=1))

    # -- pages -------------------------------------------------------------------------------

    async def _root(self, request: Request) -> Response:
        page = self.site.page(request)
        return self.site.redirect(page.href("/connexion"), *page.cookies)

    async def _refuse(self, request: Request, page: Page, form: dict[str, str]) -> Response:
        t = page.t
        message, status = "", 200
        if request.method == "POST":
            key = f"refusal-ip:{peer(request)}"
            if self.signin.auth.limiter.blocked(key):
                message, status = page.say("too many attempts; try again in a minute"), 429
            else:
                done = await self.spaces.refuse(form.get("code", ""), self.clock(),
                                                peer=peer(request))  # fmt: skip
                if done is not None:
                    log.info("space_refused", space=done.id)
                    return self.site.notice(page, t["refused_title"], t["refused_text"])
                self.signin.auth.limiter.record(key)
                message, status = t["refuse_bad"], 400
        return self.site.render(page, "refus.html", t["refuse_title"], status,
                                error_text=message)  # fmt: skip

    async def _activate(self, request: Request, page: Page, form: dict[str, str]) -> Response:
        t = page.t
        message, status = "", 200
        if request.method == "POST":
            key = f"refusal-ip:{peer(request)}"
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
                                                      peer=peer(request))  # fmt: skip
                if done is not None and done.account_id is not None:
                    # The invitation code proved who this is: straight on to enrolment.
                    account = AccountInfo(done.account_id, done.address, True, False)
                    cookie = await self._start_session(account, ENROL)
                    return self.site.redirect(page.href("/2fa", activated=1), cookie)
                self.signin.auth.limiter.record(key)
                message, status = t["activate_bad"], 400
        return self.site.render(page, "activation.html", t["activate_title"], status,
                                error_text=message, min_password=MIN_PASSWORD)  # fmt: skip

    async def _signin(self, request: Request, page: Page, form: dict[str, str]) -> Response:
        t = page.t
        message, status = "", 200
        if request.method == "POST":
            address, password = form.get("address", ""), form.get("password", "")
            code = form.get("code", "").strip()
            try:
                account = await self.signin.first_factor(address, password, peer(request))
                enrolled = await self.spaces.totp_enrolled(account.id)
                if not enrolled:
                    # The password alone enrols nothing: a code goes to the personal address.
                    secret = await self.signin.send_enrol_code(account, peer(request))
                    return self.site.redirect(page.href("/verification"),
                                              self.site.session_cookie(secret))  # fmt: skip
                if not code:
                    raise SignInError(400, "code_required")
                await self.signin.second_factor(account, code, peer(request))
                await audit.record(self.signin.db, f"account:{account.id}", "espace.signin.ok",
                                   f"account:{account.id}", peer=peer(request))  # fmt: skip
                return self.site.redirect(page.href("/compte"),
                                          await self._start_session(account, PAGE))  # fmt: skip
            except SignInError as exc:
                message, status = page.say(exc.message), exc.status
        elif request.query_params.get("expired") == "1":
            message = t["session"]
        ok = t["signed_out"] if request.query_params.get("out") == "1" else ""
        return self.site.render(page, "connexion.html", t["signin_title"], status,
                                error_text=message, ok_text=ok,
                                address=form.get("address", ""))  # fmt: skip

    async def _verify(self, request: Request, page: Page, form: dict[str, str]) -> Response:
        """The code e-mailed after a password sign-in without a second factor (issue 17
        finding 8): right, it opens enrolment; the wrong ones are counted in the session."""
        t = page.t
        session = await self.site.session(request, VERIFY)
        if session is None:
            return self.expired(page)
        account = session.account
        message, status = "", 200
        if request.method == "POST":
            secret = request.cookies.get("hygie_session", "")
            try:
                await self.signin.check_enrol_code(secret, account, form.get("code", ""),
                                                   peer(request))  # fmt: skip
            except SignInError as exc:
                message, status = page.say(exc.message), exc.status
                if exc.message == "code_spent":
                    return self.site.render(page, "notice.html", t["verify_title"], status,
                                            text=message, error=True, back=True)  # fmt: skip
            else:
                cookie = await self._start_session(account, ENROL)
                return self.site.redirect(page.href("/2fa"), cookie)
        space = await self.spaces.by_account(account.id)
        shown = _masked(space.email) if space is not None else ""
        return self.site.render(page, "verification.html", t["verify_title"], status,
                                error_text=message,
                                intro=t["verify_intro"].format(email=shown))  # fmt: skip

    async def _enrol(self, request: Request, page: Page, form: dict[str, str]) -> Response:
        t = page.t
        session = await self.site.session(request, ENROL)
        if session is None:
            return self.expired(page)
        account = session.account
        message, status, ok = "", 200, ""
        if request.query_params.get("activated") == "1" and request.method == "GET":
            ok = t["activated"].format(address=account.address)
        found = await self.spaces.totp_secret(account.id)
        if request.method == "POST" and found is not None and not found[1]:
            try:
                await self.signin.confirm(account, form.get("code", ""), peer(request))
            except SignInError as exc:
                message, status = page.say(exc.message), exc.status
            else:
                cookie = await self._start_session(account, PAGE)
                return self.site.redirect(page.href("/compte", enrolled=1), cookie)
        if found is None or found[1]:
            try:
                enrolment = await self.signin.enrol(account, peer(request))
            except SignInError as exc:
                return self.site.notice(page, t["error"], page.say(exc.message), exc.status,
                                        error=True)  # fmt: skip
        else:
            enrolment = self.signin.enrolment(account, found[0])
        spaced = " ".join(enrolment.secret[i:i + 4] for i in range(0, len(enrolment.secret), 4))
        # The QR code is SVG that segno made from the secret: markup of ours, not of a user.
        return self.site.render(page, "2fa.html", t["enrol_title"], status, error_text=message,
                                ok_text=ok, qr=Markup(enrolment.svg()),  # noqa: S704
                                secret=spaced)  # fmt: skip

    async def signed_in(self, request: Request, page: Page) -> AccountInfo | None:
        """The account of a two-factor page session (set on ``page``), else None."""
        session = await self.site.session(request, PAGE)
        if session is None:
            return None
        page.account, page.session = session.account, session
        return session.account

    async def _account(self, request: Request, page: Page, form: dict[str, str]) -> Response:
        t = page.t
        account = await self.signed_in(request, page)
        if account is None:
            return self.expired(page)
        page.section = "/compte"
        ok, message, new_password = "", "", ""
        if request.query_params.get("enrolled") == "1":
            ok = t["enrol_done"]
        if request.method == "POST":
            action = form.get("action", "")
            if action == "create":
                try:
                    _, new_password = await self.spaces.app_password_create(
                        account.id, form.get("label", ""), self.clock(), peer=peer(request)
                    )
                except SpaceError as exc:
                    message = str(exc)
            elif action == "revoke":
                ident = row_id(form.get("id", "")) or 0
                if await self.spaces.app_password_revoke(account.id, ident, self.clock(),
                                                         peer=peer(request)):  # fmt: skip
                    ok = t["app_revoked"]
            elif action == "close" and form.get("confirm") == "yes":
                return await self._close(request, page, account)
            else:
                answer = await self.more_actions(request, page, account, form)
                if answer is not None:
                    return answer
        days = self.config.spaces.retention_days
        return self.site.render(
            page, "compte.html", t["account_title"], ok_text=ok, error_text=message,
            new_password=new_password, app_passwords=await self.spaces.app_passwords(account.id),
            close_intro=t["close_intro"].format(days=days),
            sessions=await self.site.sessions.active(account.id, self.clock()),
            **await self.more_settings(page, account),
        )  # fmt: skip

    async def more_actions(self, request: Request, page: Page, account: AccountInfo,
                           form: dict[str, str]) -> Response | None:  # fmt: skip
        """The settings' other forms (`server.http.espace.settings`)."""
        return None

    async def more_settings(self, page: Page, account: AccountInfo) -> dict[str, Any]:
        return {}

    async def _close(self, request: Request, page: Page, account: AccountInfo) -> Response:
        t = page.t
        space = await self.spaces.by_account(account.id)
        if space is None:
            return self.site.notice(page, t["error"], "no space", 404, error=True)
        retention = dt.timedelta(days=self.config.spaces.retention_days)
        closed = await self.spaces.close(space.ins, self.clock(), retention, peer=peer(request))
        if closed is None:
            return self.site.notice(page, t["error"], "no open space", 409, error=True)
        purge = self.clock() + retention
        page.account = None
        page.cookies.append(ENDED)
        return self.site.notice(page, t["closed_title"],
                                t["closed_text"].format(date=f"{purge:%Y-%m-%d}"))  # fmt: skip

    async def _signout(self, request: Request, page: Page, form: dict[str, str]) -> Response:
        """Every session and token of the account ends, not only this browser's cookie."""
        session = await self.site.session(request, *KINDS)
        if session is not None:
            await self.signin.sign_out(session.account, peer(request))
        return self.site.redirect(page.href("/connexion", out=1), ENDED)

    # -- the token endpoint and the JSON API ---------------------------------------------------

    async def _token(self, request: Request) -> Response:
        form = await form_of(request)
        try:
            account = await self.signin.sign_in(form.get("address", form.get("username", "")),
                                                form.get("password", ""), form.get("code", ""),
                                                peer(request))  # fmt: skip
        except SignInError as exc:
            code = "invalid_grant" if exc.status == 401 else "access_denied"
            return json_response(exc.status, {"error": code, "error_description": exc.message},
                                 PRIVATE)  # fmt: skip
        ttl = self.config.spaces.token_ttl_seconds
        token = await self.signin.token(account)
        return Response(token_response(token, ttl), 200, headers=PRIVATE, media_type=JSON)

    async def _api_account(self, request: Request) -> AccountInfo | Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return error(401, "a bearer token from /espace/token is required",
                         {**PRIVATE, "WWW-Authenticate": 'Bearer realm="hygie-espace"'})
        try:
            return await self.tokens.account(token.strip())
        except TokenRejected as exc:
            return error(401, exc.reason, PRIVATE)

    async def _api_signout(self, request: Request) -> Response:
        account = await self._api_account(request)
        if isinstance(account, Response):
            return account
        if request.method != "POST":
            return error(405, "POST /espace/api/sign-out", PRIVATE)
        await self.signin.sign_out(account, peer(request))
        return Response(status_code=204, headers=PRIVATE)

    async def _api_passwords(self, request: Request) -> Response:
        account = await self._api_account(request)
        if isinstance(account, Response):
            return account
        ident = request.path_params.get("ident", "")
        if request.method == "GET" and not ident:
            items = await self.spaces.app_passwords(account.id)
            return json_response(200, {"app_passwords": [
                {"id": i, "label": label, "created": created.isoformat()}
                for i, label, created in items]}, PRIVATE)  # fmt: skip
        if request.method == "POST" and not ident:
            try:
                new_id, secret = await self.spaces.app_password_create(
                    account.id, (await form_of(request)).get("label", ""), self.clock(),
                    peer=peer(request),
                )  # fmt: skip
            except SpaceError as exc:
                return error(400, str(exc), PRIVATE)
            return json_response(201, {"id": new_id, "password": secret}, PRIVATE)
        if request.method == "DELETE" and ident:
            number = row_id(ident)
            if number is None or not await self.spaces.app_password_revoke(
                account.id, number, self.clock(), peer=peer(request)
            ):
                return error(404, "no such app password", PRIVATE)
            return Response(status_code=204, headers=PRIVATE)
        return error(405, "GET, POST or DELETE /espace/api/app-passwords[/ID]", PRIVATE)

