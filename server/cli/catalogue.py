"""``hygie catalogue list|show|review|decide``: the operator's review of submitted apps
(issue 10 item 3). Every review and decision is in the audit log (the OS user is the actor);
each decision is sent to the editor's mailbox from ``catalogue@<domain>``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from catalogue.criteria import CRITERIA, VERDICTS
from catalogue.status import DECISIONS, STATUSES
from server.cli.common import CliError, _actor, _config, _with_db, run

if TYPE_CHECKING:
    from catalogue.registry import Catalogue
    from server.config import Config
    from storage.db import Database

# The catalogue's registry, the pipeline and the storage layer are imported by the commands
# that use them: `hygie catalogue --help` needs only the names of statuses and criteria.


def _catalogue(config: Config, db: Database) -> Catalogue:
    from catalogue.registry import Catalogue

    return Catalogue(db, config.path("pki"), local_domain=config.is_local_domain)


async def _tell_editor(config: Config, db: Database, raw: bytes, to: str) -> bool:
    """Deliver a notice to the editor's mailbox (always one of ours: manifests come only by
    submission)."""
    from server.delivery.pipeline import Pipeline
    from storage.crypto import MasterKey
    from storage.mailstore import MailStore

    master = MasterKey.load(config.path(config.storage.master_key_file))
    return await Pipeline(config, db, master, MailStore(db)).notice(raw, to)


@click.group()
def catalogue() -> None:
    """The catalogue of health apps: list, show, review against the criteria, decide."""


@catalogue.command("list")
@click.option("--status", default=None, type=click.Choice(list(STATUSES)),
              help="Only apps with this status.")  # fmt: skip
@click.pass_context
def catalogue_list(ctx: click.Context, status: str | None) -> None:
    """Every app, with its status."""
    config = _config(ctx)

    async def show() -> None:
        db = await _with_db(config)
        try:
            apps = await _catalogue(config, db).apps(status=status)
        finally:
            await db.close()
        for app in apps:
            click.echo(
                f"{app.id:>4}  {app.status:<12}  {app.key}  {app.name}  "
                f"({app.editor_name}, SIRET {app.editor_siret})"
            )
        if not apps:
            click.echo("no app")

    run(show())


@catalogue.command("show")
@click.argument("app")
@click.pass_context
def catalogue_show(ctx: click.Context, app: str) -> None:
    """One app: its fields, versions, the review of its latest version, and its history."""
    config = _config(ctx)

    async def show() -> None:
        db = await _with_db(config)
        try:
            cat = _catalogue(config, db)
            try:
                found = await cat.get(app)
            except _error() as exc:
                raise CliError(str(exc)) from None
            versions = await cat.versions(found.id)
            reviews = await cat.reviews(versions[-1].id) if versions else []
            history = await cat.history(found.id)
        finally:
            await db.close()
        click.echo(f"app {found.id}: {found.key} — {found.name}")
        click.echo(f"  status:      {found.status}"
                   + (f" (live version {found.live_version})" if found.live_version else ""))
        click.echo(f"  editor:      {found.editor_name} (SIRET {found.editor_siret})")
        click.echo(f"  submitter:   {found.submitter}")
        click.echo(f"  categories:  {', '.join(found.categories)}")
        click.echo(f"  service:     {found.service_url}")
        click.echo(f"  mailbox:     {found.mailbox}  certificate: {found.certificate}")
        click.echo(f"  scopes:      {' '.join(found.scopes)}")
        click.echo(f"  description: {found.description}")
        click.echo("versions:")
        for v in versions:
            click.echo(f"  {v.number}  {v.label:<10}  {v.status:<12}  "
                       f"{v.submitted_at:%Y-%m-%d %H:%M}Z")  # fmt: skip
        if versions:
            click.echo(f"criteria (version {versions[-1].number}):")
        for r in reviews:
            note = f" — {r.note}" if r.note else ""
            click.echo(f"  {r.criterion:<17} {r.verdict:<8}{note}")
            click.echo(f"      evidence: {r.evidence}")
        click.echo("history:")
        for h in history:
            version = f" v{h.version}" if h.version is not None else ""
            reason = f": {h.reason}" if h.reason else ""
            click.echo(f"  {h.at:%Y-%m-%d %H:%M:%S}Z  {h.status}{version}  by {h.actor}{reason}")

    run(show())


@catalogue.command("review")
@click.argument("app")
@click.option(
    "--criterion", "criteria", required=True, multiple=True, type=click.Choice(list(CRITERIA)),
    help="Repeatable: the same verdict for each.",
)
@click.option("--verdict", required=True, type=click.Choice(list(VERDICTS)))
@click.option("--note", default="", help="Why (required for a fail; the editor sees it).")
@click.pass_context
def catalogue_review(
    ctx: click.Context, app: str, criteria: tuple[str, ...], verdict: str, note: str
) -> None:
    """Record the verdict on criteria of the version under review."""
    config = _config(ctx)

    async def review() -> None:
        db = await _with_db(config)
        try:
            for criterion in dict.fromkeys(criteria):
                found, version = await _catalogue(config, db).review(
                    app, criterion, verdict, note, _actor()
                )
                click.echo(f"app {found.id} version {version}: {criterion} {verdict}")
        except _error() as exc:
            raise CliError(str(exc)) from None
        finally:
            await db.close()

    run(review())


@catalogue.command("decide")
@click.argument("app")
@click.argument("decision", type=click.Choice(list(DECISIONS)))
@click.option("--reason", required=True, help="Told to the editor and kept in the history.")
@click.pass_context
def catalogue_decide(ctx: click.Context, app: str, decision: str, reason: str) -> None:
    """Reference or refuse the version under review; suspend or withdraw a referenced app."""
    config = _config(ctx)

    async def decide() -> None:
        db = await _with_db(config)
        try:
            try:
                done = await _catalogue(config, db).decide(app, decision, reason, _actor())
            except _error() as exc:
                raise CliError(str(exc)) from None
            domain = config.server.domains[0]
            from catalogue import notices

            notice = notices.decision(
                f"{notices.SERVICE}@{domain}", done.app.submitter, done.app, decision,
                done.version, reason.strip(), config.server.hostname,
            )  # fmt: skip
            told = await _tell_editor(config, db, notice, done.app.submitter)
        finally:
            await db.close()
        click.echo(f"app {done.app.id} {decision}" + ("; editor told" if told else ""))
        if not told:
            click.echo("warning: the editor's mailbox is gone; they were not told", err=True)

    run(decide())


def _error() -> type[Exception]:
    from catalogue.registry import CatalogueError

    return CatalogueError
