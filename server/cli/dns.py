"""``hygie dns records DOMAIN``: the DNS records a mail domain of this server publishes, in
zone-file form: MX, the RFC 6186 SRV records that lead a generic mail client to submission
and IMAP (STARTTLS on 587/143, RFC 8314 implicit TLS beside them), the autoconfig host, and
the DKIM TXT record (MSSanté reference (b) 20)."""

from __future__ import annotations

import click

from server.cli.common import _config, fail


def txt(value: str) -> str:
    """A TXT value as quoted strings of at most 255 characters (RFC 1035 §3.3.14)."""
    return " ".join(f'"{value[i:i + 255]}"' for i in range(0, len(value), 255))


@click.group("dns")
def dns_group() -> None:
    """The DNS records of the local domains."""


@dns_group.command("records")
@click.argument("domain")
@click.pass_context
def dns_records(ctx: click.Context, domain: str) -> None:
    """Print the DNS records to publish for DOMAIN (zone-file lines)."""
    from server.outbound.dkim import DkimError, dns_record, key_path

    config = _config(ctx)
    domain = domain.strip().lower().rstrip(".")
    if not config.is_local_domain(domain):
        fail(f"{domain} is not a domain of this server")
    host = config.server.hostname.rstrip(".") + "."
    lines = [
        f"{domain}. IN MX 10 {host}",
        f"_submission._tcp.{domain}. IN SRV 0 1 {config.smtp.submission_port} {host}",
        f"_imap._tcp.{domain}. IN SRV 0 1 {config.imap.port} {host}",
        f"_submissions._tcp.{domain}. IN SRV 0 1 {config.smtp.submission_tls_port} {host}",
        f"_imaps._tcp.{domain}. IN SRV 0 1 {config.imap.tls_port} {host}",
        # POP3 is not offered (RFC 6186 §4: a "." target says so).
        f"_pop3._tcp.{domain}. IN SRV 0 0 0 .",
        f"_pop3s._tcp.{domain}. IN SRV 0 0 0 .",
        f"autoconfig.{domain}. IN CNAME {host}",
    ]
    path = key_path(config.path(config.dkim.key_dir), domain)
    if path.exists():
        try:
            record = dns_record(path)
        except (DkimError, ValueError, OSError) as exc:
            fail(str(exc))
        lines.append(f"{config.dkim.selector}._domainkey.{domain}. IN TXT {txt(record)}")
    else:
        lines.append(f"; no DKIM key for {domain} yet: hygie dkim keygen {domain}")
    for line in lines:
        click.echo(line)
