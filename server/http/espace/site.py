"""What every page of the patient's space shares: the language, the session, the CSRF token,
the templates (Jinja2, autoescaped: a value is escaped where it is shown, by default, once),
the cookies and the security headers.

Cookies are ``Secure; HttpOnly; SameSite=Strict`` on ``/espace``. The page session is a random
secret in the ``hygie_session`` cookie naming a row of `storage.patient_sessions` (the database
holds its digest): it lives while the row does, so ending the row ends the session in every
process. Every POST form carries a CSRF token bound to the session (`server.http.csrf`).
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from server.http.csrf import CsrfTokens
from server.http.espace.i18n import TEXT
from server.http.responses import PRIVATE
from storage.accounts import AccountInfo
from storage.patient_sessions import PatientSessions, Session

PREFIX = "/espace"
CSRF_COOKIE = "hygie_csrf"
SESSION_COOKIE = "hygie_session"
HERE = Path(__file__).parent
Clock = Callable[[], dt.datetime]

#: The signed-in sections, in the order of the menu: (path, message id).
SECTIONS = (
    ("/messages", "nav_messages"), ("/documents", "nav_documents"), ("/agenda", "nav_agenda"),
    ("/applications", "nav_apps"), ("/historique", "nav_history"), ("/compte", "nav_settings"),
)  # fmt: skip


#: The patients' time zone: dates are stored in UTC and shown in French time.
ZONE = ZoneInfo("Europe/Paris")


def local_time(when: dt.datetime) -> dt.datetime:
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).astimezone(ZONE)


def templates() -> Jinja2Templates:
    found = Jinja2Templates(directory=str(HERE / "templates"))
    assert found.env.autoescape is True or callable(found.env.autoescape)
    found.env.filters["local"] = local_time
    found.env.trim_blocks = True
    found.env.lstrip_blocks = True
    return found


def language(request: Request, form: dict[str, str] | None = None) -> str:
    wanted = request.query_params.get("lang", "")
    if wanted in TEXT:
        return wanted
    if form and form.get("lang") in TEXT:
        return form["lang"]
    for part in request.headers.get("accept-language", "").split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in TEXT:
            return tag
    return "fr"


def csrf_binding(request: Request) -> str:
    """What a form's CSRF token is bound to: the session cookie's secret when there is one,
    else the pre-session nonce cookie ("" when neither is set)."""
    return request.cookies.get(SESSION_COOKIE, "") or request.cookies.get(CSRF_COOKIE, "")


async def form_of(request: Request) -> dict[str, str]:
    """The fields of a POST: a form (urlencoded or multipart, files left out) or a JSON object."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json":
        try:
            data = json.loads(await request.body() or b"{}")
        except (ValueError, RecursionError):  # RecursionError: nested too deeply
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    try:
        form = await request.form()
    except Exception:  # a malformed multipart body: no fields
        return {}
    return {k: v for k, v in form.multi_items() if not isinstance(v, UploadFile)}


@dataclass
class Page:
    """One page being answered: its language and texts, its CSRF token, the cookies to set,
    and the account once signed in."""

    request: Request
    lang: str
    csrf: str
    cookies: list[tuple[str, str, int | None]] = field(default_factory=list)
    account: AccountInfo | None = None
    session: Session | None = None
    section: str = ""

    @property
    def t(self) -> dict[str, str]:
        return TEXT[self.lang]

    @property
    def other(self) -> str:
        return "en" if self.lang == "fr" else "fr"

    @property
    def path(self) -> str:
        return self.request.url.path

    def href(self, path: str, **query: Any) -> str:
        extra = "".join(f"&{k}={v}" for k, v in query.items())
        return f"{PREFIX}{path}?lang={self.lang}{extra}"

    def say(self, message: str, **values: Any) -> str:
        """The person's words for ``message`` (raw text: the template escapes it)."""
        text = self.t.get(message, message)
        return text.format(**values) if values else text

    def nav(self) -> list[tuple[str, str, bool]]:
        return [(self.href(p), self.t[key], p == self.section) for p, key in SECTIONS]


class Site:
    """The machinery of the pages: templates, CSRF tokens, sessions."""

    def __init__(self, csrf: CsrfTokens, sessions: PatientSessions, clock: Clock,
                 ttl: int) -> None:  # fmt: skip
        self.templates = templates()
        self.csrf = csrf
        self.sessions = sessions
        self.clock = clock
        self.ttl = ttl

    def page(self, request: Request, form: dict[str, str] | None = None) -> Page:
        binding = csrf_binding(request)
        cookies: list[tuple[str, str, int | None]] = []
        if len(binding) < 20:  # neither a session nor a nonce yet: a nonce for the forms
            binding = secrets.token_urlsafe(24)
            cookies.append((CSRF_COOKIE, binding, None))
        return Page(request, language(request, form), self.csrf.token(binding), cookies)

    def csrf_ok(self, request: Request, form: dict[str, str]) -> bool:
        return self.csrf.check(csrf_binding(request), form.get("csrf", ""))

    async def session(self, request: Request, *kinds: str) -> Session | None:
        """The live session of the cookie, of one of ``kinds``, else None (never seen, ended
        by a sign-out, a password change, a second-factor reset, or expired)."""
        secret = request.cookies.get(SESSION_COOKIE, "")
        return await self.sessions.find(secret, kinds, self.clock())

    def render(self, page: Page, template: str, title: str, status: int = 200,
               **context: Any) -> Response:  # fmt: skip
        response = self.templates.TemplateResponse(
            page.request, template, {"page": page, "t": page.t, "title": title, **context},
            status_code=status, headers=PRIVATE,
        )  # fmt: skip
        return with_cookies(response, page.cookies)

    def notice(self, page: Page, title: str, text: str, status: int = 200, *,
               error: bool = False) -> Response:  # fmt: skip
        return self.render(page, "notice.html", title, status, text=text, error=error)

    def redirect(self, location: str, *cookies: tuple[str, str, int | None]) -> Response:
        return with_cookies(RedirectResponse(location, 303, headers=PRIVATE), list(cookies))

    def session_cookie(self, secret: str) -> tuple[str, str, int | None]:
        return (SESSION_COOKIE, secret, self.ttl)


def with_cookies(response: Response, cookies: list[tuple[str, str, int | None]]) -> Response:
    for name, value, age in cookies:
        response.set_cookie(name, value, max_age=age, path=PREFIX, secure=True, httponly=True,
                            samesite="strict")  # fmt: skip
    return response


ENDED: tuple[str, str, int | None] = (SESSION_COOKIE, "", 0)

Handler = Callable[[Request, Page, dict[str, str]], Awaitable[Response]]
