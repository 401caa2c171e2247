"""Every SMTP reply Hygie sends, in one table (RFC 5321 §4.2, enhanced codes RFC 3463/2034).

Code and tests use these names. aiosmtpd's own built-in replies lack enhanced status codes;
:data:`BUILTIN` maps them to ours, so a client never sees two styles.
"""

from __future__ import annotations

import re

S220_READY = "220 {hostname} ESMTP Hygie ready"
S221_BYE = "221 2.0.0 Bye"
S235_AUTH_OK = "235 2.7.0 Authentication successful"
S250_OK = "250 2.0.0 OK"
S250_SENDER_OK = "250 2.1.0 Sender OK"
S250_RECIPIENT_OK = "250 2.1.5 Recipient OK"
S250_ACCEPTED = "250 2.0.0 Message accepted for delivery"
S354_DATA = "354 End data with <CR><LF>.<CR><LF>"
S421_SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"
S451_LOCAL_ERROR = "451 4.3.0 Temporary local problem, try again later"
S452_TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
S454_AUTH_TEMP = "454 4.7.0 Temporary authentication failure, try again later"
S500_LINE_TOO_LONG = "500 5.5.2 Line too long (RFC 5321 §4.5.3.1.6: 1000 octets at most)"
S501_BAD_ADDRESS = "501 5.1.3 Bad address syntax"
S501_BAD_BASE64 = "501 5.5.2 Cannot decode base64"
S530_STARTTLS_FIRST = "530 5.7.0 Must issue a STARTTLS command first"
S503_TLS_ACTIVE = "503 5.5.1 TLS already active (RFC 3207 §4.2)"
S530_AUTH_REQUIRED = "530 5.7.0 Authentication required"
S534_MECH_TOO_WEAK = "534 5.7.9 Authentication mechanism not enabled on this server"
S535_AUTH_FAILED = "535 5.7.8 Authentication credentials invalid"
S501_BAD_SASL = "501 5.5.2 Malformed SASL message"
S501_AUTH_CANCELLED = "501 5.7.0 Authentication cancelled"
S500_AUTH_LINE_TOO_LONG = "500 5.5.6 Authentication exchange line too long (RFC 4954 §4: 12288)"
S504_MECH_UNAVAILABLE = "504 5.5.4 Authentication mechanism not available on this connection"
S550_NO_SUCH_USER = "550 5.1.1 No such user here"
S553_UTF8_WITHOUT_SMTPUTF8 = "553 5.6.7 A UTF-8 address needs MAIL FROM with SMTPUTF8 (RFC 6531)"
S554_UTF8_HEADERS_WITHOUT_SMTPUTF8 = (
    "554 5.6.9 UTF-8 header fields need MAIL FROM with SMTPUTF8 (RFC 6532, RFC 6531)"
)
S554_8BIT_WITHOUT_8BITMIME = "554 5.6.1 8-bit content needs MAIL FROM with BODY=8BITMIME (RFC 6152)"
S552_TOO_BIG = "552 5.3.4 Message too big for this server"
S553_SENDER_NOT_OWNED = "553 5.7.1 Sender address not owned by the authenticated account"
# From rules (issue 17; RFC 5322 §3.6.2, RFC 6409 §8.1). {field} is the field's name as in
# RFC 5322: From, Sender, Reply-To, Resent-From, Resent-Sender, Resent-To …
S550_FIELD_NOT_OWNED = "550 5.7.1 {field}: address not one the authenticated account may send as"
S550_FROM_NOT_OWNED = S550_FIELD_NOT_OWNED.format(field="From")
S550_FROM_TWICE = "550 5.7.1 More than one From: field (RFC 5322 §3.6: exactly one)"
S550_FROM_EMPTY = "550 5.7.1 From: field without an address"
S550_NAME_SHOWS_ADDRESS = (
    "550 5.7.1 {field}: a display name may not show an address other than the mailbox's own"
)
S550_SOURCE_ROUTE = "550 5.7.1 {field}: source routes (obsolete syntax) are not accepted"
# MSSanté test case 17: a document masked from professionals (MASQUE_PS) never reaches a
# professional's mailbox; an archive whose flags cannot be read reaches none either.
S550_MASKED_FROM_PROFESSIONALS = (
    "550 5.7.1 The IHE_XDM.zip holds a document masked from professionals (MASQUE_PS): "
    "send it to the patient or to dmp@ only, without professional recipients"
)
# MSSanté test case 13 (ENS MES): a document goes to its patient's own address, a minor's or
# a protected adult's included, never to a legal representative's or any other patient's.
S550_DOCUMENT_OF_ANOTHER_PATIENT = (
    "550 5.7.1 The IHE_XDM.zip is about another patient than a patient recipient: send a "
    "patient's documents to that patient's own address (a minor's too), never to a legal "
    "representative's"
)
S554_XDM_UNREADABLE = (
    "554 5.6.0 The IHE_XDM.zip cannot be read, so its restriction flags cannot be checked "
    "for professional recipients: {reason}"
)
S554_RELAY_DENIED = "554 5.7.1 Relay access denied: this server only delivers to its own domains"
S554_BARE_NEWLINE = (
    "554 5.6.0 Bare CR or LF in message data (RFC 5321 §2.3.8): lines must end with CRLF"
)
S421_SESSION_TOO_LONG = "421 4.4.2 Session time limit reached, please reconnect"
S421_TOO_MANY_FAILURES = "421 4.7.0 Too many failed logins, try again later"

BUILTIN: dict[str, str] = {
    "530 Must issue a STARTTLS command first": S530_STARTTLS_FIRST,
    "500 Error: line too long": S500_LINE_TOO_LONG,
    "500 Line too long (see RFC5321 4.5.3.1.6)": S500_LINE_TOO_LONG,
    "552 Error: Too much mail data": S552_TOO_BIG,
    "552 Error: message size exceeds fixed maximum message size": S552_TOO_BIG,
    "503 Error: need MAIL command": "503 5.5.1 Need MAIL command first",
    "503 Error: need RCPT command": "503 5.5.1 Need RCPT command first",
    "503 Error: nested MAIL command": "503 5.5.1 Nested MAIL command",
    "503 Already authenticated": "503 5.5.1 Already authenticated",
    "250 OK": S250_OK,
    "221 Bye": S221_BYE,
    "501 Not enough value": "501 5.5.4 AUTH needs a mechanism",
    "501 Too many values": "501 5.5.4 Too many AUTH arguments",
    "501 5.5.2 Can't decode base64": S501_BAD_BASE64,
    "501 5.5.2 Can't split auth value": "501 5.5.2 Malformed PLAIN credentials",
    "555 MAIL FROM parameters not recognized or not implemented": (
        "555 5.5.4 MAIL FROM parameters not recognized or not implemented"
    ),
    "555 RCPT TO parameters not recognized or not implemented": (
        "555 5.5.4 RCPT TO parameters not recognized or not implemented"
    ),
}

_ENHANCED = re.compile(r"^[245]\d\d[ -][245]\.\d{1,3}\.\d{1,3}( |$)")
_FALLBACK = {"500": "5.5.2", "501": "5.5.4", "502": "5.5.1", "503": "5.5.1", "504": "5.5.4"}


def enhance(status: str) -> str:
    """Our wording of a built-in aiosmtpd reply, with an enhanced status code."""
    mapped = BUILTIN.get(status)
    if mapped is not None:
        return mapped
    code = status[:3]
    if code in _FALLBACK and len(status) > 3 and status[3] == " " and not _ENHANCED.match(status):
        return f"{code} {_FALLBACK[code]} {status[4:]}"
    return status
