"""Hygie's configuration: one TOML file in the data directory, overridable by environment.

Every key ``[section] key`` can be overridden by ``HYGIE_<SECTION>_<KEY>`` (upper case), for
example ``HYGIE_IMAP_TLS_PORT=3993`` or ``HYGIE_DATABASE_URL=postgresql+asyncpg://…``.
The configuration is read once, at start, into an immutable :class:`Config`.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

DEFAULT_DATA_DIR = "./hygie-data"
#: Label under which the CA key passphrase is derived from the master key.
CA_SECRET = "pki-ca-passphrase"  # noqa: S105 (a derivation label, not a secret)
CONFIG_FILE = "hygie.toml"


class ConfigError(Exception):
    """The configuration file or an override is invalid; the message says which key."""


@dataclass(frozen=True)
class ServerSection:
    hostname: str = "mail.hygie.test"
    domains: tuple[str, ...] = ("hygie.test",)
    listen: str = "127.0.0.1"
    # Worker processes sharing the listeners (`hygie serve --workers N`); 0: one per core.
    workers: int = 0
    shutdown_grace_seconds: float = 10.0
    # How long a process holds an after-commit job (design.md §2 step 5) before another may
    # take it over: the time to notice a dead node.
    job_lease_seconds: float = 120.0
    # The X-MSS-NIL value (MSSanté ECO.2.4.3: the product reference registered on
    # convergence.esante.gouv.fr) of the messages Hygie itself writes (DSNs, MDNs).
    mss_nil: str = "HYGIE-0.1.0"
    # Accept the test and demonstration INS OIDs (1.2.250.1.213.1.4.10/.11): never in production.
    test_mode: bool = False
    # With test_mode only: the agenda's clock reads an ISO 8601 instant from this file (tests
    # move time without waiting); empty or unreadable: the real time.
    test_clock_file: str = ""


@dataclass(frozen=True)
class SmtpSection:
    submission_port: int = 2587
    submission_tls_port: int = 2465
    max_message_size: int = 25 * 1024 * 1024
    max_recipients: int = 100
    max_line_length: int = 1000
    # Per connection: messages (MAIL commands), and total time before a 421.
    max_messages_per_session: int = 1000
    max_session_seconds: int = 3600


@dataclass(frozen=True)
class ImapSection:
    port: int = 2143
    tls_port: int = 2993
    max_literal_size: int = 64 * 1024 * 1024
    # RFC 9051 §5.4: at least 30 minutes once logged in; a short one before login.
    idle_timeout_seconds: int = 1800
    login_timeout_seconds: int = 60


@dataclass(frozen=True)
class HttpSection:
    # Plain-HTTP PKI publication point: CRL, OCSP, CA certificates (0 disables it).
    pki_port: int = 8080
    # Where peers reach it, as written in every certificate (CRL distribution point, AIA);
    # empty: http://<hostname>:<pki_port>/pki. See `Config.pki_base_url`.
    pki_public_url: str = ""
    # HTTPS (the server's TLS certificate): the directory's FHIR API under /fhir/ (0 disables).
    https_port: int = 8443
    # Open connections of each HTTP listener, in all and from one client address (behind a
    # proxy every client has the proxy's address: raise the second to the first). Beyond,
    # a 503 and the connection is closed (docs/security.md).
    max_connections: int = 1000
    max_connections_per_peer: int = 100


@dataclass(frozen=True)
class RelaySection:
    """Operator-to-operator relay (design.md §2.5–2.6): inbound on ``port`` with mutual TLS,
    outbound from the durable queue."""

    # Inbound relay listener (the port-25 role), STARTTLS and a client certificate required.
    port: int = 2525
    # The MSSanté "liste blanche": a file (relative to the data directory) or an https:// URL.
    trusted_domains: str = "trust/liste-blanche.xml"
    trusted_domains_refresh_seconds: int = 3600
    # CA bundle (PEM) to check an https:// trusted_domains URL; empty: the system's.
    trusted_domains_ca_file: str = ""
    # Other operators' CA certificates (PEM files: root and intermediates), trusted for relay
    # in both directions. This operator's own CA is always trusted.
    trust_anchors: tuple[str, ...] = ()
    # Routes "domain=host:port"; a domain without one is routed by its DNS MX records.
    routes: tuple[str, ...] = ()
    # Outbound queue: retry back-off (doubling from base to max), delay notice, lifetime.
    retry_base_seconds: int = 60
    retry_max_seconds: int = 3600
    delay_notice_seconds: int = 4 * 3600
    lifetime_seconds: int = 5 * 24 * 3600
    # Concurrent outbound deliveries in this process, and how often the queue is polled.
    workers: int = 8
    poll_seconds: float = 1.0
    # How long a fetched peer CRL is trusted before it is fetched again.
    crl_refresh_seconds: int = 300


@dataclass(frozen=True)
class DkimSection:
    """DKIM (RFC 6376): sign what we relay out, verify what is relayed in."""

    sign: bool = True
    verify: bool = True
    selector: str = "hygie"
    # "rsa" (RSA-2048, SHA-256) or "ed25519" (RFC 8463), for keys `hygie init` creates.
    algorithm: str = "rsa"
    # Keys: <key_dir>/<domain>.key; peers' public records: <key_dir>/peers/.
    key_dir: str = "dkim"


@dataclass(frozen=True)
class DatabaseSection:
    # Empty means the embedded SQLite file ``hygie.db`` in the data directory.
    url: str = ""
    echo: bool = False


@dataclass(frozen=True)
class StorageSection:
    # "file": blobs under ``blob_dir``; "database": blobs as rows (for PostgreSQL clusters).
    blob_store: str = "file"
    blob_dir: str = "blobs"
    master_key_file: str = "keys/master.key"
    group_commit_max: int = 64
    # Opened messages (content keys and IMAP summaries) kept in memory by each process, shared
    # by the sessions of an account (storage.message_cache).
    message_cache_mib: int = 64


@dataclass(frozen=True)
class TlsSection:
    cert_file: str = "tls/server.crt"
    key_file: str = "tls/server.key"
    ca_file: str = "pki/root-ca.crt"
    min_version: str = "1.2"


@dataclass(frozen=True)
class AuthSection:
    password_login: bool = True
    # SASL EXTERNAL with a TLS client certificate from this operator's CA (PER, ORG).
    certificate_login: bool = True
    # Failed logins per minute from one client address (an IPv6 /64) on one login name, and
    # from one address on names it never logged in to (`server.auth.guard`).
    max_failures_per_minute: int = 10
    # Failed logins per day on one name from one address; past as many on a name from all
    # addresses, those that failed on it may not try again that day, others are paced.
    max_failures_per_day: int = 100
    # A failed login is answered after this delay (awaited: other sessions go on meanwhile).
    failure_delay_seconds: float = 1.0
    # A password verified this long ago still opens the account without argon2id (a keyed
    # hash in memory, dropped when the password changes; 0: always argon2id).
    credential_cache_seconds: float = 600.0


@dataclass(frozen=True)
class OAuthSection:
    """SASL OAUTHBEARER (RFC 7628) and XOAUTH2 with JWTs from one OpenID provider."""

    enabled: bool = True
    # The provider's `iss`. Empty: Hygie's own development issuer (`hygie token issue`),
    # https://<hostname>/oauth.
    issuer: str = ""
    audience: str = "hygie"
    # The provider's keys: a JWKS file (relative to the data directory) or an https:// URL,
    # fetched again every jwks_refresh_seconds (the last good set is kept on failure).
    jwks: str = "oauth/jwks.json"
    jwks_refresh_seconds: int = 3600
    # CA bundle (PEM) to verify an https:// JWKS URL; empty: the system's trust store.
    jwks_ca_file: str = ""
    # The claim naming the user: a mail address, or an IdNat bound to mailboxes (Pro Santé
    # Connect puts the IdNat in "SubjectNameID").
    subject_claim: str = "sub"
    # The development issuer's signing key (created by `hygie init`).
    dev_issuer_key: str = "oauth/issuer.key"
    # Tolerated clock difference for exp/nbf.
    leeway_seconds: int = 30


@dataclass(frozen=True)
class AgendaSection:
    """Reminders (issue 9 item 4): every ``hygie serve`` looks for due ones this often,
    claims at most ``reminder_batch`` at a time for ``reminder_lease_seconds``."""

    reminder_interval_seconds: float = 5.0
    reminder_batch: int = 100
    reminder_lease_seconds: int = 300


@dataclass(frozen=True)
class SpacesSection:
    """Patient spaces opened by opt-out, and the patients' two-factor sign-in (issue 11)."""

    # Days an invited patient has to refuse before the space opens by itself.
    refusal_days: int = 42
    # Days a closed space's data is kept before it is deleted.
    retention_days: int = 30
    # The address patients reach the pages at (in invitations); empty: https://<hostname>:<https_port>.
    public_url: str = ""
    # Seconds between two runs of the opening, purge and e-mail jobs.
    job_seconds: float = 5.0
    # Life of a token from the two-factor sign-in (XOAUTH2/OAUTHBEARER), and of a page session.
    token_ttl_seconds: int = 600
    # The name shown in authenticator apps.
    totp_issuer: str = "Hygie"


