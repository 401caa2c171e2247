"""``hygie serve``: open the store, start every listener, run until SIGTERM/SIGINT.

On a stop signal the listeners close first (no new connections), in-flight deliveries finish
(at most ``[server] shutdown_grace_seconds``), the group-commit writer drains, and the process
exits 0. This is one process; ``hygie serve --workers N`` runs it N times under a supervisor
(:mod:`server.workers`), each worker on the sockets the supervisor hands down.

Several processes (workers, nodes) share nothing but the database: folder changes and cache
invalidations travel as notices (:mod:`storage.notices`), and the periodic work that must run
once per cluster (patient-space jobs, CRL upkeep, fetching the trusted-domain list) runs under
a lease (:mod:`storage.leases`); queue entries, after-commit jobs and reminders are leased
row by row.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import os
import signal
import socket
import ssl
import time
from asyncio import sslproto
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from catalogue.access import AppGate, CertificateStatus
from catalogue.consent import Consents
from catalogue.registry import Catalogue
from pki.ca import CaFiles, CertificateAuthority
from pki.errors import PkiError
from pki.tls import server_context
from pki.verify import ClientCertificateChecker
from server.auth.authenticator import Authenticator
from server.auth.oauth import TokenVerifier
from server.auth.patient import (
    CodeUnsent,
    PatientIssuer,
    PatientSignIn,
    PatientTokens,
    SecondFactorPasswords,
)
from server.config import CA_SECRET, Config
from server.delivery.mss_headers import MssHeaderRules
from server.delivery.outbox import OutboxRunner
from server.delivery.patients import PatientRules
from server.delivery.pipeline import Pipeline
from server.delivery.receipts import DeliveryReports
from server.delivery.senders import FromRules
from server.delivery.usage import UsageCounting
from server.espace.notify import NotifyError, Smarthost, enrol_code_mail
from server.espace.spaces import PatientNotices, SpaceJobs
from server.http.agenda import AgendaFeed, agenda_route
from server.http.catalogue import CatalogueApi, catalogue_route
from server.http.dossier import DossierApi, dossier_route
from server.http.espace import EspacePages, espace_route
from server.http.fhir import fhir_route
from server.http.limits import HttpLimits
from server.http.metrics import metrics_route
from server.http.pki import PkiPublisher
from server.http.server import Handler, HttpServer, Request, Response
from server.imap.server import ImapServer
from server.imap.summary import ImapSummaries
from server.ops import pki_address
from server.ops.metrics import ServerMetrics
from server.ops.usage import REACH_SECRET, UsageRecorder
from server.outbound.dkim import DkimSigner
from server.outbound.queue import OutboundQueue
from server.outbound.trust import PeerRevocation, TrustedDomains, load_anchors
from server.smtp.relay import RelayHandler, relay_context, start_relay
from server.smtp.submission import SubmissionHandler, start_submission
from server.workflows.agenda import AgendaWorkflow
from server.workflows.catalogue import CatalogueWorkflow
from server.workflows.consent import ConsentStep
from server.workflows.dossier import DossierWorkflow
from storage.accounts import AccountError, create_account, find_account
from storage.agenda import AgendaStore
from storage.blobs import open_blob_store
from storage.correspondents import CorrespondentBook
from storage.crypto import MasterKey
from storage.db import Database
from storage.dossier import DossierIndex
from storage.leases import Leased, get_document, put_document
from storage.mailstore import MailStore
from storage.spaces import SpaceStore

log = structlog.get_logger("hygie.server")
TLS_READ_BUFFER = 32 * 1024
#: How often the CRL's expiry is checked (by the one process holding the lease).
CRL_CHECK_SECONDS = 600.0
#: How often the lease of the trusted-domain list's fetching is renewed or taken over.
TRUST_LEASE_SECONDS = 60.0
#: The cluster's copy of a trusted-domain list fetched from a URL (storage.leases).
TRUST_DOCUMENT = "trusted-domains"


@dataclass
class Services:
    config: Config
    db: Database
    master: MasterKey
    store: MailStore
    auth: Authenticator


async def open_services(config: Config) -> Services:
    master = MasterKey.load(config.path(config.storage.master_key_file))
    blobs = open_blob_store(config.storage.blob_store, config.path(config.storage.blob_dir))
    db = Database(
        config.database_url,
        blobs,
        group_commit_max=config.storage.group_commit_max,
        echo=config.database.echo,
    )
    await db.start()
    store = MailStore(
        db,
        summaries=ImapSummaries(),
        cache_bytes=config.storage.message_cache_mib * 2**20,
    )
    auth = Authenticator(
        db, config.auth, certificates=_certificate_checker(config), tokens=_token_verifier(config)
    )
    return Services(config, db, master, store, auth)


def _certificate_checker(config: Config) -> ClientCertificateChecker | None:
    if not config.auth.certificate_login:
        return None
    try:
        return ClientCertificateChecker.for_ca(config.path("pki"))
    except PkiError as exc:
        log.warning("certificate_login_unavailable", error=str(exc))
        return None


def _token_verifier(config: Config) -> TokenVerifier | None:
    if not config.oauth.enabled:
        return None
    verifier = TokenVerifier(config)
    if not verifier.jwks.is_url and not config.path(config.oauth.jwks).exists():
        log.warning("token_login_unavailable", error="no JWKS file")
        return None
    if not config.oauth.issuer and not config.server.test_mode:
        # `hygie token issue` mints tokens for any address, patients' included, without their
        # second factor: fine for a demo, not for patients in production (set [oauth] issuer).
        log.warning("development_token_issuer", advice="set [oauth] issuer for production")
    return verifier


def _client_ca_files(config: Config) -> tuple[Path, ...]:
    """The CAs a client certificate must chain to: our root and intermediate."""
    if not config.auth.certificate_login:
        return ()
    files = CaFiles(config.path("pki"))
    if not (files.root_cert.exists() and files.intermediate_cert.exists()):
        return ()
    return (files.root_cert, files.intermediate_cert)


def _small_tls_buffers() -> None:
    """asyncio's SSLProtocol reads into a 256 KiB buffer per connection (Python 3.11), which
    dominates the memory of thousands of idle IMAP sessions. TLS records are at most 16 KiB,
    so 32 KiB loses nothing but a few more read calls on large uploads."""
    if getattr(sslproto.SSLProtocol, "max_size", 0) > TLS_READ_BUFFER:
        sslproto.SSLProtocol.max_size = TLS_READ_BUFFER


def _send_tls_alerts() -> None:
    """asyncio (Python 3.11) drops the TLS alert OpenSSL writes when a server handshake fails
    (e.g. ``unknown_ca`` for a client certificate from another CA): it closes the socket
    without sending what is in the outgoing buffer, and the client sees only an unexpected
    EOF. Flushing it first lets the client say why it was refused."""
    protocol: Any = sslproto.SSLProtocol
    if getattr(protocol, "_hygie_alerts", False):
        return

    def _do_handshake(self: Any) -> None:
        try:
            self._sslobj.do_handshake()
        except sslproto.SSLAgainErrors:
            self._process_outgoing()
        except ssl.SSLError as exc:
            with contextlib.suppress(Exception):
                self._process_outgoing()
            self._on_handshake_complete(exc)
        else:
            self._on_handshake_complete(None)

    protocol._do_handshake = _do_handshake
    protocol._hygie_alerts = True


def http_limits(config: Config) -> HttpLimits:
    return HttpLimits(
        max_connections=config.http.max_connections,
        max_connections_per_peer=config.http.max_connections_per_peer,
    )


async def _start_pki_http(
    config: Config, master: MasterKey, db: Database
) -> tuple[list[asyncio.Server], asyncio.Task[None] | None]:
    """The CA's publication point (CRL, OCSP, CA certificates) on plain HTTP."""
    if not config.http.pki_port:
        return [], None
    ca = CertificateAuthority.load(config.path("pki"), master.derive_secret(CA_SECRET))
    publisher = PkiPublisher(ca)
    await asyncio.to_thread(publisher.refresh_crl)

    async def pki(request: Request) -> Response:
        status, ctype, body = await publisher.respond(
            request.method.encode(), request.target, request.body
        )
        return Response(status, ctype, body, [("Cache-Control", "max-age=60")])

    server = await HttpServer([(publisher.prefix + "/", pki)], limits=http_limits(config)).listen(
        config.server.listen, config.http.pki_port
    )
    # One process of the cluster keeps the CRL fresh (a request for an expiring one still
    # writes a new one wherever it arrives).
    crl = Leased(db, "crl", CRL_CHECK_SECONDS, publisher.refresh_crl_now)
    task = asyncio.get_running_loop().create_task(crl.run(), name="crl")
    return [server], task


