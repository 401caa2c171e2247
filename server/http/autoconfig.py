"""Mail client autoconfiguration (MSSanté reference (b) 20): Thunderbird's autoconfig XML
(the "clientConfig" format of https://wiki.mozilla.org/Thunderbird:Autoconfiguration), served
at ``/.well-known/autoconfig/mail/config-v1.1.xml`` (on the mail domain's own site) and at
``/mail/config-v1.1.xml`` (the ``autoconfig.<domain>`` host), so that a generic client finds
submission and IMAP with STARTTLS and OAuth2 by itself. The DNS side (RFC 6186 SRV records)
is ``hygie dns records DOMAIN`` (server/cli/dns.py).

The document says only what the server already tells anyone who connects (host, ports,
mechanisms); for an ``emailaddress`` of a domain that is not ours, 404.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from server.config import Config
from server.http.responses import text

PATHS = ("/.well-known/autoconfig/mail/config-v1.1.xml", "/mail/config-v1.1.xml")


def client_config(config: Config, domain: str) -> bytes:
    """The clientConfig document for the mailboxes of ``domain`` (a local domain)."""
    root = ET.Element("clientConfig", version="1.1")
    provider = ET.SubElement(root, "emailProvider", id=domain)
    for name in config.server.domains:
        ET.SubElement(provider, "domain").text = name
    ET.SubElement(provider, "displayName").text = f"Messagerie sécurisée de santé {domain}"
    ET.SubElement(provider, "displayShortName").text = domain
    servers = (
        ("incomingServer", "imap", config.imap.port),
        ("outgoingServer", "smtp", config.smtp.submission_port),
    )
    for element, kind, port in servers:
        server = ET.SubElement(provider, element, type=kind)
        ET.SubElement(server, "hostname").text = config.server.hostname
        ET.SubElement(server, "port").text = str(port)
        ET.SubElement(server, "socketType").text = "STARTTLS"
        ET.SubElement(server, "username").text = "%EMAILADDRESS%"
        # OAuth2 first (Pro Santé Connect or the operator's issuer), the password after it.
        if config.oauth.enabled:
            ET.SubElement(server, "authentication").text = "OAuth2"
        ET.SubElement(server, "authentication").text = "password-cleartext"
    if config.oauth.enabled:
        oauth = ET.SubElement(root, "oAuth2")
        issuer = config.oauth_issuer.rstrip("/")
        ET.SubElement(oauth, "issuer").text = issuer
        ET.SubElement(oauth, "scope").text = "openid"
        ET.SubElement(oauth, "authURL").text = f"{issuer}/authorize"
        ET.SubElement(oauth, "tokenURL").text = f"{issuer}/token"
    ET.indent(root)
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document + b"\n"


def autoconfig_routes(config: Config) -> list[BaseRoute]:
    async def handle(request: Request) -> Response:
        address = request.query_params.get("emailaddress", "")
        if address:
            domain = address.rpartition("@")[2].strip().lower()
        else:  # autoconfig.<domain>, or the domain's own site
            host = request.headers.get("host", "")
            domain = host.rsplit(":", 1)[0].lower().removeprefix("autoconfig.")
        if not (config.is_local_domain(domain)
                or config.is_local_domain(domain.removeprefix("patient."))):  # fmt: skip
            domain = config.server.domains[0] if not address else ""
        if not domain:
            return text(404, "no mailboxes of that domain here")
        return Response(client_config(config, domain), 200,
                        headers={"Cache-Control": "max-age=3600"},
                        media_type="application/xml; charset=utf-8")  # fmt: skip

    return [Route(path, handle, methods=["GET", "HEAD"]) for path in PATHS]
