"""The patients' space in the browser ("Mon espace santé", design.md §7; issues 11 and 22),
under ``/espace/``: server-rendered pages in French (English on request), without JavaScript.

- `pages`: the invitation's refusal and activation, the two-factor sign-in and enrolment, the
  account's settings, the token endpoint and the JSON API of app passwords;
- `site`: sessions, CSRF tokens, templates, cookies and headers shared by every page;
- `i18n`: every text, French and English.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from server.auth.patient import PatientSignIn
from server.config import Config
from server.http.csrf import KEY_FILE, CsrfTokens
from server.http.espace.pages import EspacePages
from server.http.espace.site import HERE, PREFIX, Clock, Site
from storage.spaces import SpaceStore


@dataclass
class EspaceWeb:
    site: Site
    pages: EspacePages

    def routes(self) -> list[BaseRoute]:
        static = StaticFiles(directory=str(HERE / "static"))
        return [Mount(PREFIX, routes=[*self.pages.routes(), Mount("/static", static)])]


def espace_web(
    config: Config, spaces: SpaceStore, signin: PatientSignIn,
    clock: Clock = lambda: dt.datetime.now(dt.UTC),
) -> EspaceWeb:  # fmt: skip
    csrf = CsrfTokens(config.path(KEY_FILE))
    csrf.key()  # like the issuer's key: made on first start, shared by every worker
    site = Site(csrf, signin.sessions, clock, config.spaces.token_ttl_seconds)
    return EspaceWeb(site, EspacePages(config, spaces, signin, site))
