"""``hygie patient …``: the operator registers a patient (INS, identity traits, RNIV status,
declared médecin traitant) and, for a qualified identity only, opens their mailbox
``<INS>@patient.<domain>`` (design.md §5, §7); invites a list of patients to spaces opened by
opt-out, shows the spaces' counts, closes a space, runs the spaces' jobs, and enrols a
patient's second factor (issue 11)."""

from __future__ import annotations

import datetime as dt

import click

from directory.ins import IdentityStatus, Ins, InsError, is_patient_address, patient_domain
from server.cli.common import CliError, _config, _with_db, fail, run

# The patients' registry, the spaces and the storage layer are imported by the commands that
# use them: `hygie patient --help` needs only the INS rules (directory/ins.py).


@click.group()
def patient() -> None:
    """Patients: identity (INS), status, médecin traitant, mailbox."""


@patient.command("add")
@click.argument("ins")
@click.option("--birth-name", required=True)
@click.option("--given", "given_names", required=True, help="Given names at birth, in order.")
@click.option("--birth-date", required=True, help="YYYY-MM-DD.")
@click.option("--sex", type=click.Choice(["M", "F", "I"]), required=True)
@click.option("--birthplace", default="", help="INSEE code of the birth commune.")
@click.option(
    "--status", type=click.Choice([s.value for s in IdentityStatus]), default="QUAL",
    show_default=True,
)  # fmt: skip
@click.option("--medecin-traitant", default="", metavar="IDNAT", help="8 + RPPS.")
@click.option("--mailbox/--no-mailbox", default=True, show_default=True)
@click.pass_context
def patient_add(
    ctx: click.Context, ins: str, birth_name: str, given_names: str, birth_date: str,
    sex: str, birthplace: str, status: str, medecin_traitant: str, mailbox: bool,
) -> None:  # fmt: skip
    """Register the patient with this INS; open their mailbox if the identity is QUAL."""
    from directory.patients import Traits, add_patient, mailbox_refusal, open_patient_mailbox
    from storage.accounts import AccountError
    from storage.crypto import MasterKey

    config = _config(ctx)
    try:
        identity = Ins.parse(ins, test_mode=config.server.test_mode)
        born = dt.date.fromisoformat(birth_date)
        traits = Traits(birth_name.upper(), tuple(given_names.split()), born, sex, birthplace)
    except (InsError, ValueError) as exc:
        fail(str(exc))
    state = IdentityStatus(status)
    domain = patient_domain(config.server.domains)
    if mailbox:
        # The rule of every patient mailbox (directory.patients), asked before anything is
        # stored, and again where the mailbox is created.
        refusal = mailbox_refusal(state, identity.oid, test_mode=config.server.test_mode)
        if refusal is not None:
            fail(refusal)
        if domain is None:
            fail("no patient.<domain> among [server] domains")

    async def add() -> None:
        db = await _with_db(config)
        try:
            await add_patient(db, identity, traits, state, medecin_traitant)
            if mailbox:
                assert domain is not None
                master = MasterKey.load(config.path(config.storage.master_key_file))
                await open_patient_mailbox(
                    db, master, f"{identity.matricule.lower()}@{domain}", None,
                    patient_domain=domain, test_mode=config.server.test_mode,
                )  # fmt: skip
        except (InsError, AccountError) as exc:
            raise CliError(str(exc)) from None
        finally:
            await db.close()
        click.echo("patient registered" + (f", mailbox opened at @{domain}" if mailbox else ""))

    run(add())


@patient.command("status")
@click.argument("ins", required=False)
@click.pass_context
def patient_status(ctx: click.Context, ins: str | None) -> None:
    """The RNIV status of the patient with this INS (and the state of their space); without
    an INS, the number of spaces pending, open, refused and closed."""
    from directory.patients import identity_status
    from server.espace.spaces import open_store

    config = _config(ctx)

    async def show() -> None:
        db = await _with_db(config)
        try:
            spaces = await open_store(db, config)
            if ins is None:
                for state, count in (await spaces.counts()).items():
                    click.echo(f"{state:<8} {count}")
                return
            matricule = ins.strip().upper()
            found = await identity_status(db, matricule)
            space = await spaces.by_ins(matricule)
        finally:
            await db.close()
        if found is None:
            raise CliError("no patient with this INS")
        click.echo(found.value)
        if space is not None:
            click.echo(f"space: {space.state}")

    run(show())


@patient.command("invite")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--period-days", type=click.IntRange(min=0), default=None,
              help="Days to refuse, for this file (default: [spaces] refusal_days).")
