"""``hygie outbox``: the after-commit work of committed messages (design.md §2 step 5), for
the operator: what is waiting or has failed for good, and running it again."""

from __future__ import annotations

import getpass

import click

from server.cli.common import _config, _with_db, fail, run


@click.group()
def outbox() -> None:
    """After-commit work: dossier filing, agenda, catalogue answers, success reports."""


@outbox.command("list")
@click.pass_context
def outbox_list(ctx: click.Context) -> None:
    """Jobs not finished: id, step, next attempt, attempts, state, last error."""
    from storage import outbox as jobs

    config = _config(ctx)

    async def show() -> None:
        db = await _with_db(config)
        try:
            states = await jobs.listing(db)
        finally:
            await db.close()
        if not states:
            click.echo("no after-commit work is waiting")
            return
        for s in states:
            when = s.next_attempt_at.strftime("%Y-%m-%d %H:%M:%S")
            state = "failed" if s.failed else "waiting"
            error = f"  ({s.last_error})" if s.last_error else ""
            click.echo(f"{s.id:>6}  {s.step:<16} {when}Z  tries {s.attempts:<3} {state}{error}")

    run(show())


@outbox.command("retry")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "every", is_flag=True, help="Every job, failed ones included.")
@click.pass_context
def outbox_retry(ctx: click.Context, ids: tuple[int, ...], every: bool) -> None:
    """Make jobs IDS (or --all) due now; a running server runs them within seconds."""
    from storage import audit
    from storage import outbox as jobs

    if not ids and not every:
        fail("give job ids (see `hygie outbox list`) or --all")
    config = _config(ctx)

    async def retry() -> None:
        db = await _with_db(config)
        try:
            count = await jobs.retry(db, None if every else list(ids))
            await audit.record(db, f"cli:{getpass.getuser()}", "outbox.retry",
                               "all" if every else ",".join(map(str, ids)))  # fmt: skip
        finally:
            await db.close()
        click.echo(f"{count} job(s) due now")

    run(retry())
