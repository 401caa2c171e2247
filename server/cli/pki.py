"""``hygie pki …``: the operator's certificate authority (design.md §3): issue SERV, ORG and
PER certificates, list, show and revoke them, the CRL, the root to trust, and the address at
which peers fetch the CRL and OCSP answers."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from pki.errors import PkiError
from server.cli.common import CliError, _audit, _ca_or_fail, _config, _save, _with_db, fail, run

if TYPE_CHECKING:
    from pki.ca import CertificateAuthority, IssuedCertificate
    from server.config import Config

@click.group()
@click.pass_context
def pki(ctx: click.Context) -> None:
    """The certificate authority."""
    if ctx.invoked_subcommand == "address":
        return  # says it itself
    from server.config import ConfigError, load_config
    from server.ops import pki_address

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
    from pki.registry import CaSettings
    from server.ops import pki_address

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
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    from pki.ca import write_server_credentials
    from server.ops import pki_address

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


#: The revocation reasons an operator may give (RFC 5280 §5.3.1), by their names in the RFC,
#: which are the values of ``cryptography.x509.ReasonFlags``.
REASONS = (
    "unspecified",
    "keyCompromise",
    "cACompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
    "certificateHold",
)


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
    from pki.verify import identity_of
    from storage.accounts import IDNAT, SUBJECT, bind_identity, find_account

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
    from cryptography import x509

    ca = _ca_or_fail(ctx)
    try:
        rec = ca.revoke(serial, x509.ReasonFlags(reason))
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
    from cryptography.hazmat.primitives import serialization

    ca = _ca_or_fail(ctx)
    crl = ca.write_crl()
    click.echo(crl.public_bytes(serialization.Encoding.PEM).decode(), nl=False)