async def _cluster_trust_copy(db: Database, trusted: TrustedDomains, max_age: float = 0) -> bool:
    """Load the list another process fetched, if it is younger than ``max_age`` seconds (0:
    any age); False if there is none."""
    found = await get_document(db, TRUST_DOCUMENT)
    if found is None:
        return False
    data, updated = found
    if max_age and time.time() - updated > max_age:
        return False
    return trusted.load(data)


class TrustFetching:
    """A trusted-domain list at an https:// URL is fetched by one process of the cluster
    (the lease ``trusted-domains``), every ``[relay] trusted_domains_refresh_seconds``; it
    stores the copy in the database and tells the others (notice ``trust``), which read it."""

    def __init__(self, config: Config, db: Database, trusted: TrustedDomains) -> None:
        self.db = db
        self.trusted = trusted
        self.every = float(config.relay.trusted_domains_refresh_seconds)
        db.notices.on("trust", self._changed)
        self._reading: set[asyncio.Task[bool]] = set()

    def _changed(self, _key: str) -> None:
        task = asyncio.ensure_future(_cluster_trust_copy(self.db, self.trusted))
        self._reading.add(task)
        task.add_done_callback(self._reading.discard)

    async def fetch_if_due(self) -> None:
        found = await get_document(self.db, TRUST_DOCUMENT)
        if found is not None and time.time() - found[1] < self.every:
            return  # fetched by this or another process less than a period ago
        await asyncio.to_thread(self.trusted.refresh)
        if self.trusted.fetched is not None:
            await put_document(self.db, TRUST_DOCUMENT, self.trusted.fetched)
            self.db.notices.send("trust")


