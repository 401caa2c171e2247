"""The ``hygie`` command: ``init``, ``serve``, ``user …``, ``pki …``, ``token …``, ``audit``
(design.md §7).

Every command takes ``--data DIR`` (default ``$HYGIE_DATA``, else ``./hygie-data``), prints a
one-line error and exits non-zero on bad input.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any, TypeVar

import click
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from directory.demo import JEAN as DEMO_JEAN
from directory.demo import load_demo
from directory.ins import is_patient_domain
from directory.patients import MailboxRefused, open_patient_mailbox, patient_matricule
from pki.ca import (
    CertificateAuthority,
    IssuedCertificate,
    default_ca_name,
    init_ca,
    write_server_credentials,
)
from pki.ca import ca_name as pki_ca_name
from pki.errors import PkiError
from pki.registry import CaSettings
from pki.verify import identity_of
from server.auth.oauth import DevIssuer
from server.cli import directory as directory_cli
from server.cli.common import CliError, _config, _with_db, fail, run
from server.config import (
    CA_SECRET,
    CONFIG_FILE,
    Config,
    ConfigError,
    HttpSection,
    data_dir_from,
    load_config,
    render_config,
)
from server.logs import configure_logging
from server.ops import pki_address
from server.outbound.dkim import DkimError, dns_record, ensure_key, key_path
from server.outbound.trust import render_trusted_domains
from storage import audit, outbound
from storage.accounts import (
    IDNAT,
    SUBJECT,
    AccountError,
    bind_identity,
    create_account,
    find_account,
    identities_of,
    list_accounts,
    normalize_address,
    set_password,
)
from storage.crypto import CryptoError, MasterKey
from storage.db import Database, migrate

T = TypeVar("T")
DEMO_PASSWORD = "hygie-demo-2026"  # noqa: S105 (the documented demo password)
DEMO_ACCOUNTS = (
    "jean.dupont@{domain}",
    "claire.martin@{domain}",
    "secretariat.cardiologie@{domain}",
    "279035121518989@patient.{domain}",
)
DEMO_FILE = "demo-accounts.txt"




@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--data",
    "data",
    metavar="DIR",
    default=None,
    help="Data directory (default: $HYGIE_DATA, else ./hygie-data).",
)
@click.pass_context
def main(ctx: click.Context, data: str | None) -> None:
    """Hygie: a secure health-messaging operator (MSSanté-style SMTP/IMAP over TLS)."""
    os.umask(0o077)  # everything Hygie writes is private to its user
    ctx.ensure_object(dict)
    ctx.obj["data"] = data_dir_from(data)


# -- init -----------------------------------------------------------------------------------

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


@main.command()
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


#: The demo practitioner's RPPS number (the directory demo's Jean Dupont) and the demo
#: service's SIRET.
DEMO_RPPS = DEMO_JEAN[1:]
DEMO_SIRET = "73282932000074"


async def _demo_certificates(
    config: Config, db: Database, ca: CertificateAuthority, domain: str
) -> list[str]:
    """A PER certificate for jean.dupont and an ORG one for the cardiology secretariat, bound
    to their mailboxes, as PKCS#12 files protected by the demo password."""
    out = config.data_dir / "demo"
    passphrase = DEMO_PASSWORD.encode()
    person = ca.issue_person(DEMO_RPPS, "Jean", "Dupont", organisation="Hôpital Hygie")
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


