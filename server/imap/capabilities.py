"""What the server advertises (RFC 9051 §7.2.2), by connection state and TLS."""

from __future__ import annotations

from server.auth import sasl
from server.imap.proto.states import State
from server.imap.session import Session


def mechanisms(session: Session) -> list[str]:
    """SASL mechanisms usable now: none before TLS; EXTERNAL only with a client certificate."""
    if not session.tls:
        return []
    auth = session.server.auth
    usable = []
    if auth.certificates is not None and session.client_certificate() is not None:
        usable.append(sasl.EXTERNAL)
    if auth.tokens is not None:
        usable += [sasl.OAUTHBEARER, sasl.XOAUTH2]
    if auth.config.password_login:
        usable.append(sasl.PLAIN)
    return usable


def capabilities(session: Session) -> list[str]:
    """What the session may use now (RFC 9051 §7.2.2): no login before TLS on port 143."""
    caps = ["IMAP4rev2", "IMAP4rev1"]
    if session.state is State.NOT_AUTHENTICATED:
        if not session.tls:
            return [*caps, "STARTTLS", "LOGINDISABLED", "LITERAL+", "ID"]
        caps += [f"AUTH={m}" for m in mechanisms(session)]
        if not session.server.auth.config.password_login:
            caps.append("LOGINDISABLED")
    limit = f"APPENDLIMIT={session.config.smtp.max_message_size}"
    return [*caps, *AUTHENTICATED_CAPABILITIES, limit]


#: Every extension advertised after login; each is in docs/standards.md.
AUTHENTICATED_CAPABILITIES = (
    "LITERAL+",
    "ENABLE",
    "IDLE",
    "UIDPLUS",
    "MOVE",
    "CONDSTORE",
    "QRESYNC",
    "SPECIAL-USE",
    "CREATE-SPECIAL-USE",
    "NAMESPACE",
    "UNSELECT",
    "SASL-IR",
    "ID",
    "ESEARCH",
    "SORT",
    "SORT=DISPLAY",
    "ESORT",
    "PARTIAL",
    "THREAD=ORDEREDSUBJECT",
    "THREAD=REFERENCES",
    "SEARCHRES",
    "STATUS=SIZE",
    "CHILDREN",
    "LIST-EXTENDED",
    "LIST-STATUS",
    "BINARY",
    "UTF8=ACCEPT",
    "MULTIAPPEND",
    "UNAUTHENTICATE",
    "REPLACE",
    "COMPRESS=DEFLATE",
)
