"""The ``hygie`` command (design.md §7): the root group, and the table of its commands.

Every command takes ``--data DIR`` (default ``$HYGIE_DATA``, else ``./hygie-data``), prints a
one-line error and exits non-zero on bad input.

Each command group is a module of this package, imported only when one of its commands runs or
its help is asked (click's "lazily loading subcommands"): ``hygie --help`` lists the commands
from the table below without importing any of them, so it starts without SQLAlchemy,
cryptography or the server (issue 18 item 5). A test keeps the table's summaries equal to the
commands' own.
"""

from __future__ import annotations

import importlib
import os
from typing import Any, NamedTuple

import click


class Entry(NamedTuple):
    target: str  # "module:attribute"
    summary: str  # the command's help, of which ``hygie --help`` shows the first sentence


#: Every command of ``hygie``: where it is defined, and what ``hygie --help`` says of it.
COMMANDS: dict[str, Entry] = {
    "audit": Entry("server.cli.audit:audit_list", "The newest entries of the audit log."),
    "catalogue": Entry(
        "server.cli.catalogue:catalogue",
        "The catalogue of health apps: list, show, review against the criteria, decide.",
    ),
    "directory": Entry(
        "server.cli.directory:directory",
        "The practitioner directory: import the national extracts, search, synthesise.",
    ),
    "dkim": Entry("server.cli.dkim:dkim_group", "DKIM keys of the local domains."),
    "init": Entry(
        "server.cli.init:init",
        "Create a data directory: configuration, database, keys, CA and server certificate.",
    ),
    "outbox": Entry(
        "server.cli.outbox:outbox",
        "After-commit work: dossier filing, agenda, catalogue answers, success reports.",
    ),
    "patient": Entry(
        "server.cli.patient:patient",
        "Patients: identity (INS), status, médecin traitant, mailbox.",
    ),
    "pki": Entry("server.cli.pki:pki", "The certificate authority."),
    "queue": Entry(
        "server.cli.queue:queue", "The outbound queue: mail waiting for other operators."
    ),
    "report": Entry(
        "server.cli.report:report",
        "Usage indicators: the monthly report, and the token for /metrics.",
    ),
    "serve": Entry(
        "server.cli.init:serve",
        "Run the SMTP, IMAP and HTTPS servers until SIGTERM or SIGINT, in as many worker "
        "processes as cores (--workers, [server] workers).",
    ),
    "token": Entry(
        "server.cli.accounts:token",
        "Bearer tokens for SASL OAUTHBEARER/XOAUTH2 (development issuer).",
    ),
    "user": Entry("server.cli.accounts:user", "Manage accounts (mailboxes)."),
}


class LazyGroup(click.Group):
    """A group whose commands are named in a table and imported on first use."""

    def __init__(self, *args: Any, lazy: dict[str, Entry], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self.add_command(load(self.lazy[cmd_name].target), cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's own listing, each command not yet imported shown by a stand-in that has
        the table's summary as its help (the same shortening, the same columns)."""
        names = self.list_commands(ctx)
        shown = {
            name: self.commands.get(name) or click.Command(name, help=self.lazy[name].summary)
            for name in names
        }
        listing = click.Group(self.name, commands=shown)
        click.Group.format_commands(listing, ctx, formatter)


def load(target: str) -> click.Command:
    """The command at ``module:attribute``."""
    module, _, attribute = target.partition(":")
    command = getattr(importlib.import_module(module), attribute)
    if not isinstance(command, click.Command):
        raise TypeError(f"{target} is not a click command")
    return command


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
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
    from server.config import data_dir_from

    os.umask(0o077)  # everything Hygie writes is private to its user
    ctx.ensure_object(dict)
    ctx.obj["data"] = data_dir_from(data)


if __name__ == "__main__":
    main()
