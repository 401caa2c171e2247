"""``hygie audit``: the newest entries of the audit log (design.md §7), where every operator
command and every certificate issued leaves a line."""

from __future__ import annotations

import click

from server.cli.common import _config, _with_db, run


@click.command("audit")
@click.option("--action", default="", help="Only actions starting with this (e.g. pki.).")
@click.option("--limit", default=50, show_default=True)
@click.pass_context
def audit_list(ctx: click.Context, action: str, limit: int) -> None:
    """The newest entries of the audit log."""
    import datetime as dt
    import json

    from storage import audit

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