async def _audit(
    config: Config,
    action: str,
    issued: IssuedCertificate | None = None,
    *,
    target: str = "",
    db: Database | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """One audit-log entry for an operator command (the OS user is the actor)."""
    entry = dict(detail or {})
    if issued is not None:
        cert = issued.certificate
        target = target or f"certificate:{cert.serial_number:X}"
        entry.setdefault("subject", cert.subject.rfc4514_string())
        entry.setdefault("not_after", cert.not_valid_after_utc.isoformat())
    own = db is None
    handle = db if db is not None else await _with_db(config)
    try:
        await audit.record(handle, f"cli:{getpass.getuser()}", action, target, detail=entry)
    finally:
        if own:
            await handle.close()


# -- serve ----------------------------------------------------------------------------------


@main.command()
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


# -- user -----------------------------------------------------------------------------------


@main.group()
def user() -> None:
    """Manage accounts (mailboxes)."""


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        fail("empty password")
    return password


@user.command("add")
@click.argument("address")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.pass_context
def user_add(ctx: click.Context, address: str, password_stdin: bool) -> None:
    """Create the account ADDRESS with its INBOX and key pair."""
    config = _config(ctx)
    try:
        address = normalize_address(address)
    except AccountError as exc:
        fail(str(exc))
    domain = address.rsplit("@", 1)[1]
    if not config.is_local_domain(domain):
        served = ", ".join(config.server.domains)
        fail(f"{domain} is not a domain of this server ({served})")
    patient = is_patient_domain(domain)
    if patient:
        # <INS matricule>@patient.<domain>: the key is checked before the password is asked.
        try:
            patient_matricule(address, domain)
        except MailboxRefused as exc:
            fail(str(exc))
    password = _read_password(password_stdin)

    async def add() -> None:
        master = MasterKey.load(config.path(config.storage.master_key_file))
        db = await _with_db(config)
        try:
            if patient:  # the QUAL rule of every patient mailbox (design.md §5, case 12)
                info = await open_patient_mailbox(
                    db, master, address, password, patient_domain=domain,
                    test_mode=config.server.test_mode,
                )  # fmt: skip
            else:
                info = await create_account(db, master, address, password)
        except MailboxRefused as exc:
            raise CliError(str(exc)) from None
        finally:
            await db.close()
        click.echo(f"created {info.address}")

    run(add())


@user.command("list")
@click.pass_context
def user_list(ctx: click.Context) -> None:
    """List accounts."""
    config = _config(ctx)

    async def show() -> None:
        db = await _with_db(config)
        try:
            for info in await list_accounts(db):
                flags = [] if info.has_password else ["no-password"]
                if info.disabled:
                    flags.append("disabled")
                click.echo(info.address + (f"  ({', '.join(flags)})" if flags else ""))
        finally:
            await db.close()

    run(show())


@user.command("passwd")
@click.argument("address")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.pass_context
def user_passwd(ctx: click.Context, address: str, password_stdin: bool) -> None:
    """Set the password of ADDRESS."""
    config = _config(ctx)
    password = _read_password(password_stdin)

    async def change() -> None:
        db = await _with_db(config)
        try:
            await set_password(db, address, password)
        finally:
            await db.close()
        click.echo(f"password changed for {normalize_address(address)}")

    run(change())


# -- pki ------------------------------------------------------------------------------------


@main.group()
@click.pass_context
def pki(ctx: click.Context) -> None:
    """The certificate authority."""
    if ctx.invoked_subcommand == "address":
        return  # says it itself
    try:
        config = load_config(ctx.obj["data"])
    except ConfigError:
        return  # the subcommand reports it
    for problem in pki_address.problems(config):
        click.echo(f"hygie: warning: {problem}", err=True)


@pki.command("address")
@click.option(
    "--update",
    is_flag=True,
    help="Write the configured address into the certificates issued from now on, and "
    "re-issue the server certificate with it.",
)
@click.pass_context
def pki_address_command(ctx: click.Context, update: bool) -> None:
    """Where peers fetch this CA's CRL and OCSP answers: the configured address, the one the
    CA writes into certificates, and whether they agree."""
    config = _config(ctx)
    configured = config.pki_base_url
    published = CaSettings.load(config.path("pki")).base_url
    click.echo(f"configured:  {configured}/  ([http] pki_public_url, else "
               "http://<hostname>:<pki_port>/pki)")  # fmt: skip
    click.echo(f"published:   {published}/  (in the CA settings and the certificates it issues)")
    cert = pki_address.server_certificate(config)
    if cert is not None:
        click.echo(f"server certificate: {', '.join(pki_address.crl_points(cert)) or 'no CRL'}")
    found = pki_address.problems(config)
    if not update:
        for problem in found:
            click.echo(f"hygie: warning: {problem}", err=True)
        if not found:
            click.echo("they agree")
        return
    if not found:
        click.echo("they agree: nothing to update")
        return
    ca = _ca_or_fail(ctx)
    try:
        ca = ca.move_publication(configured)
        previous = pki_address.server_certificate(config)
        renewed = _renew_server_certificate(config, ca)
    except PkiError as exc:
        fail(str(exc))
    run(_audit(config, "pki.address", target="pki", detail={"from": published, "to": ca.base_url}))
    run(_audit(config, "pki.issue", renewed, detail={"profile": "SERV", "reason": "address"}))
    click.echo(f"certificates issued from now on name {ca.base_url}/ (CRL, OCSP, CA issuers)")
    click.echo(
        f"re-issued the server certificate (serial {renewed.certificate.serial_number:X}) into "
        f"{config.path(config.tls.cert_file)}: restart `hygie serve` to present it"
    )
    replaced = previous.serial_number if previous is not None else None
    if replaced is not None:
        click.echo(
            f"the previous one ({replaced:X}) stays valid for peers until the restart; then "
            f"`hygie pki revoke {replaced:X} --reason superseded`"
        )
    stale = [
        rec
        for rec in ca.issued()
        if rec.status == "valid"
        and rec.profile != "OCSP"
        and rec.serial not in (renewed.certificate.serial_number, replaced)
        and CaSettings(base_url=ca.base_url).crl_url
        not in pki_address.crl_points(ca.registry.certificate(rec.serial_hex))
    ]
    if stale:
        click.echo(
            f"{len(stale)} other valid certificate(s) still name the old address; clients that "
            "check them online need new ones (`hygie pki issue …`, then `hygie pki revoke` the "
            "old serial):"
        )
        for rec in stale:
            click.echo(f"  {rec.serial_hex}  {rec.profile:<6} {rec.subject}")


def _renew_server_certificate(config: Config, ca: CertificateAuthority) -> IssuedCertificate:
    """A new server certificate with the names and key type of the current one."""
    current = pki_address.server_certificate(config)
    if current is None:
        raise PkiError(f"cannot read the server certificate {config.path(config.tls.cert_file)}")
    try:
        alt = current.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise PkiError("the server certificate names no host (no subjectAltName)") from None
    names = alt.get_values_for_type(x509.DNSName)
    addresses = [str(ip) for ip in alt.get_values_for_type(x509.IPAddress)]
    key_type = "ec" if isinstance(current.public_key(), ec.EllipticCurvePublicKey) else "rsa"
    issued = ca.issue_server(names, addresses, key_type=key_type)
    write_server_credentials(
        issued, config.path(config.tls.cert_file), config.path(config.tls.key_file)
    )
    return issued


def _common_name(certificate: x509.Certificate) -> str:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else certificate.subject.rfc4514_string()


@pki.command("ca-cert")
@click.pass_context
def pki_ca_cert(ctx: click.Context) -> None:
    """Print the root CA certificate (PEM): what clients must trust."""
    config = _config(ctx)
    path = config.path(config.tls.ca_file)
    try:
        click.echo(path.read_text("ascii"), nl=False)
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")


def load_ca(config: Config) -> CertificateAuthority:
    master = MasterKey.load(config.path(config.storage.master_key_file))
    return CertificateAuthority.load(config.path("pki"), master.derive_secret(CA_SECRET))


REASONS = {
    "unspecified": x509.ReasonFlags.unspecified,
    "keyCompromise": x509.ReasonFlags.key_compromise,
    "cACompromise": x509.ReasonFlags.ca_compromise,
    "affiliationChanged": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessationOfOperation": x509.ReasonFlags.cessation_of_operation,
    "certificateHold": x509.ReasonFlags.certificate_hold,
}


def _ca_or_fail(ctx: click.Context) -> CertificateAuthority:
    try:
        return load_ca(_config(ctx))
    except (PkiError, CryptoError) as exc:
        fail(str(exc))


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _save(
    issued: IssuedCertificate,
    out: Path,
    stem: str,
    passphrase: bytes | None,
    *,
    quiet: bool = False,
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.crt").write_bytes(issued.chain_pem())
    _write_private(out / f"{stem}.key", issued.key_pem(passphrase))
    written = [f"{stem}.crt", f"{stem}.key"]
    if passphrase is not None:
        _write_private(out / f"{stem}.p12", issued.pkcs12(passphrase, stem.encode()))
        written.append(f"{stem}.p12")
    serial = format(issued.certificate.serial_number, "X")
    if not quiet:
        click.echo(f"issued serial {serial}: {', '.join(str(out / w) for w in written)}")


def _passphrase(from_stdin: bool) -> bytes:
    if from_stdin:
        value = sys.stdin.readline().rstrip("\r\n")
    else:
        value = click.prompt("PKCS#12 passphrase", hide_input=True, confirmation_prompt=True)
    if len(value) < 8:
        fail("the passphrase must have at least 8 characters")
    return value.encode()


@pki.group("issue")
def pki_issue() -> None:
    """Issue a certificate (key, chain and, for client certificates, a PKCS#12 file)."""


_out = click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("."),
    show_default=True,
    help="Directory for the key and certificate files.",
)
_key = click.option(
    "--key-type", type=click.Choice(["rsa", "ec"]), default="rsa", show_default=True
)
_stdin = click.option(
    "--passphrase-stdin", is_flag=True, help="Read the PKCS#12 passphrase from standard input."
)
_mailbox = click.option(
    "--mailbox",
    "mailboxes",
    multiple=True,
    metavar="ADDRESS",
    help="Let this certificate log in to ADDRESS (SASL EXTERNAL); repeatable.",
)


def _issue_client(
    ctx: click.Context,
    issued: IssuedCertificate,
    profile: str,
    mailboxes: tuple[str, ...],
    out: Path,
    stem: str,
    passphrase: bytes,
) -> None:
    """Save a client certificate, bind it to its mailboxes and audit the issuance."""
    config = _config(ctx)
    who = identity_of(issued.certificate)

    async def record() -> list[str]:
        db = await _with_db(config)
        bound = []
        try:
            for address in mailboxes:
                if who.idnat is not None:
                    info = await bind_identity(db, address, IDNAT, who.idnat)
                else:
                    info = await bind_identity(db, address, SUBJECT, who.subject)
                bound.append(info.address)
            await _audit(
                config, "pki.issue", issued, db=db, detail={"profile": profile, "mailboxes": bound}
            )
        finally:
            await db.close()
        return bound

    if mailboxes:
        # Check the mailboxes before writing any file, so a typo leaves nothing behind.
        async def check() -> None:
            db = await _with_db(config)
            try:
                for address in mailboxes:
                    if await find_account(db, address) is None:
                        raise CliError(f"no such account: {address}")
            finally:
                await db.close()

        run(check())
    _save(issued, out, stem, passphrase)
    for address in run(record()):
        click.echo(f"bound to {address}")


@pki_issue.command("server")
@click.argument("hostnames", nargs=-1, required=True)
@_out
@_key
@click.pass_context
def pki_issue_server(
    ctx: click.Context, hostnames: tuple[str, ...], out: Path, key_type: str
) -> None:
    """SERV certificate for HOSTNAMES (serverAuth)."""
    ca = _ca_or_fail(ctx)
    try:
        issued = ca.issue_server(list(hostnames), key_type=key_type)
    except PkiError as exc:
        fail(str(exc))
    _save(issued, out, hostnames[0], None)
    run(_audit(_config(ctx), "pki.issue", issued, detail={"profile": "SERV"}))


@pki_issue.command("org")
@click.option("--service", required=True, help="Service name (CN).")
@click.option("--organisation", required=True, help="Organisation name (O).")
@click.option("--siret", default=None, help="SIRET (OU = 3 + SIRET).")
@click.option("--finess", default=None, help="FINESS (OU = 1 + FINESS).")
@_out
@_key
@_stdin
@_mailbox
@click.pass_context
def pki_issue_org(
    ctx: click.Context,
    service: str,
    organisation: str,
    siret: str | None,
    finess: str | None,
    out: Path,
    key_type: str,
    passphrase_stdin: bool,
    mailboxes: tuple[str, ...],
) -> None:
    """ORG certificate for an organisation's service or application (clientAuth)."""
    if (siret is None) == (finess is None):
        fail("give exactly one of --siret and --finess")
    ca = _ca_or_fail(ctx)
    passphrase = _passphrase(passphrase_stdin)
    try:
        issued = ca.issue_org(service, organisation, siret=siret, finess=finess, key_type=key_type)
    except PkiError as exc:
        fail(str(exc))
    stem = service.replace(" ", "_").lower()
    _issue_client(ctx, issued, "ORG", mailboxes, out, stem, passphrase)


@pki_issue.command("person")
@click.option("--rpps", required=True, help="RPPS number (IdNat = 8 + RPPS).")
@click.option("--given-name", required=True)
@click.option("--surname", required=True)
@click.option("--organisation", default=None)
@_out
@_key
@_stdin
@_mailbox
@click.pass_context
def pki_issue_person(
    ctx: click.Context,
    rpps: str,
    given_name: str,
    surname: str,
    organisation: str | None,
    out: Path,
    key_type: str,
    passphrase_stdin: bool,
    mailboxes: tuple[str, ...],
) -> None:
    """PER certificate for a practitioner (clientAuth)."""
    ca = _ca_or_fail(ctx)
    passphrase = _passphrase(passphrase_stdin)
    try:
        issued = ca.issue_person(
            rpps, given_name, surname, organisation=organisation, key_type=key_type
        )
    except PkiError as exc:
        fail(str(exc))
    _issue_client(ctx, issued, "PER", mailboxes, out, f"8{rpps}", passphrase)


@pki.command("list")
@click.pass_context
def pki_list(ctx: click.Context) -> None:
    """Certificates issued by this CA."""
    ca = _ca_or_fail(ctx)
    for rec in ca.issued():
        until = f"{rec.not_after:%Y-%m-%d}"
        line = f"{rec.serial_hex}  {rec.profile:<6} {rec.status:<8} until {until}  {rec.subject}"
        click.echo(line)


@pki.command("show")
@click.argument("serial")
@click.pass_context
def pki_show(ctx: click.Context, serial: str) -> None:
    """One issued certificate: its record and PEM."""
    ca = _ca_or_fail(ctx)
    rec = ca.find(serial)
    if rec is None:
        fail(f"no certificate with serial {serial}")
    click.echo(f"serial:   {rec.serial_hex}\nprofile:  {rec.profile}\nsubject:  {rec.subject}")
    click.echo(f"valid:    {rec.not_before:%Y-%m-%d %H:%M} – {rec.not_after:%Y-%m-%d %H:%M} UTC")
    click.echo(
        f"status:   {rec.status}"
        + (
            f" ({rec.reason.value if rec.reason else 'unspecified'}, "
            f"{rec.revoked_at:%Y-%m-%d %H:%M} UTC)"
            if rec.revoked_at
            else ""
        )
    )


@pki.command("revoke")
@click.argument("serial")
@click.option(
    "--reason", type=click.Choice(sorted(REASONS)), default="unspecified", show_default=True
)
@click.pass_context
def pki_revoke(ctx: click.Context, serial: str, reason: str) -> None:
    """Revoke SERIAL and publish a new CRL."""
    ca = _ca_or_fail(ctx)
    try:
        rec = ca.revoke(serial, REASONS[reason])
    except PkiError as exc:
        fail(str(exc))
    run(
        _audit(
            _config(ctx),
            "pki.revoke",
            target=f"certificate:{rec.serial_hex}",
            detail={"reason": reason, "subject": rec.subject},
        )
    )
    click.echo(f"revoked {rec.serial_hex} ({reason}); CRL updated")


@pki.command("crl")
@click.pass_context
def pki_crl(ctx: click.Context) -> None:
    """Regenerate the CRL and print it (PEM)."""
    ca = _ca_or_fail(ctx)
    crl = ca.write_crl()
    click.echo(crl.public_bytes(serialization.Encoding.PEM).decode(), nl=False)


# -- user bind ------------------------------------------------------------------------------


@user.command("bind")
@click.argument("address")
@click.option("--idnat", default=None, help="A practitioner's IdNat (8 + RPPS).")
@click.option("--subject", default=None, help="An ORG/APP certificate subject (RFC 4514).")
@click.option(
    "--certificate", "serial", default=None, help="An issued certificate, by serial (hex)."
)
@click.pass_context
def user_bind(
    ctx: click.Context,
    address: str,
    idnat: str | None,
    subject: str | None,
    serial: str | None,
) -> None:
    """Let an identity log in to ADDRESS without a password (certificate or token login)."""
    if sum(v is not None for v in (idnat, subject, serial)) != 1:
        fail("give exactly one of --idnat, --subject and --certificate")
    config = _config(ctx)
    kind, value = (IDNAT, idnat) if idnat is not None else (SUBJECT, subject)
    if serial is not None:
        ca = _ca_or_fail(ctx)
        try:
            who = identity_of(ca.registry.certificate(serial))
        except PkiError as exc:
            fail(str(exc))
        kind, value = (IDNAT, who.idnat) if who.idnat is not None else (SUBJECT, who.subject)
    assert value is not None

    async def bind() -> None:
        db = await _with_db(config)
        try:
            info = await bind_identity(db, address, kind, value)
            await audit.record(
                db,
                f"cli:{getpass.getuser()}",
                "account.bind",
                info.address,
                detail={"kind": kind, "value": value},
            )
        finally:
            await db.close()
        click.echo(f"{info.address} now accepts {kind} {value}")

    run(bind())


@user.command("show")
@click.argument("address")
@click.pass_context
def user_show(ctx: click.Context, address: str) -> None:
    """An account and the identities bound to it."""
    config = _config(ctx)

    async def show() -> None:
        db = await _with_db(config)
        try:
            info = await find_account(db, address)
            if info is None:
                raise CliError(f"no such account: {address}")
            click.echo(f"address:   {info.address}")
            click.echo(f"password:  {'set' if info.has_password else 'none'}")
            click.echo(f"disabled:  {'yes' if info.disabled else 'no'}")
            for kind, value in await identities_of(db, info.id):
                click.echo(f"{kind + ':':<10} {value}")
        finally:
            await db.close()

    run(show())


# -- token ----------------------------------------------------------------------------------


@main.group()
def token() -> None:
    """Bearer tokens for SASL OAUTHBEARER/XOAUTH2 (development issuer)."""


@token.command("issue")
@click.argument("subject")
@click.option("--ttl", default=300, show_default=True, help="Lifetime in seconds.")
@click.option("--audience", default=None, help="Audience (default: [oauth] audience).")
@click.pass_context
def token_issue(ctx: click.Context, subject: str, ttl: int, audience: str | None) -> None:
    """Print a signed JWT for SUBJECT (a mailbox address or an IdNat).

    For development and tests: the token is signed by this server's own issuer key, so it
    is accepted only while [oauth] points at the development issuer (the default).
    """
    config = _config(ctx)
    if ttl < 1 or ttl > 86400:
        fail("--ttl must be between 1 and 86400 seconds")
    if config.oauth.jwks.startswith("https://"):
        fail("[oauth] jwks points at another provider; its tokens come from that provider")
    if "@" in subject:
        try:
            subject = normalize_address(subject)
        except AccountError as exc:
            fail(str(exc))
    try:
        value = DevIssuer(config).issue(subject, ttl_seconds=ttl, audience=audience)
    except (OSError, ValueError) as exc:
        fail(f"cannot sign a token: {exc}")
    click.echo(value)


# -- queue ----------------------------------------------------------------------------------


@main.group()
def queue() -> None:
    """The outbound queue: mail waiting for other operators."""


@queue.command("list")
@click.pass_context
def queue_list(ctx: click.Context) -> None:
    """Queued recipients: id, next attempt, attempts, size, recipient, last error."""
    config = _config(ctx)

    async def show() -> None:
        db = await _with_db(config)
        try:
            items = await outbound.listing(db)
        finally:
            await db.close()
        if not items:
            click.echo("the queue is empty")
            return
        for i in items:
            when = i.next_attempt_at.strftime("%Y-%m-%d %H:%M:%S")
            error = f"  ({i.last_error})" if i.last_error else ""
            click.echo(
                f"{i.id:>6}  {when}Z  tries {i.attempts:<3} {i.size:>9} B  "
                f"{i.sender or '<>'} -> {i.recipient}{error}"
            )

    run(show())


@queue.command("retry")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "every", is_flag=True, help="Retry every queued recipient now.")
@click.pass_context
def queue_retry(ctx: click.Context, ids: tuple[int, ...], every: bool) -> None:
    """Make recipients IDS (or --all) due now; a running server tries them within a second."""
    if not ids and not every:
        fail("give recipient ids (see `hygie queue list`) or --all")
    config = _config(ctx)

    async def retry() -> None:
        db = await _with_db(config)
        try:
            count = await outbound.retry_now(db, None if every else list(ids))
            await audit.record(db, f"cli:{getpass.getuser()}", "queue.retry",
                               "all" if every else ",".join(map(str, ids)))  # fmt: skip
        finally:
            await db.close()
        click.echo(f"{count} recipient(s) due now")

    run(retry())


