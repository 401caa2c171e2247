"""Wiring of the patient spaces into ``hygie serve`` (issue 11): one call from `server.app`.

It adds the delivery and filing hooks that owe patients a notification, the patient issuer's
tokens and the app-password rule to the authenticator, the ``/espace/`` pages to the HTTPS
route table, and the jobs loop (opening, purge, personal e-mail)."""

from __future__ import annotations

from dataclasses import dataclass

from server.auth.authenticator import Authenticator
from server.auth.patient import PatientIssuer, PatientSignIn, PatientTokens, SecondFactorPasswords
from server.config import Config
from server.delivery.local import LocalDelivery
from server.espace.notify import Smarthost
from server.espace.spaces import SpaceJobs
from server.http.espace import EspacePages, espace_route
from server.http.server import Handler
from server.workflows.dossier import DossierWorkflow
from storage.crypto import MasterKey
from storage.db import Database
from storage.spaces import SpaceStore


@dataclass
class Espace:
    jobs: SpaceJobs
    route: Handler


def install(
    config: Config, db: Database, master: MasterKey, auth: Authenticator,
    delivery: LocalDelivery, workflow: DossierWorkflow,
) -> Espace:  # fmt: skip
    store = SpaceStore(db, master)
    jobs = SpaceJobs(config, store, Smarthost(config))
    delivery.observers.append(jobs.delivered)
    workflow.on_filed.append(jobs.filed)
    issuer = PatientIssuer(config)
    issuer.key()  # created on first start, before any request needs it
    auth.patient_tokens = PatientTokens(config, issuer)
    auth.password_filter = SecondFactorPasswords(db, store).filter
    signin = PatientSignIn(config, db, store, auth, issuer)
    return Espace(jobs, espace_route(EspacePages(config, store, signin)))