@dataclass(frozen=True)
class NotifySection:
    """The ordinary SMTP relay (a smarthost outside the trust space) that carries invitations
    and "something new in your space" notices to patients' personal e-mail addresses."""

    # Empty: nothing is sent (the mails wait in the database until a host is configured).
    host: str = ""
    port: int = 587
    # "starttls", "tls" (implicit) or "none" (a relay on this machine only).
    security: str = "starttls"
    username: str = ""
    # A file holding the SMTP password (relative to the data directory).
    password_file: str = ""
    # CA bundle (PEM) to check the smarthost's certificate; empty: the system's.
    ca_file: str = ""
    sender: str = ""
    # At most one notification per patient in this many seconds.
    interval_seconds: int = 3600
    # Retry a failed mail after this many seconds, doubling up to an hour.
    retry_base_seconds: int = 60


@dataclass(frozen=True)
class LogSection:
    level: str = "info"
    format: str = "json"


_SECTIONS: dict[str, type[Any]] = {
    "server": ServerSection,
    "smtp": SmtpSection,
    "imap": ImapSection,
    "http": HttpSection,
    "relay": RelaySection,
    "dkim": DkimSection,
    "database": DatabaseSection,
    "storage": StorageSection,
    "tls": TlsSection,
    "auth": AuthSection,
    "oauth": OAuthSection,
    "agenda": AgendaSection,
    "spaces": SpacesSection,
    "notify": NotifySection,
    "log": LogSection,
}