@queue.command("delete")
@click.argument("ids", nargs=-1, type=int, required=True)
@click.pass_context
def queue_delete(ctx: click.Context, ids: tuple[int, ...]) -> None:
    """Remove recipients IDS from the queue, without telling the sender."""
    config = _config(ctx)

    async def remove() -> None:
        db = await _with_db(config)
        try:
            count = await outbound.remove(db, list(ids))
            await audit.record(db, f"cli:{getpass.getuser()}", "queue.delete",
                               ",".join(map(str, ids)))  # fmt: skip
        finally:
            await db.close()
        if count == 0:
            raise CliError("no such queued recipient")
        click.echo(f"deleted {count} recipient(s)")

    run(remove())


# -- dkim -----------------------------------------------------------------------------------


@main.group("dkim")
def dkim_group() -> None:
    """DKIM keys of the local domains."""


@dkim_group.command("record")
@click.argument("domain")
@click.pass_context
def dkim_record(ctx: click.Context, domain: str) -> None:
    """Print the DNS TXT record to publish for DOMAIN's signing key."""
    config = _config(ctx)
    path = key_path(config.path(config.dkim.key_dir), domain)
    if not path.exists():
        fail(f"no DKIM key for {domain} (hygie dkim keygen {domain})")
    try:
        record = dns_record(path)
    except (DkimError, ValueError, OSError) as exc:
        fail(str(exc))
    click.echo(f'{config.dkim.selector}._domainkey.{domain.lower()}. IN TXT "{record}"')


