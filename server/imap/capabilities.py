"""What the server advertises (RFC 9051 §7.2.2), by connection state and TLS."""

from __future__ import annotations

from server.imap.proto.states import State
from server.imap.session import Session


def capabilities(session: Session) -> list[str]:
    """What the session may use now (RFC 9051 §7.2.2): no login before TLS on port 143."""
    caps = ["IMAP4rev2", "IMAP4rev1"]
    if session.state is State.NOT_AUTHENTICATED:
        if not session.tls:
            return [*caps, "STARTTLS", "LOGINDISABLED", "LITERAL+", "ID"]
        caps.append("AUTH=PLAIN")
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
    "SEARCHRES",
    "STATUS=SIZE",
    "CHILDREN",
    "LIST-EXTENDED",
    "LIST-STATUS",
    "BINARY",
    "UTF8=ACCEPT",
)
