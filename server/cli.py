"""The ``hygie`` command: ``init``, ``serve``, ``user …``, ``pki …`` (design.md §7).

Every command takes ``--data DIR`` (default ``$HYGIE_DATA``, else ``./hygie-data``), prints a
one-line error and exits non-zero on bad input.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from directory.demo import load_demo
from pki.ca import CertificateAuthority, IssuedCertificate, init_ca, write_server_credentials
from pki.errors import PkiError
from server import cli_directory as directory_cli
from server.config import (
    CA_SECRET,
    CONFIG_FILE,
    Config,
    ConfigError,
    data_dir_from,
    load_config,
    render_config,
)
from server.logs import configure_logging
from storage.accounts import (
    AccountError,
    create_account,
    list_accounts,
    normalize_address,
    set_password,
)
from storage.blobs import open_blob_store
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


class CliError(Exception):
    pass


def fail(message: str) -> NoReturn:
    click.echo(f"hygie: error: {message}", err=True)
    sys.exit(1)


def run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except (CliError, ConfigError, AccountError, PkiError, CryptoError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}")


def _config(ctx: click.Context) -> Config:
    data: Path = ctx.obj["data"]
    try:
        return load_config(data)
    except ConfigError as exc:
        fail(str(exc))


async def _with_db(config: Config) -> Database:
    blobs = open_blob_store(config.storage.blob_store, config.path(config.storage.blob_dir))
    db = Database(config.database_url, blobs)
    await db.start()
    return db


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
    DEMO_FILE,
)


@main.command()
@click.option("--domain", default="hygie.test", show_default=True, help="Mail domain served here.")
@click.option("--hostname", default=None, help="Server host name (default: mail.<domain>).")
@click.option("--demo", is_flag=True, help="Add demo practitioners and a demo patient.")
@click.option("--force", is_flag=True, help="Replace an existing data directory's contents.")
@click.pass_context
def init(ctx: click.Context, domain: str, hostname: str | None, demo: bool, force: bool) -> None:
    """Create a data directory: configuration, database, keys, CA and server certificate."""
    data: Path = ctx.obj["data"]
    domain = domain.strip().lower().rstrip(".")
    try:
        normalize_address(f"postmaster@{domain}")
    except AccountError:
        fail(f"not a valid mail domain: {domain!r}")
    hostname = (hostname or f"mail.{domain}").lower()
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
    text = render_config(domain, hostname).replace(
        f'domains = ["{domain}"]', "domains = [" + ", ".join(f'"{d}"' for d in domains) + "]"
    )
    (data / CONFIG_FILE).write_text(text, "utf-8")
    config = _config(ctx)
    run(_init(config, hostname, domains, demo))


async def _init(config: Config, hostname: str, domains: list[str], demo: bool) -> None:
    master = MasterKey.create(config.path(config.storage.master_key_file))
    await migrate(config.database_url)
    ca = init_ca(
        config.path("pki"),
        master.derive_secret(CA_SECRET),
        operator="HYGIE",
        base_url=f"http://{hostname}:{config.http.pki_port}/pki",
    )
    config.path(config.tls.key_file).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    issued = ca.issue_server([hostname, *domains, "localhost"], ["127.0.0.1", "::1"])
    write_server_credentials(
        issued, config.path(config.tls.cert_file), config.path(config.tls.key_file)
    )
    click.echo(f"Initialised {config.data_dir} for {', '.join(domains)} (host {hostname}).")
    click.echo(f"  database:    {config.database_url.split('://', 1)[0]}")
    click.echo(f"  trust this CA: {config.path(config.tls.ca_file)}")
    if demo:
        db = await _with_db(config)
        try:
            lines = []
            for pattern in DEMO_ACCOUNTS:
                address = pattern.format(domain=domains[0])
                await create_account(db, master, address, DEMO_PASSWORD)
                lines.append(f"{address}  password: {DEMO_PASSWORD}")
            await load_demo(db, domains[0])
        finally:
            await db.close()
        path = config.data_dir / DEMO_FILE
        path.write_text("\n".join(lines) + "\n", "utf-8")
        path.chmod(0o600)
        click.echo("Demo accounts:")
        for line in lines:
            click.echo(f"  {line}")


# -- serve ----------------------------------------------------------------------------------


@main.command()
@click.pass_context
def serve(ctx: click.Context) -> None:
    """Run the SMTP and IMAP servers until SIGTERM or SIGINT."""
    from server.app import serve as serve_forever

    config = _config(ctx)
    configure_logging(config.log.level, config.log.format)
    _banner(config)
    run(serve_forever(config))


def _banner(config: Config) -> None:
    listen = config.server.listen
    lines = [
        f"Hygie serving {config.data_dir} ({', '.join(config.server.domains)})",
        f"  SMTP submission  {listen}:{config.smtp.submission_port} (STARTTLS), "
        f"{listen}:{config.smtp.submission_tls_port} (TLS)",
        f"  IMAP             {listen}:{config.imap.port} (STARTTLS), "
        f"{listen}:{config.imap.tls_port} (TLS)",
        f"  CA publication   http://{listen}:{config.http.pki_port}/pki/ (CRL, OCSP)",
        f"  HTTPS            https://{listen}:{config.http.https_port}/fhir/ (directory, FHIR R4)",
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
    password = _read_password(password_stdin)

    async def add() -> None:
        master = MasterKey.load(config.path(config.storage.master_key_file))
        db = await _with_db(config)
        try:
            info = await create_account(db, master, address, password)
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
def pki() -> None:
    """The certificate authority."""


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


def _save(issued: IssuedCertificate, out: Path, stem: str, passphrase: bytes | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.crt").write_bytes(issued.chain_pem())
    _write_private(out / f"{stem}.key", issued.key_pem(passphrase))
    written = [f"{stem}.crt", f"{stem}.key"]
    if passphrase is not None:
        _write_private(out / f"{stem}.p12", issued.pkcs12(passphrase, stem.encode()))
        written.append(f"{stem}.p12")
    serial = format(issued.certificate.serial_number, "X")
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


@pki_issue.command("org")
@click.option("--service", required=True, help="Service name (CN).")
@click.option("--organisation", required=True, help="Organisation name (O).")
@click.option("--siret", default=None, help="SIRET (OU = 3 + SIRET).")
@click.option("--finess", default=None, help="FINESS (OU = 1 + FINESS).")
@_out
@_key
@_stdin
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
    _save(issued, out, service.replace(" ", "_").lower(), passphrase)


@pki_issue.command("person")
@click.option("--rpps", required=True, help="RPPS number (IdNat = 8 + RPPS).")
@click.option("--given-name", required=True)
@click.option("--surname", required=True)
@click.option("--organisation", default=None)
@_out
@_key
@_stdin
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
    _save(issued, out, f"8{rpps}", passphrase)


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
    click.echo(f"revoked {rec.serial_hex} ({reason}); CRL updated")


@pki.command("crl")
@click.pass_context
def pki_crl(ctx: click.Context) -> None:
    """Regenerate the CRL and print it (PEM)."""
    ca = _ca_or_fail(ctx)
    crl = ca.write_crl()
    click.echo(crl.public_bytes(serialization.Encoding.PEM).decode(), nl=False)


main.add_command(directory_cli.directory)

if __name__ == "__main__":
    main()
