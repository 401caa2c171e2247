"""Accounts: ``$XDG_CONFIG_HOME/hygie-client/config.toml`` (or ``--config FILE``).

The file never holds a secret: passwords and PKCS#12 passphrases are asked for, or read from
the system keyring; a token comes from the account's ``token_command`` each time.

    default = "jean"

    [accounts.jean]
    address = "jean.dupont@hygie.test"
    host = "mail.hygie.test"
    imap_port = 2993
    imap_security = "tls"        # or "starttls" (2143)
    smtp_port = 2465
    smtp_security = "tls"        # or "starttls" (2587)
    ca_file = "~/hygie-root-ca.pem"
    auth = "certificate"         # or "password", "token"
    pkcs12 = "~/jean.dupont.p12"
    # token_command = "hygie token issue jean.dupont@hygie.test --ttl 300"
    directory_url = "https://mail.hygie.test:8443/fhir"   # optional: recipient search
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from client_tui.credentials import AUTH_KINDS

SECURITY = ("tls", "starttls")


class ConfigError(Exception):
    """The configuration file is missing, unreadable or wrong; the message names the key."""


def default_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "hygie-client" / "config.toml"


@dataclass
class Account:
    name: str
    address: str
    host: str
    imap_port: int = 2993
    imap_security: str = "tls"
    smtp_port: int = 2465
    smtp_security: str = "tls"
    ca_file: str = ""
    auth: str = "password"
    login: str = ""
    pkcs12: str = ""
    token_command: str = ""
    directory_url: str = ""  # the operator's FHIR base, e.g. https://mail.example.test:8443/fhir
    # The server certificate's revocation (its CA's CRL, client_tui/revocation.py): "check"
    # refuses a revoked one when a valid CRL can be had, "require" also when none can,
    # "off" does not look.
    revocation: str = "check"

    @property
    def ca_path(self) -> Path | None:
        return Path(self.ca_file).expanduser() if self.ca_file else None

    @property
    def pkcs12_path(self) -> Path | None:
        return Path(self.pkcs12).expanduser() if self.pkcs12 else None

    @property
    def needs_secret(self) -> bool:
        """A password or a passphrase must be asked for (tokens come from the command)."""
        return self.auth in ("password", "certificate")

    def check(self) -> None:
        where = f"account {self.name!r}"
        if "@" not in self.address:
            raise ConfigError(f"{where}: address must be a mail address, not {self.address!r}")
        if not self.host:
            raise ConfigError(f"{where}: host is missing")
        if self.auth not in AUTH_KINDS:
            raise ConfigError(f"{where}: auth must be one of {', '.join(AUTH_KINDS)}")
        for key in ("imap_security", "smtp_security"):
            if getattr(self, key) not in SECURITY:
                raise ConfigError(f"{where}: {key} must be tls or starttls")
        if self.revocation not in ("check", "require", "off"):
            raise ConfigError(f"{where}: revocation must be check, require or off")
        if self.auth == "certificate" and not self.pkcs12:
            raise ConfigError(f"{where}: auth = certificate needs pkcs12 = FILE")
        if self.auth == "token" and not self.token_command:
            raise ConfigError(f"{where}: auth = token needs token_command = COMMAND")


@dataclass
class Config:
    path: Path
    accounts: dict[str, Account] = field(default_factory=dict)
    default: str = ""

    def account(self, name: str | None = None) -> Account:
        if not self.accounts:
            raise ConfigError(f"no account in {self.path}; add one with `hygie-client account add`")
        key = name or self.default or next(iter(self.accounts))
        if key not in self.accounts:
            raise ConfigError(f"no account named {key!r} in {self.path}")
        return self.accounts[key]

    def save(self) -> None:
        """Write the file (0600: it names key files and servers, though no secret)."""
        lines = ["# hygie-client accounts; no secret is kept here", ""]
        if self.default:
            lines.append(f"default = {_toml_string(self.default)}")
            lines.append("")
        for account in self.accounts.values():
            lines.append(f"[accounts.{_toml_key(account.name)}]")
            for key, value in asdict(account).items():
                if key == "name" or value == "":
                    continue
                shown = str(value) if isinstance(value, int) else _toml_string(str(value))
                lines.append(f"{key} = {shown}")
            lines.append("")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write("\n".join(lines))


def load_config(path: Path | None = None) -> Config:
    """The accounts in ``path`` (default: under the user's config directory); an absent file
    is an empty configuration, a broken one a :class:`ConfigError`."""
    path = path or default_config_path()
    if not path.exists():
        return Config(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    known = {f.name for f in fields(Account)} - {"name"}
    accounts: dict[str, Account] = {}
    raw_accounts = data.get("accounts", {})
    if not isinstance(raw_accounts, dict):
        raise ConfigError(f"{path}: [accounts] must be a table")
    for name, table in raw_accounts.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: accounts.{name} must be a table")
        unknown = set(table) - known
        if unknown:
            raise ConfigError(f"{path}: accounts.{name}: unknown key {sorted(unknown)[0]!r}")
        for secret in ("password", "passphrase", "token"):
            if secret in table:  # pragma: no cover - caught by "unknown" above; kept explicit
                raise ConfigError(f"{path}: secrets do not belong in the file ({secret})")
        try:
            account = Account(name=name, **table)
        except TypeError as exc:
            raise ConfigError(f"{path}: accounts.{name}: {exc}") from exc
        account.check()
        accounts[name] = account
    default = data.get("default", "")
    if default and default not in accounts:
        raise ConfigError(f"{path}: default account {default!r} is not defined")
    return Config(path, accounts, str(default))


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _toml_key(name: str) -> str:
    bare = name.replace("-", "").replace("_", "").isalnum() and name.isascii()
    return name if bare else _toml_string(name)
