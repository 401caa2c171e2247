"""Which command is allowed in which connection state: the table is data (RFC 9051 §3, §6)."""

from __future__ import annotations

from enum import Enum

from .commands import Authenticate, Command


class State(Enum):
    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


# RFC 9051 §6.1: valid in any state.
ANY_STATE = frozenset({"CAPABILITY", "NOOP", "LOGOUT", "ID"})
# RFC 9051 §6.2: valid only before authentication.
NOT_AUTHENTICATED = frozenset({"STARTTLS", "AUTHENTICATE", "LOGIN"})
# RFC 9051 §6.3: valid once authenticated, and in the selected state too.
AUTHENTICATED = frozenset(
    {
        "SELECT", "EXAMINE", "CREATE", "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE", "LIST",
        "LSUB", "NAMESPACE", "STATUS", "APPEND", "IDLE", "GETQUOTA", "GETQUOTAROOT",
        "UNAUTHENTICATE",  # RFC 8437 §2: in the authenticated and selected states
        "COMPRESS",  # RFC 4978 §3 (after login, as Dovecot offers it)
    }
)  # fmt: skip
# RFC 5161 §3.1: ENABLE only in the authenticated state, before any SELECT.
AUTHENTICATED_ONLY = frozenset({"ENABLE"})
# RFC 9051 §6.4: valid only with a mailbox selected (UID variants share the name).
SELECTED = frozenset(
    {
        "CHECK", "CLOSE", "UNSELECT", "EXPUNGE", "SEARCH", "FETCH", "STORE", "COPY", "MOVE",
        "SORT", "THREAD", "REPLACE",
    }
)  # fmt: skip

#: The table: state → command names allowed in it.
ALLOWED: dict[State, frozenset[str]] = {
    State.NOT_AUTHENTICATED: ANY_STATE | NOT_AUTHENTICATED,
    State.AUTHENTICATED: ANY_STATE | AUTHENTICATED | AUTHENTICATED_ONLY,
    State.SELECTED: ANY_STATE | AUTHENTICATED | SELECTED,
    State.LOGOUT: frozenset(),
}

# RFC 9051 §6.2.3 / §11.1 and design §4: with LOGINDISABLED (no TLS yet) these commands
# must be refused (``NO [PRIVACYREQUIRED]``); the session knows whether TLS is up.
REQUIRES_TLS = frozenset({"LOGIN"})
#: SASL mechanisms that reveal a secret and so need TLS (RFC 4616 PLAIN, LOGIN, XOAUTH2 …).
PLAINTEXT_MECHANISMS = frozenset({"PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER"})
#: RFC 9051 §6.2.1: STARTTLS only while TLS is not active.
ONLY_WITHOUT_TLS = frozenset({"STARTTLS"})


def is_allowed(state: State, command: Command | str) -> bool:
    """Whether ``command`` (or a command name) may be issued in ``state``."""
    name = command if isinstance(command, str) else command.name
    return name.upper() in ALLOWED[state]


def requires_tls(command: Command) -> bool:
    """Whether ``command`` must be refused on a connection without TLS (LOGINDISABLED)."""
    if isinstance(command, Authenticate):
        return command.mechanism in PLAINTEXT_MECHANISMS
    return command.name in REQUIRES_TLS
