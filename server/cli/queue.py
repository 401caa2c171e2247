"""``hygie queue list|retry|delete``: the outbound queue, mail waiting for other operators
(``server/outbound/queue.py`` delivers it); every change is in the audit log."""

from __future__ import annotations

import click

from server.cli.common import CliError, _actor, _config, _with_db, fail, run


@click.group()
def queue() -> None:
    """The outbound queue: mail waiting for other operators."""


@queue.command("list")
@click.pass_context
def queue_list(ctx: click.Context) -> None:
    """Queued recipients: id, next attempt, attempts, size, recipient, last error."""
    from storage import outbound

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
    from storage import audit, outbound

    if not ids and not every:
        fail("give recipient ids (see `hygie queue list`) or --all")
    config = _config(ctx)

    async def retry() -> None:
        db = await _with_db(config)
        try:
            count = await outbound.retry_now(db, None if every else list(ids))
            await audit.record(db, _actor(), "queue.retry",
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
    from storage import audit, outbound

    config = _config(ctx)

    async def remove() -> None:
        db = await _with_db(config)
        try:
            count = await outbound.remove(db, list(ids))
            await audit.record(db, _actor(), "queue.delete", ",".join(map(str, ids)))
        finally:
            await db.close()
        if count == 0:
            raise CliError("no such queued recipient")
        click.echo(f"deleted {count} recipient(s)")

    run(remove())
