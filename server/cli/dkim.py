"""``hygie dkim record|keygen``: the DKIM keys of the local domains (RFC 6376, RFC 8463) and
the DNS record to publish for each."""

from __future__ import annotations

import click

from server.cli.common import _config, fail


@click.group("dkim")
def dkim_group() -> None:
    """DKIM keys of the local domains."""


@dkim_group.command("record")
@click.argument("domain")
@click.pass_context
def dkim_record(ctx: click.Context, domain: str) -> None:
    """Print the DNS TXT record to publish for DOMAIN's signing key."""
    from server.outbound.dkim import DkimError, dns_record, key_path

    config = _config(ctx)
    path = key_path(config.path(config.dkim.key_dir), domain)
    if not path.exists():
        fail(f"no DKIM key for {domain} (hygie dkim keygen {domain})")
    try:
        record = dns_record(path)
    except (DkimError, ValueError, OSError) as exc:
        fail(str(exc))
    click.echo(f'{config.dkim.selector}._domainkey.{domain.lower()}. IN TXT "{record}"')


@dkim_group.command("keygen")
@click.argument("domain")
@click.pass_context
def dkim_keygen(ctx: click.Context, domain: str) -> None:
    """Create DOMAIN's signing key ([dkim] algorithm) if it has none."""
    from server.outbound.dkim import DkimError, ensure_key

    config = _config(ctx)
    if not config.is_local_domain(domain):
        fail(f"{domain} is not a domain of this server")
    try:
        path = ensure_key(config.path(config.dkim.key_dir), domain, config.dkim.algorithm)
    except DkimError as exc:
        fail(str(exc))
    click.echo(f"{path}")
