"""``hygie init`` and ``hygie serve``: create a data directory (configuration, database, keys,
the operator's CA, the server certificate, DKIM keys, the service mailboxes, and with
``--demo`` the demo accounts), then run the servers on it (design.md §7)."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from directory.ins import is_patient_domain
from pki.errors import PkiError
from server.cli.common import _audit, _config, _save, _with_db, fail, run
from server.config import CA_SECRET, CONFIG_FILE, Config, HttpSection, render_config

if TYPE_CHECKING:
    from cryptography import x509

    from pki.ca import CertificateAuthority
    from storage.db import Database

DEMO_PASSWORD = "hygie-demo-2026"  # noqa: S105 (the documented demo password)
DEMO_ACCOUNTS = (
    "jean.dupont@{domain}",
    "claire.martin@{domain}",
    "secretariat.cardiologie@{domain}",
    "279035121518989@patient.{domain}",
)
DEMO_FILE = "demo-accounts.txt"

_OWNED = (
    CONFIG_FILE,
    "hygie.db",
    "hygie.db-wal",
    "hygie.db-shm",
    "keys",
    "pki",
    "tls",
    "blobs",
    "oauth",
    "trust",
    "dkim",
    "demo",
    DEMO_FILE,
)


_HOST = re.compile(r"(?=.{1,253}$)[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\]")


@click.command()
@click.option("--domain", default="hygie.test", show_default=True, help="Mail domain served here.")
@click.option("--hostname", default=None, help="Server host name (default: mail.<domain>).")
@click.option(
    "--ca-name",
    default=None,
    help="This operator's CA name, 30 characters at most (default: the domain in capitals): "
    "AC RACINE <NAME> ELEMENTAIRE over AC <NAME> ELEMENTAIRE ORGANISATIONS.",
)
@click.option(
    "--pki-host",
    default=None,
    help="Public host name at which peers fetch this CA's CRL and OCSP answers, written into "
    "every certificate (default: the host name).",
)
@click.option(
    "--pki-port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Public port of that publication point (default: [http] pki_port, 8080).",
)
@click.option("--demo", is_flag=True, help="Add demo practitioners and a demo patient.")
@click.option("--force", is_flag=True, help="Replace an existing data directory's contents.")
@click.pass_context
def init(
    ctx: click.Context,
    domain: str,
    hostname: str | None,
    ca_name: str | None,
    pki_host: str | None,
    pki_port: int | None,
    demo: bool,
    force: bool,
) -> None:
    """Create a data directory: configuration, database, keys, CA and server certificate."""
    from pki.ca import ca_name as pki_ca_name
    from pki.ca import default_ca_name
    from storage.accounts import AccountError, normalize_address

    data: Path = ctx.obj["data"]
    domain = domain.strip().lower().rstrip(".")
    try:
        normalize_address(f"postmaster@{domain}")
    except AccountError:
        fail(f"not a valid mail domain: {domain!r}")
    hostname = (hostname or f"mail.{domain}").lower()
    try:
        operator = pki_ca_name(ca_name) if ca_name is not None else default_ca_name(domain)
    except PkiError as exc:
        fail(str(exc))
    public_url = ""
    if pki_host is not None or pki_port is not None:
        host = (pki_host or hostname).strip().lower().rstrip(".")
        if not _HOST.fullmatch(host):
            fail(f"not a host name: {pki_host!r}")
        public_url = f"http://{host}:{pki_port or HttpSection().pki_port}/pki"
    present = [name for name in _OWNED if (data / name).exists()]
    if present and not force:
        fail(
            f"{data} already holds a Hygie data directory ({present[0]}); use --force to replace it"
        )
    for name in present:
        path = data / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    domains = [domain, f"patient.{domain}"]
    text = render_config(domain, hostname, public_url).replace(
        f'domains = ["{domain}"]', "domains = [" + ", ".join(f'"{d}"' for d in domains) + "]"
    )
    (data / CONFIG_FILE).write_text(text, "utf-8")
    config = _config(ctx)
    run(_init(config, hostname, domains, demo, operator))


async def _init(
    config: Config, hostname: str, domains: list[str], demo: bool, operator: str
) -> None:
    from directory.demo import load_demo
    from directory.patients import open_patient_mailbox
    from pki.ca import init_ca, write_server_credentials
    from server.auth.oauth import DevIssuer
    from server.outbound.dkim import ensure_key
    from server.outbound.trust import render_trusted_domains
    from storage.accounts import create_account
    from storage.crypto import MasterKey
    from storage.db import migrate

    master = MasterKey.create(config.path(config.storage.master_key_file))
    await migrate(config.database_url)
    ca = init_ca(
        config.path("pki"),
        master.derive_secret(CA_SECRET),
        operator=operator,
        base_url=config.pki_base_url,
    )
    config.path(config.tls.key_file).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    issued = ca.issue_server([hostname, *domains, "localhost"], ["127.0.0.1", "::1"])
    write_server_credentials(
        issued, config.path(config.tls.cert_file), config.path(config.tls.key_file)
    )
    DevIssuer(config).ensure()
    for domain in domains:
        ensure_key(config.path(config.dkim.key_dir), domain, config.dkim.algorithm)
    trust_file = config.path(config.relay.trusted_domains)
    if not config.relay.trusted_domains.startswith("https://") and not trust_file.exists():
        # The MSSanté "liste blanche" format; an operator replaces it with the national list.
        trust_file.parent.mkdir(parents=True, exist_ok=True)
        trust_file.write_bytes(render_trusted_domains(domains))
    await _audit(config, "pki.issue", issued, detail={"profile": "SERV"})
    # The operator's DMP service address (design.md §6): messages to it file documents.
    db = await _with_db(config)
    try:
        await create_account(db, master, f"dmp@{domains[0]}", None)
        # The catalogue's service address (issue 10): editors send manifests to it.
        await create_account(db, master, f"catalogue@{domains[0]}", None)
    finally:
        await db.close()
    click.echo(f"Initialised {config.data_dir} for {', '.join(domains)} (host {hostname}).")
    click.echo(f"  database:    {config.database_url.split('://', 1)[0]}")
    click.echo(f"  CA:          {_common_name(ca.root_certificate)} > "
               f"{_common_name(ca.intermediate_certificate)}")  # fmt: skip
    click.echo(f"  trust this CA: {config.path(config.tls.ca_file)}")
    click.echo(
        f"  CRL and OCSP: {ca.base_url}/ (written into every certificate: peers fetch your CRL "
        f"there; served here on port {config.http.pki_port})"
    )
    if not config.http.pki_public_url:
        click.echo(
            "  (change the host name or pki_port later only with `hygie pki address --update`; "
            "--pki-host/--pki-port set a public address of their own)"
        )
    if demo:
        db = await _with_db(config)
        try:
            lines = []
            await load_demo(db, domains[0])  # registers the demo patient (QUAL) first
            for pattern in DEMO_ACCOUNTS:
                address = pattern.format(domain=domains[0])
                mailbox_domain = address.rsplit("@", 1)[1]
                if is_patient_domain(mailbox_domain):  # the rule of every patient mailbox
                    await open_patient_mailbox(
                        db, master, address, DEMO_PASSWORD, patient_domain=mailbox_domain,
                        test_mode=config.server.test_mode,
                    )  # fmt: skip
                else:
                    await create_account(db, master, address, DEMO_PASSWORD)
                lines.append(f"{address}  password: {DEMO_PASSWORD}")
            lines += await _demo_certificates(config, db, ca, domains[0])
        finally:
            await db.close()
        path = config.data_dir / DEMO_FILE
        path.write_text("\n".join(lines) + "\n", "utf-8")
        path.chmod(0o600)
        click.echo("Demo accounts:")
        for line in lines:
            click.echo(f"  {line}")


#: The demo service's SIRET.
DEMO_SIRET = "73282932000074"


async def _demo_certificates(
    config: Config, db: Database, ca: CertificateAuthority, domain: str
) -> list[str]:
    """A PER certificate for jean.dupont and an ORG one for the cardiology secretariat, bound
    to their mailboxes, as PKCS#12 files protected by the demo password."""
    from directory.demo import JEAN
    from pki.verify import identity_of
    from storage.accounts import IDNAT, SUBJECT, bind_identity

    rpps = JEAN[1:]  # the directory demo's Jean Dupont, IdNat 8 + RPPS
    out = config.data_dir / "demo"
    passphrase = DEMO_PASSWORD.encode()
    person = ca.issue_person(rpps, "Jean", "Dupont", organisation="Hôpital Hygie")
    org = ca.issue_org("Secretariat Cardiologie", "Hôpital Hygie", siret=DEMO_SIRET)
    lines = []
    for issued, address, stem in (
        (person, f"jean.dupont@{domain}", "jean.dupont"),
        (org, f"secretariat.cardiologie@{domain}", "secretariat.cardiologie"),
    ):
        _save(issued, out, stem, passphrase, quiet=True)
        who = identity_of(issued.certificate)
        if who.idnat is not None:
            await bind_identity(db, address, IDNAT, who.idnat)
        else:
            await bind_identity(db, address, SUBJECT, who.subject)
        await _audit(config, "pki.issue", issued, db=db, detail={"mailbox": address})
        lines.append(f"{address}  certificate: {out / stem}.p12 (passphrase: {DEMO_PASSWORD})")
    return lines