@dataclass(frozen=True)
class Config:
    data_dir: Path
    server: ServerSection = field(default_factory=ServerSection)
    smtp: SmtpSection = field(default_factory=SmtpSection)
    imap: ImapSection = field(default_factory=ImapSection)
    http: HttpSection = field(default_factory=HttpSection)
    relay: RelaySection = field(default_factory=RelaySection)
    dkim: DkimSection = field(default_factory=DkimSection)
    database: DatabaseSection = field(default_factory=DatabaseSection)
    storage: StorageSection = field(default_factory=StorageSection)
    tls: TlsSection = field(default_factory=TlsSection)
    auth: AuthSection = field(default_factory=AuthSection)
    oauth: OAuthSection = field(default_factory=OAuthSection)
    agenda: AgendaSection = field(default_factory=AgendaSection)
    spaces: SpacesSection = field(default_factory=SpacesSection)
    notify: NotifySection = field(default_factory=NotifySection)
    log: LogSection = field(default_factory=LogSection)

    def path(self, relative: str) -> Path:
        """A path from the configuration, relative to the data directory unless absolute."""
        p = Path(relative)
        return p if p.is_absolute() else self.data_dir / p

    @property
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'hygie.db').resolve()}"

    @property
    def oauth_issuer(self) -> str:
        return self.oauth.issuer or f"https://{self.server.hostname}/oauth"

    @property
    def pki_base_url(self) -> str:
        """The CA publication point this configuration says peers reach (no trailing /)."""
        url = self.http.pki_public_url or (
            f"http://{self.server.hostname}:{self.http.pki_port}/pki"
        )
        return url.rstrip("/")

    def is_local_domain(self, domain: str) -> bool:
        return domain.lower() in {d.lower() for d in self.server.domains}

    def postmaster_for(self, sender: str) -> str:
        """Who signs a report to ``sender`` (RFC 3464): this operator's postmaster, in the
        sender's own domain when it is one of ours, else our first domain (never a remote
        sender's domain, which we do not speak for)."""
        domain = sender.rsplit("@", 1)[-1]
        if not self.is_local_domain(domain):
            domain = self.server.domains[0]
        return f"postmaster@{domain}"


