"""The patients' space in the browser ("Mon espace santé", design.md §7; issues 11 and 22),
under ``/espace/``: server-rendered pages in French (English on request), without JavaScript.

- `pages`: the invitation's refusal and activation, the two-factor sign-in and enrolment, the
  account's settings, the token endpoint and the JSON API of app passwords;
- `messages`: the messaging (read, download, reply through the one pipeline);
- `apps`: the catalogue, connecting and revoking apps;
- `agenda`: the appointments, answered by iMIP through the one pipeline;
- `documents`: the dossier's documents and the access history;
- `site`: sessions, CSRF tokens, templates, cookies and headers shared by every page;
- `i18n`: every text, French and English.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from catalogue.consent import Consents
from server.auth.patient import PatientSignIn
from server.config import Config
from server.http.csrf import KEY_FILE, CsrfTokens
from server.http.espace.agenda import AgendaPages, Events
from server.http.espace.apps import AppPages
from server.http.espace.documents import DossierPages
from server.http.espace.messages import MayWrite, MessagePages, Submit
from server.http.espace.pages import EspacePages
from server.http.espace.site import HERE, PREFIX, Clock, Site
from storage.crypto import MasterKey
from storage.dossier import DossierIndex
from storage.mailstore import MailStore
from storage.spaces import SpaceStore


@dataclass
class EspaceWeb:
    site: Site
    pages: EspacePages
    dossier: DossierPages | None = None
    messages: MessagePages | None = None
    agenda: AgendaPages | None = None
    apps: AppPages | None = None

    def routes(self) -> list[BaseRoute]:
        static = StaticFiles(directory=str(HERE / "static"))
        sections = self.dossier.routes() if self.dossier is not None else []
        sections += self.messages.routes() if self.messages is not None else []
        sections += self.agenda.routes() if self.agenda is not None else []
        sections += self.apps.routes() if self.apps is not None else []
        return [Mount(PREFIX, routes=[*self.pages.routes(), *sections,
                                      Mount("/static", static)])]  # fmt: skip


def espace_web(
    config: Config, spaces: SpaceStore, signin: PatientSignIn,
    clock: Clock = lambda: dt.datetime.now(dt.UTC), *, dossier: DossierIndex | None = None,
    mail: Mail | None = None, consents: Consents | None = None,
) -> EspaceWeb:  # fmt: skip
    """The pages; with ``dossier``, the dossier's pages and the access history too; with
    ``mail``, the messaging."""
    csrf = CsrfTokens(config.path(KEY_FILE))
    csrf.key()  # like the issuer's key: made on first start, shared by every worker
    site = Site(csrf, signin.sessions, clock, config.spaces.token_ttl_seconds)
    pages = EspacePages(config, spaces, signin, site)
    documents = DossierPages(pages, signin.db, dossier) if dossier is not None else None
    messages = MessagePages(pages, mail.store, mail.master, mail.submit, mail.may_write) \
        if mail is not None else None  # fmt: skip
    appointments = AgendaPages(pages, mail.events, mail.submit) \
        if mail is not None and mail.events is not None else None  # fmt: skip
    apps = AppPages(pages, consents) if consents is not None else None
    return EspaceWeb(site, pages, documents, messages, appointments, apps)


@dataclass(frozen=True)
class Mail:
    """What the messaging pages need: the mailboxes, their keys, and the submission path."""

    store: MailStore
    master: MasterKey
    submit: Submit
    may_write: MayWrite
    events: Events | None = None  # the agenda's events of an account