# -- serve ----------------------------------------------------------------------------------


@click.command()
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Worker processes (default: [server] workers; 0: one per core).")
@click.option("--worker", "worker_slot", default=None, hidden=True)
@click.option("--inherit", default="", hidden=True)
@click.option("--control", type=int, default=None, hidden=True)
@click.pass_context
def serve(
    ctx: click.Context,
    workers: int | None,
    worker_slot: str | None,
    inherit: str,
    control: int | None,
) -> None:
    """Run the SMTP, IMAP and HTTPS servers until SIGTERM or SIGINT, in as many worker
    processes as cores (--workers, [server] workers)."""
    from server.app import serve as serve_forever
    from server.listeners import ListenError
    from server.listeners import inherit as inherit_sockets
    from server.logs import configure_logging
    from server.workers import supervise, worker_count

    config = _config(ctx)
    if worker_slot is not None:  # started by the supervisor (server.workers)
        configure_logging(config.log.level, config.log.format, worker=f"worker {worker_slot}")
        try:
            fds = {int(p): int(f) for p, f in (i.split("=") for i in inherit.split(",") if i)}
        except ValueError:
            fail("--inherit: PORT=FD,… expected")
        inherit_sockets(fds)
        run(serve_forever(config, control_fd=control))
        return
    count = worker_count(config, workers)
    supervisor = "supervisor" if count > 1 else None
    configure_logging(config.log.level, config.log.format, worker=supervisor)
    _banner(config, count)
    if count == 1:
        run(serve_forever(config))
        return
    try:
        code = supervise(config, count)
    except ListenError as exc:
        fail(str(exc))
    sys.exit(code)


