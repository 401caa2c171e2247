"""``hygie patient add|show``: the operator registers a patient (INS, identity traits, RNIV
status, declared médecin traitant) and, for a qualified identity only, opens their mailbox
``<INS>@patient.<domain>`` (design.md §5, §7)."""

from __future__ import annotations

import datetime as dt

import click

from directory.ins import IdentityStatus, Ins, InsError
from directory.patients import Traits, add_patient, identity_status
from server.cli import CliError, _config, _with_db, fail, run
from storage.accounts import AccountError, create_account
from storage.crypto import MasterKey


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
    config = _config(ctx)
    try:
        identity = Ins.parse(ins, test_mode=config.server.test_mode)
        born = dt.date.fromisoformat(birth_date)
        traits = Traits(birth_name.upper(), tuple(given_names.split()), born, sex, birthplace)
    except (InsError, ValueError) as exc:
        fail(str(exc))
    state = IdentityStatus(status)
    domain = next((d for d in config.server.domains if d.startswith("patient.")), None)
    if mailbox and state is not IdentityStatus.QUAL:
        fail("a patient mailbox needs a qualified identity (status QUAL)")
    if mailbox and domain is None:
        fail("no patient.<domain> among [server] domains")

    async def add() -> None:
        db = await _with_db(config)
        try:
            await add_patient(db, identity, traits, state, medecin_traitant)
            if mailbox:
                master = MasterKey.load(config.path(config.storage.master_key_file))
                await create_account(db, master, f"{identity.matricule}@{domain}", None)
        except (InsError, AccountError) as exc:
            raise CliError(str(exc)) from None
        finally:
            await db.close()
        click.echo("patient registered" + (f", mailbox opened at @{domain}" if mailbox else ""))

    run(add())


@patient.command("status")
@click.argument("ins")
@click.pass_context
def patient_status(ctx: click.Context, ins: str) -> None:
    """The RNIV status of the patient with this INS."""
    config = _config(ctx)

    async def show() -> None:
        db = await _with_db(config)
        try:
            found = await identity_status(db, ins.strip().upper())
        finally:
            await db.close()
        if found is None:
            raise CliError("no patient with this INS")
        click.echo(found.value)

    run(show())
