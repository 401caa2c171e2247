"""The ``hygie-client`` command: the Textual client by default, ``send`` for scripts and
``account`` to write the configuration.

Exit codes: 0 success, 1 the server or a credential said no, 2 bad usage or configuration.
Failures print one line on stderr, never a traceback: cron and hospital systems read it.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from client_tui import patient_login
from client_tui.compose import (
    AttachmentError,
    Draft,
    PatientTraits,
    XdmUnavailable,
    build_message,
    build_xdm_attachment,
    parse_birth_date,
)
from client_tui.config import Account, ConfigError, load_config
from client_tui.credentials import CredentialError, keyring_secret
from client_tui.imap import ImapError
from client_tui.session import MailSession, find_special, resolve_credentials
from client_tui.smtp import SubmissionError
from directory.ins import patient_address

PROG = "hygie-client"
SECRET_ENV = "HYGIE_CLIENT_SECRET"  # noqa: S105 - the variable's name, not a secret


class UsageError(Exception):
    """Bad arguments: exit 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Hygie secure health-messaging client (IMAP/SMTP, MSSanté documents).",
    )
    parser.add_argument("--config", type=Path, help="configuration file (default: "
                        "$XDG_CONFIG_HOME/hygie-client/config.toml)")  # fmt: skip
    parser.add_argument("--account", help="account name (default: the configured default)")
    commands = parser.add_subparsers(dest="command")

    send = commands.add_parser("send", help="send one message and exit (for scripts)")
    send.add_argument(
        "--to", action="append", default=[],
        help="recipient (repeatable; with --patient, the patient's address by default)",
    )  # fmt: skip
    send.add_argument("--cc", action="append", default=[], help="copy (repeatable)")
    send.add_argument("--subject", default="", help="subject")
    send.add_argument("--body-file", type=Path, help="text of the message ('-' for stdin)")
    send.add_argument("--attach", action="append", type=Path, default=[], help="file to attach")
    send.add_argument("--receipt", choices=["dsn", "mdn"], action="append", default=[],
                      help="ask for a delivery (dsn) or read (mdn) receipt")  # fmt: skip
    send.add_argument("--patient", metavar="INS", help="send the attachments as an IHE XDM "
                      "document about this patient (with --doc-type)")  # fmt: skip
    send.add_argument("--doc-type", metavar="LOINC", help="LOINC code of the document")
    traits = send.add_argument_group(
        "patient identity traits", "needed to wrap a lone PDF in a CDA (a CDA carries its own)"
    )
    traits.add_argument("--patient-family", metavar="NAME", help="birth name (nom de naissance)")
    traits.add_argument("--patient-given", metavar="NAMES", help="given names at birth")
    traits.add_argument("--patient-birth-date", metavar="DATE", help="JJ/MM/AAAA or AAAA-MM-JJ")
    traits.add_argument("--patient-sex", choices=["M", "F"], help="sex, as on the INS")
    send.add_argument("--secret-stdin", action="store_true",
                      help="read the password or PKCS#12 passphrase from stdin")  # fmt: skip
    send.add_argument("--no-sent-copy", action="store_true",
                      help="do not keep a copy in the Sent folder")  # fmt: skip

    account = commands.add_parser("account", help="add or list accounts")
    account_commands = account.add_subparsers(dest="account_command", required=True)
    add = account_commands.add_parser("add", help="add or replace an account")
    add.add_argument("name")
    add.add_argument("--address", required=True)
    add.add_argument("--host", required=True)
    add.add_argument("--imap-port", type=int, default=2993)
    add.add_argument("--imap-security", choices=["tls", "starttls"], default="tls")
    add.add_argument("--smtp-port", type=int, default=2465)
    add.add_argument("--smtp-security", choices=["tls", "starttls"], default="tls")
    add.add_argument("--ca-file", default="", help="CA certificate to trust (PEM)")
    add.add_argument("--auth", choices=["password", "certificate", "token"], default="password")
    add.add_argument("--login", default="", help="login name if not the address")
    add.add_argument("--pkcs12", default="", help="client certificate (PKCS#12) for --auth "
                     "certificate")  # fmt: skip
    add.add_argument("--token-command", default="", help="command printing a bearer token")
    add.add_argument("--directory-url", default="", help="FHIR directory base (https://…/fhir)")
    add.add_argument("--default", action="store_true", help="make it the default account")
    account_commands.add_parser("list", help="list accounts")

    login = commands.add_parser("login", help="patients: two-factor sign-in for a token")
    patient_login.add_arguments(login)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import client_tui.mssante  # noqa: F401 (registers the MSSanté document hooks)

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "send":
            return asyncio.run(send_command(args))
        if args.command == "account":
            return account_command(args)
        if args.command == "login":
            return patient_login.run(args, load_config(args.config).account(args.account))
        return run_app(args)
    except (ConfigError, UsageError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except (CredentialError, ImapError, SubmissionError, AttachmentError, XdmUnavailable,
            patient_login.LoginError) as exc:  # fmt: skip
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


def run_app(args: argparse.Namespace) -> int:
    from client_tui.app import HygieClient  # Textual loads only for the interface

    config = load_config(args.config)
    app = HygieClient(config, account_name=args.account)
    app.run()
    return app.return_code or 0


def account_command(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if args.account_command == "list":
        for name, account in config.accounts.items():
            mark = "*" if name == (config.default or next(iter(config.accounts))) else " "
            print(f"{mark} {name}  {account.address}  {account.host}  auth={account.auth}")
        return 0
    account = Account(
        name=args.name, address=args.address, host=args.host,
        imap_port=args.imap_port, imap_security=args.imap_security,
        smtp_port=args.smtp_port, smtp_security=args.smtp_security,
        ca_file=existing_file(args.ca_file, "--ca-file"), auth=args.auth, login=args.login,
        pkcs12=existing_file(args.pkcs12, "--pkcs12"), token_command=args.token_command,
        directory_url=args.directory_url,
    )  # fmt: skip
    account.check()
    config.accounts[account.name] = account
    if args.default or not config.default:
        config.default = account.name
    config.save()
    print(f"account {account.name} saved in {config.path}")
    return 0


def existing_file(typed: str, option: str) -> str:
    """The absolute path of a file given on the command line, so that the account works from
    any folder; a missing file is bad usage, named with where it was looked for."""
    if not typed:
        return ""
    path = Path(typed).expanduser().absolute()
    if not path.is_file():
        raise UsageError(f"{option}: no file {typed} (looked for {path})")
    return str(path)


def read_secret(account: Account, from_stdin: bool) -> str:
    """The password or passphrase: stdin if asked, the environment, the keyring, a prompt."""
    if not account.needs_secret:
        return ""
    what = "passphrase" if account.auth == "certificate" else "password"
    if from_stdin:
        secret = sys.stdin.readline().rstrip("\r\n")
        if not secret:  # bad usage (2), not a refusal by the server (1)
            raise UsageError(f"--secret-stdin: no {what} on standard input for {account.address}")
        return secret
    if os.environ.get(SECRET_ENV):
        return os.environ[SECRET_ENV]
    stored = keyring_secret(account.address)
    if stored:
        return stored
    if sys.stdin.isatty():
        prompt = f"passphrase of {account.pkcs12}" if account.auth == "certificate" else what
        typed = getpass.getpass(f"{prompt} for {account.address}: ")
        if typed:
            return typed
    raise UsageError(
        f"no {what} for {account.address}: use --secret-stdin, {SECRET_ENV} or the system "
        "keyring"
    )


async def send_command(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    account = config.account(args.account)
    if bool(args.patient) != bool(args.doc_type):
        raise UsageError("--patient and --doc-type go together")
    if not args.to:
        if not args.patient:
            raise UsageError("a recipient is needed: --to ADDRESS")
        # <INS>@patient.<domain> (design §5), the domain being the sender's own
        args.to = [patient_address(args.patient, account.address.rpartition("@")[2])]
    if args.body_file is None:
        body = ""
    elif str(args.body_file) == "-":
        body = sys.stdin.read()
    else:
        try:
            body = args.body_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read body file {args.body_file}: {exc}") from exc
    for path in args.attach:
        if not path.is_file():
            raise UsageError(f"attachment {path} does not exist")
    draft = Draft(
        sender=account.address,
        to=", ".join(args.to),
        cc=", ".join(args.cc),
        subject=args.subject,
        body=body,
        attachments=list(args.attach),
        delivery_receipt="dsn" in args.receipt,
        read_receipt="mdn" in args.receipt,
    )
    traits = patient_traits(args)
    credentials = await resolve_credentials(account, read_secret(account, args.secret_stdin))
    extra: list[tuple[str, bytes, str]] = []
    session = MailSession(account, credentials)
    if args.patient:
        if not args.attach:
            raise UsageError("--patient needs the document: --attach report.pdf (and/or CDA)")
        author = await session.author()
        xdm = build_xdm_attachment(list(args.attach), args.patient, args.doc_type,
                                   traits=traits, author=author)  # fmt: skip
        draft.attachments = []
        extra.append(("IHE_XDM.zip", xdm, "application/zip"))
    message = build_message(draft, extra)
    await session.send(message, notify_success=draft.delivery_receipt)
    if not args.no_sent_copy:
        await keep_sent_copy(session, message.as_bytes())
    return 0


def patient_traits(args: argparse.Namespace) -> PatientTraits | None:
    """The four traits from the options: all or none (a CDA brings its own)."""
    given = {
        "--patient-family": args.patient_family, "--patient-given": args.patient_given,
        "--patient-birth-date": args.patient_birth_date, "--patient-sex": args.patient_sex,
    }  # fmt: skip
    if not any(given.values()):
        return None
    missing = [option for option, value in given.items() if not value]
    if missing:
        raise UsageError("the patient's identity traits go together: also give "
                         + ", ".join(missing))  # fmt: skip
    if not args.patient:
        raise UsageError("the --patient-* traits go with --patient INS")
    try:
        born = parse_birth_date(args.patient_birth_date)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return PatientTraits(args.patient_family, args.patient_given, born, args.patient_sex)


async def keep_sent_copy(session: MailSession, raw: bytes) -> None:
    """APPEND to Sent; the message is already sent, so a failure here is only a warning."""
    try:
        imap = await session.imap()
        try:
            sent = find_special(await imap.folders(), "\\Sent", "Sent")
            await imap.append(sent, raw)
        finally:
            await imap.logout()
    except (ImapError, CredentialError) as exc:
        print(f"{PROG}: warning: sent, but no copy kept in Sent: {exc}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