async def _trust(
    config: Config, db: Database
) -> tuple[TrustedDomains, PeerRevocation, list[str]]:
    """The trusted-domain list, loaded once before we listen, and the relay trust anchors:
    our root and intermediate, then the other operators' CAs."""
    ca_file = config.relay.trusted_domains_ca_file
    trusted = TrustedDomains(
        config.relay.trusted_domains,
        data_dir=config.data_dir,
        local_domains=config.server.domains,
        ca_file=config.path(ca_file) if ca_file else None,
    )
    if not trusted.is_url or not await _cluster_trust_copy(db, trusted):
        await asyncio.to_thread(trusted.refresh)
        if trusted.is_url and trusted.fetched is not None:
            await put_document(db, TRUST_DOCUMENT, trusted.fetched)
    files = CaFiles(config.path("pki"))
    paths = [files.root_cert, files.intermediate_cert]
    paths += [config.path(p) for p in config.relay.trust_anchors]
    anchors = load_anchors(paths)
    pems = [path.read_text("ascii") for path in paths]
    return trusted, PeerRevocation(anchors, config.relay.crl_refresh_seconds), pems


@dataclass
class Espace:
    jobs: SpaceJobs
    route: Handler
    step: PatientNotices


def _espace(
    config: Config, db: Database, master: MasterKey, auth: Authenticator,
    workflow: DossierWorkflow,
) -> Espace:  # fmt: skip
    """The patient spaces (issue 11): the pipeline's step and the filing hook that owe
    patients a notification, the patient issuer's tokens and the app-password rule for the
    authenticator, the ``/espace/`` pages, and the jobs loop (opening, purge, personal e-mail)."""
    store = SpaceStore(db, master)
    smarthost = Smarthost(config)
    jobs = SpaceJobs(config, store, smarthost)
    workflow.on_filed.append(jobs.filed)
    issuer = PatientIssuer(config)
    issuer.key()  # created on first start, before any request needs it
    signin = PatientSignIn(config, db, store, auth, issuer)
    if smarthost.configured:  # the one-time codes before an enrolment

        async def send_code(email: str, code: str, minutes: int, now: dt.datetime) -> None:
            try:
                await smarthost.send(enrol_code_mail(config, email, code, minutes, now))
            except NotifyError as exc:
                raise CodeUnsent(exc.reason) from None

        signin.send_code = send_code
    auth.patient_tokens = PatientTokens(config, issuer, signin.sessions)
    auth.password_filter = SecondFactorPasswords(db, store).filter
    pages = EspacePages(config, store, signin)
    pages.csrf.key()  # like the issuer's key: made on first start, shared by every worker
    return Espace(jobs, espace_route(pages), PatientNotices(jobs))


