"""``hygie user add|list|passwd|bind|show`` and ``hygie token issue``: accounts (mailboxes),
the identities that may log in to them without a password, and bearer tokens of the
development issuer (design.md §7)."""

from __future__ import annotations

import sys

import click

from directory.ins import is_patient_domain
from pki.errors import PkiError
from server.cli.common import CliError, _actor, _ca_or_fail, _config, _with_db, fail, run

# -- user -----------------------------------------------------------------------------------


@click.group()
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
    from directory.patients import MailboxRefused, open_patient_mailbox, patient_matricule
    from storage.accounts import AccountError, create_account, normalize_address
    from storage.crypto import MasterKey

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
    from storage.accounts import list_accounts

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
    from storage.accounts import normalize_address, set_password

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
    from pki.verify import identity_of
    from storage import audit
    from storage.accounts import IDNAT, SUBJECT, bind_identity

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
                _actor(),
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
    from storage.accounts import find_account, identities_of

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


@click.group()
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
    from server.auth.oauth import DevIssuer
    from storage.accounts import AccountError, normalize_address

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
