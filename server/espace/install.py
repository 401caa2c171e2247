"""Wiring of the patient spaces into ``hygie serve`` (issue 11): one call from `server.app`.

It gives the pipeline the step and the filing hook that owe patients a notification, the
patient issuer's tokens and the app-password rule to the authenticator, the ``/espace/`` pages
to the HTTPS route table, and the jobs loop (opening, purge, personal e-mail)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from server.auth.authenticator import Authenticator
from server.auth.patient import PatientIssuer, PatientSignIn, PatientTokens, SecondFactorPasswords
from server.config import Config
from server.delivery.message import Message
from server.delivery.pipeline import Envelope, Step
from server.espace.notify import Smarthost
from server.espace.spaces import SpaceJobs
from server.workflows.dossier import DossierWorkflow
from storage.crypto import MasterKey
from storage.db import Database
from storage.mailstore import Recipient
from storage.spaces import SpaceStore


class PatientNotices(Step):
    """Once a message is in a patient's mailbox, the patient is owed a notification (sent by
    the jobs to their personal address, without content)."""

    name = "patient-notices"

    def __init__(self, jobs: SpaceJobs) -> None:
        self.jobs = jobs

    async def committed(
        self, message: Message, envelope: Envelope, inbox: Sequence[Recipient]
    ) -> None:
        self.jobs.delivered(inbox)


@dataclass
class Espace:
    jobs: SpaceJobs
    step: PatientNotices
    signin: PatientSignIn
    store: SpaceStore


def install(
    config: Config, db: Database, master: MasterKey, auth: Authenticator,
    workflow: DossierWorkflow,
) -> Espace:  # fmt: skip
    store = SpaceStore(db, master)
    jobs = SpaceJobs(config, store, Smarthost(config))
    workflow.on_filed.append(jobs.filed)
    issuer = PatientIssuer(config)
    issuer.key()  # created on first start, before any request needs it
    signin = PatientSignIn(config, db, store, auth, issuer)
    signin.smarthost = jobs.smarthost  # the one-time codes before an enrolment
    auth.patient_tokens = PatientTokens(config, issuer, signin.sessions)
    auth.password_filter = SecondFactorPasswords(db, store).filter
    return Espace(jobs, PatientNotices(jobs), signin, store)