@click.pass_context
def patient_invite(ctx: click.Context, file: str, period_days: int | None) -> None:
    """Invite the patients listed in FILE (CSV; header: ins,oid,birth_name,given_names,
    birth_date,sex,birthplace,status,email) to a space that opens after the refusal period
    unless they refuse it. Only QUAL identities are invited; a bad line stores nothing."""
    from server.espace.spaces import InviteFileError, open_store, utc_now
    from server.espace.spaces import invite as invite_file

    config = _config(ctx)
    try:
        with click.open_file(file, encoding="utf-8") as handle:
            data = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {file}: {exc}")

    async def go() -> None:
        db = await _with_db(config)
        try:
            store = await open_store(db, config)
            result, not_qualified = await invite_file(store, config, data, utc_now(),
                                                      period_days)  # fmt: skip
        except InviteFileError as exc:
            raise CliError(f"{file}: {exc}") from None
        finally:
            await db.close()
        days = config.spaces.refusal_days if period_days is None else period_days
        click.echo(f"{result.created} invited (spaces open in {days} days "
                   f"unless refused), {result.already_known} already known, {not_qualified} "
                   "not qualified (no space)")  # fmt: skip

    run(go())


@patient.command("close")
@click.argument("ins")
@click.pass_context
def patient_close(ctx: click.Context, ins: str) -> None:
    """Close this patient's space: the mailbox is disabled now and its data deleted after
    [spaces] retention_days."""
    from server.espace.spaces import open_store, utc_now

    config = _config(ctx)

    async def go() -> None:
        db = await _with_db(config)
        try:
            store = await open_store(db, config)
            retention = dt.timedelta(days=config.spaces.retention_days)
            closed = await store.close(ins.strip().upper(), utc_now(), retention,
                                       actor="operator")  # fmt: skip
        finally:
            await db.close()
        if closed is None:
            raise CliError("no open space for this INS")
        click.echo(f"space closed; data deleted after {config.spaces.retention_days} days")

    run(go())


@patient.command("run-jobs")
@click.pass_context
def patient_run_jobs(ctx: click.Context) -> None:
    """Run the spaces' jobs once now (``hygie serve`` runs them every [spaces] job_seconds):
    open the spaces whose refusal period ended, delete closed ones past retention, send the
    invitations and notifications owed."""
    from server.espace.notify import Smarthost
    from server.espace.spaces import SpaceJobs, open_store

    config = _config(ctx)

    async def go() -> None:
        db = await _with_db(config)
        try:
            store = await open_store(db, config)
            report = await SpaceJobs(config, store, Smarthost(config)).run_once()
        finally:
            await db.close()
        click.echo(f"opened {report.opened}, deleted {report.purged}, mails sent "
                   f"{report.sent}, failed {report.failed}")  # fmt: skip

    run(go())


@patient.group("2fa")
def patient_2fa() -> None:
    """Patients' two-factor sign-in (TOTP, RFC 6238)."""


@patient_2fa.command("enrol")
@click.argument("address")
@click.option("--code", default=None, help="A first code from the app (prompted otherwise).")
@click.pass_context
def patient_2fa_enrol(ctx: click.Context, address: str, code: str | None) -> None:
    """Show a new TOTP secret as a QR code in the terminal, and confirm it with a first code
    from the patient's authenticator app."""
    import time

    import pyotp

    from server.auth.patient import Enrolment, code_step
    from server.espace.spaces import open_store, utc_now
    from storage import audit
    from storage.accounts import find_account
    from storage.spaces import SpaceError

    config = _config(ctx)

    async def go() -> None:
        db = await _with_db(config)
        try:
            account = await find_account(db, address)
            if account is None or not is_patient_address(account.address):
                raise CliError(f"no patient mailbox {address}")
            store = await open_store(db, config)
            secret = pyotp.random_base32()
            try:
                await store.totp_begin(account.id, secret, utc_now())
            except SpaceError as exc:
                raise CliError(f"{exc} (reset it first: hygie patient 2fa reset ADDRESS)") from None
            issuer = config.spaces.totp_issuer
            enrolment = Enrolment(secret, pyotp.TOTP(secret).provisioning_uri(
                name=account.address, issuer_name=issuer))  # fmt: skip
            click.echo(enrolment.terminal())
            click.echo(f"key: {secret}")
            given = code if code is not None else click.prompt("code from the app")
            step = code_step(secret, given, time.time())
            if step is None or not await store.totp_use_step(account.id, step, confirm=True):
                raise CliError("wrong code; run the command again")
            await audit.record(db, "operator", "espace.2fa.confirmed", f"account:{account.id}")
        finally:
            await db.close()
        click.echo("two-factor sign-in enrolled; account password no longer works for IMAP/SMTP")

    run(go())


@patient_2fa.command("reset")
@click.argument("address")
@click.pass_context
def patient_2fa_reset(ctx: click.Context, address: str) -> None:
    """Remove a patient's TOTP secret (lost phone): every session and token of the account
    ends with it; they enrol again after a code sent to their personal address."""
    from server.espace.spaces import open_store
    from storage import audit
    from storage.accounts import find_account

    config = _config(ctx)

    async def go() -> None:
        db = await _with_db(config)
        try:
            account = await find_account(db, address)
            if account is None:
                raise CliError(f"no account {address}")
            store = await open_store(db, config)
            if not await store.totp_reset(account.id):
                raise CliError("this account has no second factor")
            await audit.record(db, "operator", "espace.2fa.reset", f"account:{account.id}")
        finally:
            await db.close()
        click.echo("second factor removed; every session and token of the account ended")

    run(go())