def data_dir_from(option: str | None) -> Path:
    """``--data`` if given, else ``$HYGIE_DATA``, else ``./hygie-data``."""
    return Path(option or os.environ.get("HYGIE_DATA") or DEFAULT_DATA_DIR)


def _coerce(section: str, key: str, value: Any, default: Any) -> Any:
    name = f"[{section}] {key}"
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"1", "true", "yes", "on"}:
            return True
        if isinstance(value, str) and value.lower() in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{name} must be true or false, not {value!r}")
    if isinstance(default, int):
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be an integer, not {value!r}") from None
    if isinstance(default, float):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be a number, not {value!r}") from None
    if isinstance(default, tuple):
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ConfigError(f"{name} must be a list of strings")
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be a string, not {value!r}")
    return value


def load_config(data_dir: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read ``hygie.toml`` from ``data_dir`` and apply ``HYGIE_<SECTION>_<KEY>`` overrides."""
    env = os.environ if environ is None else environ
    path = data_dir / CONFIG_FILE
    try:
        raw: dict[str, Any] = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"no {CONFIG_FILE} in {data_dir}: run `hygie --data {data_dir} init` first"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    unknown = set(raw) - set(_SECTIONS)
    if unknown:
        raise ConfigError(f"{path}: unknown section [{sorted(unknown)[0]}]")
    sections: dict[str, Any] = {}
    for section, cls in _SECTIONS.items():
        table = raw.get(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [{section}] must be a table")
        defaults = cls()
        values: dict[str, Any] = {}
        known = {f.name for f in fields(cls)}
        for key in table:
            if key not in known:
                raise ConfigError(f"{path}: unknown key [{section}] {key}")
        for f in fields(cls):
            default = getattr(defaults, f.name)
            value = table.get(f.name, default)
            env_value = env.get(f"HYGIE_{section.upper()}_{f.name.upper()}")
            if env_value is not None:
                value = env_value
            values[f.name] = _coerce(section, f.name, value, default)
        sections[section] = replace(defaults, **values)
    return Config(data_dir=data_dir, **sections)


def render_config(domain: str, hostname: str, pki_public_url: str = "") -> str:
    """The commented ``hygie.toml`` that ``hygie init`` writes."""
    s, m, i, st, t, a = (
        ServerSection(),
        SmtpSection(),
        ImapSection(),
        StorageSection(),
        TlsSection(),
        AuthSection(),
    )
    o = OAuthSection()
    r = RelaySection()
    return f"""\
# Hygie configuration. Every key can be overridden by an environment variable named
# HYGIE_<SECTION>_<KEY>, for example HYGIE_IMAP_TLS_PORT=3993.
# Relative paths are relative to this data directory.

[server]
# Host name announced in SMTP greetings and written in the server certificate.
hostname = "{hostname}"
# Mail domains whose mailboxes live here. Mail to any other domain is refused (no open relay).
domains = ["{domain}"]
# Address the listeners bind to.
listen = "{s.listen}"
# Worker processes sharing the listeners (`hygie serve --workers N` overrides it); 0: one per
# core. They share state through the database only (docs/operations.md).
workers = {s.workers}
# On SIGTERM, how long in-flight sessions may take to finish.
shutdown_grace_seconds = {s.shutdown_grace_seconds}
# How long a process holds an after-commit job (dossier filing, agenda, receipts) before
# another process or node may take it over.
job_lease_seconds = {s.job_lease_seconds}
# X-MSS-NIL of the messages Hygie writes itself (the product reference, ECO.2.4.3).
mss_nil = "{s.mss_nil}"
# Accept test/demonstration INS (OIDs …4.10, …4.11) in documents. Never in production.
test_mode = false

[smtp]
# Message submission (RFC 6409): STARTTLS port and implicit-TLS port (RFC 8314).
submission_port = {m.submission_port}
submission_tls_port = {m.submission_tls_port}
# Largest message accepted, in bytes (advertised with SIZE, RFC 1870).
max_message_size = {m.max_message_size}
max_recipients = {m.max_recipients}
# Per connection (submission and relay): messages, and seconds, before a 421.
max_messages_per_session = {m.max_messages_per_session}
max_session_seconds = {m.max_session_seconds}

[imap]
# IMAP with STARTTLS, and with implicit TLS.
port = {i.port}
tls_port = {i.tls_port}
max_literal_size = {i.max_literal_size}
# Inactivity before an autologout: logged in (RFC 9051 §5.4), and before login.
idle_timeout_seconds = {i.idle_timeout_seconds}
login_timeout_seconds = {i.login_timeout_seconds}

[http]
# Plain-HTTP publication point of the CA (CRL, OCSP, CA certificates), on this port. 0 disables it.
pki_port = {HttpSection().pki_port}
# Its public address, as written into every certificate (CRL distribution point, OCSP, CA
# issuers): peers fetch your CRL there. Empty: http://<hostname>:<pki_port>/pki. Changing it, the
# host name or the port later needs `hygie pki address --update` (see docs/relay.md).
pki_public_url = "{pki_public_url}"
# HTTPS with the server certificate: the directory's FHIR R4 API at https://<hostname>:<port>/fhir/
https_port = {HttpSection().https_port}
# Open connections of each HTTP listener, in all and from one client address (a 503 beyond).
max_connections = {HttpSection().max_connections}
max_connections_per_peer = {HttpSection().max_connections_per_peer}

[relay]
# Inbound relay from other operators (STARTTLS, client certificate required).
port = {r.port}
# The MSSanté trusted-domain list ("liste blanche", XML, //Domaine/Nom): a file or an https URL.
trusted_domains = "{r.trusted_domains}"
trusted_domains_refresh_seconds = {r.trusted_domains_refresh_seconds}
trusted_domains_ca_file = ""
# Other operators' CA certificates (PEM: root and intermediate), e.g. ["trust/igc-sante.pem"].
trust_anchors = []
# Routes to other operators, e.g. ["autre-operateur.fr=mx.autre-operateur.fr:25"]; DNS MX otherwise.
routes = []
# Outbound queue: retries from retry_base_seconds doubling up to retry_max_seconds; a delay
# notice after delay_notice_seconds; give up (and bounce) after lifetime_seconds.
retry_base_seconds = {r.retry_base_seconds}
retry_max_seconds = {r.retry_max_seconds}
delay_notice_seconds = {r.delay_notice_seconds}
lifetime_seconds = {r.lifetime_seconds}
workers = {r.workers}
poll_seconds = {r.poll_seconds}
crl_refresh_seconds = {r.crl_refresh_seconds}

[dkim]
# Sign mail relayed to other operators, verify mail relayed in (Authentication-Results).
sign = true
verify = true
selector = "{DkimSection().selector}"
# Publish the record `hygie dkim record DOMAIN` prints at <selector>._domainkey.<domain>.
algorithm = "{DkimSection().algorithm}"
key_dir = "{DkimSection().key_dir}"

[database]
# Empty: the embedded SQLite database hygie.db in this directory (WAL mode).
# For PostgreSQL: url = "postgresql+asyncpg://user:password@host:5432/hygie"
url = ""

[storage]
# Where encrypted message bodies live: "file" (blob_dir) or "database" (rows).
blob_store = "{st.blob_store}"
blob_dir = "{st.blob_dir}"
# The master key that wraps every mailbox key. Keep it out of database backups.
master_key_file = "{st.master_key_file}"
# Most deliveries that share one durable commit.
group_commit_max = {st.group_commit_max}

[tls]
cert_file = "{t.cert_file}"
key_file = "{t.key_file}"
# The root certificate clients must trust (also: `hygie pki ca-cert`).
ca_file = "{t.ca_file}"
# "1.2" or "1.3".
min_version = "{t.min_version}"

[auth]
# Password login (SASL PLAIN/LOGIN, IMAP LOGIN), only ever over TLS.
password_login = {str(a.password_login).lower()}
# Certificate login (SASL EXTERNAL) with a client certificate from this operator's CA.
certificate_login = {str(a.certificate_login).lower()}
# Failed logins allowed each minute from one client address (IPv6: its /64) on one login
# name, and from one address on names that never logged in from it.
max_failures_per_minute = {a.max_failures_per_minute}
# Failed logins a day on one name from one address; past as many on a name from all addresses,
# the addresses that failed on it wait until the next day and the others are slowed down.
max_failures_per_day = {a.max_failures_per_day}
# Seconds before a failed login is answered (slows guessing; never blocks other sessions).
failure_delay_seconds = {a.failure_delay_seconds}
# Seconds a verified password is remembered in memory (a keyed hash) so that the next login
# costs microseconds; a password change or a disabled account takes effect at once. 0: never.
credential_cache_seconds = {a.credential_cache_seconds}

[oauth]
# Token login (SASL OAUTHBEARER, RFC 7628, and XOAUTH2) with JWTs (RS256 or ES256).
enabled = {str(o.enabled).lower()}
# The provider's issuer (`iss`). Empty: Hygie's development issuer, https://{hostname}/oauth,
# whose tokens `hygie token issue ADDRESS` prints. For Pro Santé Connect, put its issuer,
# its JWKS URL, your client id as audience, and subject_claim = "SubjectNameID".
issuer = "{o.issuer}"
audience = "{o.audience}"
# A JWKS file (relative to this directory) or an https:// URL, refreshed on this period.
jwks = "{o.jwks}"
jwks_refresh_seconds = {o.jwks_refresh_seconds}
# CA bundle (PEM) to check an https:// JWKS URL against; empty: the system's trust store.
jwks_ca_file = "{o.jwks_ca_file}"
# The claim naming the user: a mail address, or an IdNat bound with `hygie user bind`.
subject_claim = "{o.subject_claim}"
dev_issuer_key = "{o.dev_issuer_key}"
leeway_seconds = {o.leeway_seconds}

[agenda]
# Reminders: how often each server looks for due ones (seconds), how many it takes at once,
# and how long it holds them before another server may send them (a crashed server's).
reminder_interval_seconds = {AgendaSection().reminder_interval_seconds}
reminder_batch = {AgendaSection().reminder_batch}
reminder_lease_seconds = {AgendaSection().reminder_lease_seconds}
[spaces]
# Patient spaces opened by opt-out: days to refuse, days a closed space's data is kept.
refusal_days = {SpacesSection().refusal_days}
retention_days = {SpacesSection().retention_days}
# Where patients reach the pages (refusal, sign-in); empty: https://<hostname>:<https_port>.
public_url = ""
job_seconds = {SpacesSection().job_seconds}
token_ttl_seconds = {SpacesSection().token_ttl_seconds}
totp_issuer = "{SpacesSection().totp_issuer}"

[notify]
# The ordinary SMTP relay for invitations and notifications to patients' personal e-mail
# (no health information ever goes there). Empty host: mails wait until one is set.
host = ""
port = {NotifySection().port}
# "starttls", "tls" or "none"
security = "{NotifySection().security}"
username = ""
password_file = ""
ca_file = ""
sender = ""
# At most one notification per patient per interval.
interval_seconds = {NotifySection().interval_seconds}
retry_base_seconds = {NotifySection().retry_base_seconds}

[log]
level = "info"
# "json" (one object a line) or "console".
format = "json"
"""