def _banner(config: Config, workers: int = 1) -> None:
    from server.workers import cores

    listen = config.server.listen
    machine = cores()
    if workers == 1:
        processes = f"one process ({machine} core{'s' if machine > 1 else ''} here; --workers N)"
    else:
        share = "one per core" if workers == machine else f"this machine has {machine} cores"
        processes = f"{workers} worker processes ({share}; --workers N, [server] workers)"
    lines = [
        f"Hygie serving {config.data_dir} ({', '.join(config.server.domains)})",
        f"  Processes        {processes}",
        f"  SMTP submission  {listen}:{config.smtp.submission_port} (STARTTLS), "
        f"{listen}:{config.smtp.submission_tls_port} (TLS)",
        f"  IMAP             {listen}:{config.imap.port} (STARTTLS), "
        f"{listen}:{config.imap.tls_port} (TLS)",
        f"  Relay            {listen}:{config.relay.port} (STARTTLS, client certificate of a "
        "trusted operator required)",
        f"  CA publication   http://{listen}:{config.http.pki_port}/pki/ (CRL, OCSP)",
        f"  HTTPS            https://{listen}:{config.http.https_port}/ : /fhir/ (directory, FHIR "
        "R4), /dossier/, /agenda/, /catalogue/ (bearer token), /espace/ (patients' pages), "
        "/metrics (operator token)",
        f"  TLS host name    {config.server.hostname} (also: localhost, 127.0.0.1)",
        f"  CA to trust      {config.path(config.tls.ca_file).resolve()}",
    ]
    demo = config.data_dir / DEMO_FILE
    if demo.exists():
        lines.append("  Demo accounts:")
        lines += [f"    {line}" for line in demo.read_text("utf-8").splitlines() if line]
    click.echo("\n".join(lines), err=False)
    sys.stdout.flush()


def _common_name(certificate: x509.Certificate) -> str:
    from cryptography.x509.oid import NameOID

    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else certificate.subject.rfc4514_string()