@dkim_group.command("keygen")
@click.argument("domain")
@click.pass_context
def dkim_keygen(ctx: click.Context, domain: str) -> None:
    """Create DOMAIN's signing key ([dkim] algorithm) if it has none."""
    config = _config(ctx)
    if not config.is_local_domain(domain):
        fail(f"{domain} is not a domain of this server")
    try:
        path = ensure_key(config.path(config.dkim.key_dir), domain, config.dkim.algorithm)
    except DkimError as exc:
        fail(str(exc))
    click.echo(f"{path}")


# -- audit ----------------------------------------------------------------------------------


@main.command("audit")
@click.option("--action", default="", help="Only actions starting with this (e.g. pki.).")
@click.option("--limit", default=50, show_default=True)
@click.pass_context
def audit_list(ctx: click.Context, action: str, limit: int) -> None:
    """The newest entries of the audit log."""
    config = _config(ctx)

    async def show() -> None:
        db = await _with_db(config)
        try:
            for e in await audit.entries(db, action_prefix=action, limit=limit):
                at = e.at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
                peer = f" from {e.peer}" if e.peer else ""
                detail = json.dumps(e.detail, ensure_ascii=False, sort_keys=True)
                click.echo(f"{at}Z  {e.actor}  {e.action}  {e.target}{peer}  {detail}")
        finally:
            await db.close()

    run(show())


main.add_command(directory_cli.directory)

from server.cli.patient import patient as patient_group  # noqa: E402 (needs main's helpers)

main.add_command(patient_group)

from server.cli.catalogue import catalogue as catalogue_group  # noqa: E402 (same)

main.add_command(catalogue_group)
from server.cli.report import report as report_group  # noqa: E402 (issue 11 item 4)

main.add_command(report_group)

from server.cli.outbox import outbox as outbox_group  # noqa: E402 (design.md §2 step 5)

main.add_command(outbox_group)

if __name__ == "__main__":
    main()
