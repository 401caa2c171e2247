"""Where peers fetch our CRL and OCSP answers, and whether the certificates still say so.

Every certificate the CA issues names the publication point (CRL distribution point, OCSP and
caIssuers in the AIA, RFC 5280 §4.2.1.13 and §4.2.2.1) under the base URL kept in the CA's
``ca.json``; ``hygie init`` writes it from ``[http] pki_public_url`` (else
``http://<hostname>:<pki_port>/pki``). An operator who later changes the host name, the port or
that URL in ``hygie.toml`` would go on issuing certificates whose revocation data no peer can
fetch, and a peer refuses such a certificate (``454 4.7.5``, design.md §2.6). `problems` says
where the configuration, the CA settings and the server certificate disagree; ``hygie pki``
prints it, ``hygie serve`` logs it at start, and ``hygie pki address --update`` follows the
configuration (`pki.ca.CertificateAuthority.move_publication`).
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

from pki.errors import PkiError
from pki.registry import CaSettings
from server.config import Config


def crl_points(certificate: x509.Certificate) -> list[str]:
    """The HTTP(S) CRL distribution points a certificate names."""
    try:
        points = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return []
    return [
        name.value
        for point in points
        for name in (point.full_name or [])
        if isinstance(name, x509.UniformResourceIdentifier)
    ]


def server_certificate(config: Config) -> x509.Certificate | None:
    """The first certificate of ``[tls] cert_file`` (ours), if it can be read."""
    path: Path = config.path(config.tls.cert_file)
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None


def problems(config: Config) -> list[str]:
    """One sentence per disagreement between the configured publication point, the CA's
    settings and the server certificate; empty when they agree."""
    configured = config.pki_base_url
    try:
        published = CaSettings.load(config.path("pki")).base_url
    except PkiError as exc:
        return [str(exc)]
    found = []
    if published != configured:
        found.append(
            f"the CA writes {published}/ into its certificates but the configuration says "
            f"peers reach {configured}/ ([http] pki_public_url, else http://<hostname>:"
            "<pki_port>/pki): run `hygie pki address --update`"
        )
    cert = server_certificate(config)
    wanted = CaSettings(base_url=configured).crl_url
    if cert is not None and wanted not in crl_points(cert):
        named = ", ".join(crl_points(cert)) or "no CRL address"
        found.append(
            f"the server certificate names {named}, not {wanted}: peers cannot check it; "
            "run `hygie pki address --update` and restart `hygie serve`"
        )
    return found