async def _catalogue(
    config: Config, services: Services, pipeline: Pipeline
) -> tuple[AppGate, CatalogueWorkflow, Handler]:
    """The catalogue (issue 10): the consent gate every path asks, the ``catalogue@`` step and
    the ``/catalogue/`` HTTPS route. The ``catalogue@<domain>`` mailbox is opened if an older
    data directory lacks it."""
    db = services.db
    service = f"{CatalogueWorkflow.SERVICE}@{config.server.domains[0]}"
    if await find_account(db, service) is None:
        with contextlib.suppress(AccountError):  # another node opened it meanwhile
            await create_account(db, services.master, service, None)
    pki_dir = config.path("pki")
    catalogue = Catalogue(db, pki_dir, local_domain=config.is_local_domain)
    status = CertificateStatus(services.auth.certificates, pki_dir)
    consents = Consents(db, catalogue, certificate=status)
    route = catalogue_route(CatalogueApi(consents, services.auth))
    return AppGate(consents), CatalogueWorkflow(config, catalogue, pipeline.notice), route


async def serve(
    config: Config, stop: asyncio.Event | None = None, *, control_fd: int | None = None
) -> None:
    """Run until ``stop`` is set (or SIGTERM/SIGINT). ``control_fd``: a worker's end of the
    supervisor's socket pair (:mod:`server.workers`): ``ready`` is written on it once every
    listener listens, and its end (the supervisor died) stops the worker."""
    stop = stop or asyncio.Event()
    _small_tls_buffers()
    _send_tls_alerts()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        # No signal handlers outside the main thread (tests run serve() in one): the caller's
        # `stop` event is then the only way to stop.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    tls = server_context(
        config.path(config.tls.cert_file),
        config.path(config.tls.key_file),
        min_version=config.tls.min_version,
        client_ca_files=_client_ca_files(config),
    )
    services = await open_services(config)
    await services.db.notices.listen()  # folder changes and invalidations from the others
    # Issue 24: certificates naming a publication point peers cannot reach are refused there.
    for problem in pki_address.problems(config):
        log.warning("pki_address_mismatch", problem=problem)
    db, master, store = services.db, services.master, services.store
    trusted, revocation, anchor_pems = await _trust(config, db)
    metrics = ServerMetrics()  # issue 11 item 4: usage indicators and /metrics
    metrics.observe_read_path(store)
    signer = (
        DkimSigner(config.path(config.dkim.key_dir), config.dkim.selector, config.server.domains)
        if config.dkim.sign
        else None
    )
    pipeline = Pipeline(config, db, master, store, is_trusted=trusted.is_trusted, signer=signer)
    pipeline.metrics = metrics
    queue = OutboundQueue(config, db, master, revocation, trusted, pipeline.notice)
    pipeline.queued = queue.wake.set
    outbox = OutboxRunner(pipeline, db, master)

    # The steps, in their order (design.md §2 step 3; docs/architecture.md).
    gate, catalogue, catalogue_api = await _catalogue(config, services, pipeline)
    patients = PatientRules(config, CorrespondentBook(db, master), trusted.is_trusted)
    dossier_index = DossierIndex(db, master)
    workflow = DossierWorkflow(config, store, dossier_index, pipeline)
    # INVISIBLE_PATIENT documents that older versions filed in patients' Dossier folders
    # leave them before any patient can sign in (MSSanté test case 17).
    await workflow.withdraw_invisible()
    agenda = AgendaWorkflow(config, store, AgendaStore(db, master), pipeline)
    usage = UsageRecorder(db, master.derive_secret(REACH_SECRET), metrics)
    workflow.apps = agenda.apps = gate
    workflow.usage = usage
    espace = _espace(config, db, master, services.auth, workflow)
    pipeline.steps = [
        MssHeaderRules(), FromRules(db), ConsentStep(gate), workflow, agenda, catalogue,
        patients, DeliveryReports(config, pipeline.notice), UsageCounting(usage), espace.step,
    ]  # fmt: skip
    api = DossierApi(db, store, dossier_index, services.auth)
    api.apps = gate
    handler = SubmissionHandler(
        config, services.auth, store, pipeline, trusted=trusted.is_trusted, patients=patients,
        apps=gate, metrics=metrics,
    )  # fmt: skip
    submission = await start_submission(config, handler, tls)
    relay_servers: list[asyncio.Server] = []
    if config.relay.port:
        relay_tls = relay_context(
            server_context(
                config.path(config.tls.cert_file),
                config.path(config.tls.key_file),
                min_version=config.tls.min_version,
            ),
            anchor_pems,
        )
        relay_handler = RelayHandler(config, store, pipeline, trusted, revocation, metrics)
        relay_server, _ = await start_relay(config, relay_handler, relay_tls)
        relay_servers.append(relay_server)
    loop_tasks = [
        loop.create_task(queue.run(), name="queue"),
        loop.create_task(outbox.run(), name="outbox"),
    ]
    if trusted.is_url:  # fetched by one process of the cluster, read by the others
        fetching = TrustFetching(config, db, trusted)
        lease = Leased(db, "trusted-domains", TRUST_LEASE_SECONDS, fetching.fetch_if_due)
        loop_tasks.append(loop.create_task(lease.run(), name="trust"))
    else:  # a file of this machine: every process looks at its date every few seconds
        loop_tasks.append(loop.create_task(trusted.keep_fresh(5.0), name="trust"))
    loop_tasks.append(loop.create_task(agenda.run_reminders(), name="agenda-reminders"))
    spaces = Leased(db, "patient-spaces", config.spaces.job_seconds, espace.jobs.run_once)
    loop_tasks.append(loop.create_task(spaces.run(), name="patient-spaces"))
    imap = ImapServer(config, services.store, services.auth, services.master, tls)
    imap.metrics = metrics
    imap_servers = await imap.start()
    http_servers, crl_task = await _start_pki_http(config, services.master, db)
    if config.http.https_port:
        feed = AgendaFeed(agenda, services.auth)
        scrape = metrics_route(metrics, services.db, config.data_dir)
        https = HttpServer([("/fhir/", fhir_route(services.db)), ("/dossier/", dossier_route(api)),
                            ("/agenda/", agenda_route(feed)), ("/catalogue/", catalogue_api),
                            ("/metrics", scrape), ("/espace/", espace.route)],
                           limits=http_limits(config))  # fmt: skip
        http_servers.append(
            await https.listen(config.server.listen, config.http.https_port, ssl=tls)
        )
    log.info(
        "ready",
        submission=config.smtp.submission_port,
        submission_tls=config.smtp.submission_tls_port,
        imap=config.imap.port,
        imap_tls=config.imap.tls_port,
        relay=config.relay.port,
        https=config.http.https_port,
        database=services.db.dialect,
    )
    # Start-up objects (modules, SQLAlchemy metadata, TLS and CA state) stay for the process's
    # life: out of the collector's sight, a full collection no longer stalls every session
    # (~100 ms under load before).
    gc.freeze()
    control = _tell_supervisor(control_fd, stop)
    await stop.wait()

    log.info("stopping")
    submission.stop_accepting()
    for srv in imap_servers + http_servers + relay_servers:
        srv.close()
    if crl_task is not None:
        crl_task.cancel()
    for task in loop_tasks:
        task.cancel()
    await asyncio.gather(*loop_tasks, return_exceptions=True)
    await queue.close()
    grace = config.server.shutdown_grace_seconds
    await submission.close_connections(grace)
    await pipeline.drain(grace)
    await outbox.drain(grace)
    await espace.jobs.drain()  # the notification flags of the last deliveries
    await imap.close()
    await usage.flush()
    await services.store.settle()  # owner seals of first reads, before the writer stops
    await services.db.close()
    if control is not None:
        with contextlib.suppress(Exception):
            loop.remove_reader(control.fileno())
        control.close()
    log.info("stopped")


def _tell_supervisor(control_fd: int | None, stop: asyncio.Event) -> socket.socket | None:
    """A worker: say ``ready``, and stop when the supervisor is gone (its end closes)."""
    if control_fd is None:
        return None
    control = socket.socket(fileno=control_fd)
    control.setblocking(False)
    try:
        control.send(b"ready %d\n" % os.getpid())
    except OSError:  # the supervisor is gone already
        stop.set()
        return control

    def readable() -> None:
        try:
            data = control.recv(64)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            log.warning("supervisor_gone")
            asyncio.get_running_loop().remove_reader(control.fileno())
            stop.set()

    asyncio.get_running_loop().add_reader(control.fileno(), readable)
    return control
