"""Two operators on one machine, trusting each other: for the relay tests and benchmark.

Each ``ServerProcess`` gets its own CA and domain; each puts the other's CA certificates in
``[relay] trust_anchors``, both domains in its trusted-domain list, and a route to the other's
relay port. Host name "localhost" makes the routes and each CA's CRL distribution point resolve
on this machine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from bench.harness import ServerProcess
from server.outbound.dkim import dns_record, key_path
from server.outbound.trust import render_trusted_domains


def operator(
    domain: str, users: Mapping[str, str], base: Path, env: Mapping[str, str] | None = None
) -> ServerProcess:
    srv = ServerProcess(users=dict(users), domain=domain, hostname="localhost",
                        base_dir=base / domain, env=dict(env or {}))  # fmt: skip
    srv.init()
    return srv


def trust_each_other(
    a: ServerProcess,
    b: ServerProcess,
    *,
    extra_domains: Iterable[str] = (),
    extra_routes: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
) -> None:
    extra_domains, extra_routes = list(extra_domains), list(extra_routes)
    for me, peer in ((a, b), (b, a)):
        pki = peer.data_dir / "pki"
        bundle = me.data_dir / "trust" / f"{peer.domain}.pem"
        bundle.write_bytes((pki / "root-ca.crt").read_bytes()
                           + (pki / "intermediate-ca.crt").read_bytes())  # fmt: skip
        (me.data_dir / "trust" / "liste-blanche.xml").write_bytes(
            render_trusted_domains([a.domain, b.domain, *extra_domains])
        )
        # The peer's DKIM public key, as its DNS would publish it.
        peers = me.data_dir / "dkim" / "peers"
        peers.mkdir(parents=True, exist_ok=True)
        record = dns_record(key_path(peer.data_dir / "dkim", peer.domain))
        (peers / f"hygie._domainkey.{peer.domain}.txt").write_text(record)
        routes = [f"{peer.domain}=localhost:{peer.relay_port}", *extra_routes]
        me.extra_env.update({
            "HYGIE_RELAY_TRUST_ANCHORS": f"trust/{peer.domain}.pem",
            "HYGIE_RELAY_ROUTES": ",".join(routes),
            **(env or {}),
        })  # fmt: skip
