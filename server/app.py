"""``hygie serve``: open the store, start every listener, run until SIGTERM/SIGINT.

On a stop signal the listeners close first (no new connections), in-flight deliveries finish
(at most ``[server] shutdown_grace_seconds``), the group-commit writer drains, and the process
exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from asyncio import sslproto
from dataclasses import dataclass

import structlog

from pki.ca import CertificateAuthority
from pki.tls import server_context
from server.auth import Authenticator
from server.config import CA_SECRET, Config
from server.delivery import LocalDelivery
from server.http.pki import PkiPublisher
from server.imap.server import ImapServer
from server.smtp.submission import SubmissionHandler, start_submission
from storage.blobs import open_blob_store
from storage.crypto import MasterKey
from storage.db import Database
from storage.mailstore import MailStore

log = structlog.get_logger("hygie.server")
TLS_READ_BUFFER = 32 * 1024


@dataclass
class Services:
    config: Config
    db: Database
    master: MasterKey
    store: MailStore
    auth: Authenticator
    delivery: LocalDelivery


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
    store = MailStore(db)
    return Services(config, db, master, store, Authenticator(db, config.auth), LocalDelivery(store))


def _small_tls_buffers() -> None:
    """asyncio's SSLProtocol reads into a 256 KiB buffer per connection (Python 3.11), which
    dominates the memory of thousands of idle IMAP sessions. TLS records are at most 16 KiB,
    so 32 KiB loses nothing but a few more read calls on large uploads."""
    if getattr(sslproto.SSLProtocol, "max_size", 0) > TLS_READ_BUFFER:
        sslproto.SSLProtocol.max_size = TLS_READ_BUFFER


async def _start_pki_http(
    config: Config, master: MasterKey
) -> tuple[list[asyncio.Server], asyncio.Task[None] | None]:
    """The CA's publication point (CRL, OCSP, CA certificates) on plain HTTP."""
    if not config.http.pki_port:
        return [], None
    ca = CertificateAuthority.load(config.path("pki"), master.derive_secret(CA_SECRET))
    publisher = PkiPublisher(ca)
    await asyncio.to_thread(publisher.refresh_crl)
    server = await asyncio.start_server(
        publisher.handle, config.server.listen, config.http.pki_port
    )
    task = asyncio.get_running_loop().create_task(publisher.keep_crl_fresh(), name="crl")
    return [server], task


async def serve(config: Config, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    _small_tls_buffers()
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
    )
    services = await open_services(config)
    handler = SubmissionHandler(config, services.auth, services.store, services.delivery)
    submission = await start_submission(config, handler, tls)
    imap = ImapServer(config, services.store, services.auth, services.master, tls)
    imap_servers = await imap.start()
    http_servers, crl_task = await _start_pki_http(config, services.master)
    log.info(
        "ready",
        submission=config.smtp.submission_port,
        submission_tls=config.smtp.submission_tls_port,
        imap=config.imap.port,
        imap_tls=config.imap.tls_port,
        database=services.db.dialect,
    )
    # Start-up objects (modules, SQLAlchemy metadata, TLS and CA state) stay for the process's
    # life: out of the collector's sight, a full collection no longer stalls every session
    # (~100 ms under load before).
    gc.freeze()
    await stop.wait()

    log.info("stopping")
    submission.stop_accepting()
    for srv in imap_servers + http_servers:
        srv.close()
    if crl_task is not None:
        crl_task.cancel()
    grace = config.server.shutdown_grace_seconds
    await submission.close_connections(grace)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(services.delivery.idle.wait(), timeout=grace)
    await imap.close()
    await services.db.close()
    log.info("stopped")
