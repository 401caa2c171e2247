"""Delivery Status Notifications: the SMTP DSN extension (RFC 3461) and the report format
(RFC 3464, in a ``multipart/report`` of RFC 6522).

Sans-I/O: the SMTP server hands :func:`parse_mail_params` / :func:`parse_rcpt_params` the
parameters of ``MAIL FROM`` / ``RCPT TO`` and stores the results with the envelope; the outbound
queue asks :func:`wants` whether a recipient's outcome is to be reported and builds the report
with :func:`build_report`. Sending it is the queue's business: with the null reverse-path
``MAIL FROM:<>`` (RFC 3461 §6.2, RFC 5321 §4.5.5), and never for a message whose own sender was
null (:func:`is_bounce`), so that two systems cannot bounce bounces at each other forever.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from mailformats import report

#: A returned original larger than this goes back as its header section only (RFC 3461 §4.3
#: lets the reporting MTA return less than asked; a bounce must not be a way to mail back
#: tens of megabytes, and a health message's attachments are better not echoed in full).
RETURN_LIMIT = 1024 * 1024
#: The returned header section is cut (after a whole field) past this size.
HEADERS_LIMIT = 64 * 1024

#: RFC 3461 §4.4: the ENVID, before xtext encoding, is at most 100 characters.
ENVID_MAX = 100
#: RFC 3461 §4.2: the ORCPT value is at most 500 characters.
ORCPT_MAX = 500

ACTIONS = frozenset({"failed", "delayed", "delivered", "relayed", "expanded"})
NOTIFY_EVENTS = frozenset({"SUCCESS", "FAILURE", "DELAY"})


class DsnSyntaxError(ValueError):
    """A malformed DSN parameter from the client: the message is the text of a ``501 5.5.4``."""

    @property
    def reply(self) -> str:
        return f"501 5.5.4 {self}"


# --- xtext ---------------------------------------------------------------------------------

# RFC 3461 §4:
#   xtext = *( xchar / hexchar )
#   xchar = any ASCII CHAR between "!" (33) and "~" (126) inclusive, except for "+" and "=".
#   hexchar = ASCII "+" immediately followed by two upper case hexadecimal digits
_XTEXT = re.compile(r"(?:[!-*,-<>-~]|\+[0-9A-Fa-f]{2})*")
_HEXCHAR = re.compile(r"\+([0-9A-Fa-f]{2})")


def xtext_decode(s: str) -> str:
    """The text an xtext stands for; the octets it encodes are read as UTF-8.

    Lower-case hex digits are accepted (RFC 3461 asks senders for upper case)."""
    if not _XTEXT.fullmatch(s):
        raise DsnSyntaxError("Malformed xtext (RFC 3461 §4)")
    octets = _HEXCHAR.sub(lambda m: chr(int(m.group(1), 16)), s).encode("latin-1")
    try:
        return octets.decode("utf-8")
    except UnicodeDecodeError:
        raise DsnSyntaxError("xtext does not encode UTF-8 text") from None


def xtext_encode(s: str) -> str:
    """``s`` as xtext: its UTF-8 octets, ``+HH`` for any outside ``!``..``~`` and ``+``, ``=``."""
    return "".join(
        chr(b) if 33 <= b <= 126 and b not in (0x2B, 0x3D) else f"+{b:02X}"
        for b in s.encode("utf-8")
    )


# RFC 6533 §3: utf-8-addr-xtext / utf-8-addr-unitext, where a character is written
# "\x{" 1*6 HEXDIG "}" (upper case); used for addresses in the "utf-8" address type.
_UNITEXT_ESCAPE = re.compile(r"\\x\{([0-9A-Fa-f]{1,6})\}")


def _utf8_addr_decode(s: str) -> str:
    def char(match: re.Match[str]) -> str:
        code = int(match.group(1), 16)
        if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            raise DsnSyntaxError("Bad \\x{} escape in a utf-8 address (RFC 6533 §3)")
        return chr(code)

    return _UNITEXT_ESCAPE.sub(char, s)


utf8_addr_xtext = report.utf8_addr_xtext


# --- MAIL FROM and RCPT TO parameters ----------------------------------------------------


@dataclass(frozen=True)
class DsnMail:
    """The DSN parameters of ``MAIL FROM`` (RFC 3461 §4.3, §4.4)."""

    ret: str | None  # "FULL" | "HDRS"
    envid: str | None  # decoded from xtext


@dataclass(frozen=True)
class DsnRcpt:
    """The DSN parameters of one ``RCPT TO`` (RFC 3461 §4.1, §4.2)."""

    notify: frozenset[str] | None  # {"NEVER"} or a non-empty subset of NOTIFY_EVENTS
    orcpt: str | None  # "rfc822;addr", decoded from xtext


def _keyed(params: Mapping[str, object], names: Sequence[str]) -> dict[str, str]:
    """The values of the parameters we handle, by upper-case name; others are ignored."""
    found: dict[str, str] = {}
    for key, value in params.items():
        name = str(key).upper()
        if name not in names:
            continue
        if name in found:
            raise DsnSyntaxError(f"{name} given twice (RFC 3461 §4)")
        if not isinstance(value, str) or value == "":
            raise DsnSyntaxError(f"{name} needs a value (RFC 3461 §4)")
        found[name] = value
    return found


def _printable_ascii(text: str) -> bool:
    return all(" " <= c <= "~" for c in text)


def parse_mail_params(params: Mapping[str, str]) -> DsnMail:
    """RET and ENVID from the ``MAIL FROM`` parameters (keyword → raw value)."""
    found = _keyed(params, ("RET", "ENVID"))
    ret = found.get("RET")
    if ret is not None:
        # RFC 3461 §4.3: ret-parameter = "RET=" ("FULL" / "HDRS")
        ret = ret.upper()
        if ret not in ("FULL", "HDRS"):
            raise DsnSyntaxError("RET must be FULL or HDRS (RFC 3461 §4.3)")
    envid = found.get("ENVID")
    if envid is not None:
        # RFC 3461 §4.4: envid-parameter = "ENVID=" xtext; printable US-ASCII, ≤ 100 chars
        envid = xtext_decode(envid)
        if len(envid) > ENVID_MAX:
            raise DsnSyntaxError(f"ENVID longer than {ENVID_MAX} characters (RFC 3461 §4.4)")
        if not _printable_ascii(envid):
            raise DsnSyntaxError("ENVID must be printable US-ASCII (RFC 3461 §4.4)")
    return DsnMail(ret=ret, envid=envid)


# RFC 5322 §3.2.3: atom = 1*atext
_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+")


def parse_rcpt_params(params: Mapping[str, str]) -> DsnRcpt:
    """NOTIFY and ORCPT from one ``RCPT TO``'s parameters (keyword → raw value)."""
    found = _keyed(params, ("NOTIFY", "ORCPT"))
    notify: frozenset[str] | None = None
    if "NOTIFY" in found:
        # RFC 3461 §4.1: notify-esmtp-value = "NEVER" / 1#notify-list-element
        #                notify-list-element = "SUCCESS" / "FAILURE" / "DELAY"
        items = [item.strip().upper() for item in found["NOTIFY"].split(",")]
        if items == ["NEVER"]:
            notify = frozenset({"NEVER"})
        elif "NEVER" in items:
            raise DsnSyntaxError("NOTIFY=NEVER cannot be combined (RFC 3461 §4.1)")
        elif not all(item in NOTIFY_EVENTS for item in items):
            raise DsnSyntaxError("NOTIFY must be NEVER or SUCCESS, FAILURE, DELAY (RFC 3461 §4.1)")
        else:
            notify = frozenset(items)
    orcpt: str | None = None
    if "ORCPT" in found:
        orcpt = _parse_orcpt(found["ORCPT"])
    return DsnRcpt(notify=notify, orcpt=orcpt)


def _parse_orcpt(value: str) -> str:
    # RFC 3461 §4.2: orcpt-parameter = "ORCPT=" original-recipient-address
    #                original-recipient-address = addr-type ";" xtext
    #                addr-type = atom
    if len(value) > ORCPT_MAX:
        raise DsnSyntaxError(f"ORCPT longer than {ORCPT_MAX} characters (RFC 3461 §4.2)")
    addr_type, sep, encoded = value.partition(";")
    if not sep or not _ATOM.fullmatch(addr_type) or not encoded:
        raise DsnSyntaxError("ORCPT must be addr-type;xtext (RFC 3461 §4.2)")
    addr_type = addr_type.lower()
    address = xtext_decode(encoded)
    if addr_type == "utf-8":
        address = _utf8_addr_decode(address)
        if any(c < " " or c == "\x7f" for c in address):
            raise DsnSyntaxError("ORCPT address contains control characters")
    elif not _printable_ascii(address):
        raise DsnSyntaxError("ORCPT address must be printable US-ASCII (RFC 3461 §4.2)")
    return f"{addr_type};{address}"


# --- which outcomes are reported -----------------------------------------------------------

_EVENT_OF_ACTION = {
    "failed": "FAILURE",
    "delayed": "DELAY",
    "delivered": "SUCCESS",
    "relayed": "SUCCESS",  # RFC 3461 §5.2.2: relayed to a non-DSN MTA, success asked
    "expanded": "SUCCESS",  # RFC 3461 §5.2.4.4: delivered to a list or alias
}


def wants(notify: frozenset[str] | None, action: str) -> bool:
    """Whether the sender asked to hear of ``action`` for this recipient.

    RFC 3461 §4.1: without NOTIFY, failures are reported and delays may be (we do), successes
    are not; NOTIFY=NEVER silences everything."""
    event = _EVENT_OF_ACTION.get(action)
    if event is None:
        raise ValueError(f"unknown DSN action {action!r}; one of {sorted(ACTIONS)}")
    if notify is None:
        return event in ("FAILURE", "DELAY")
    return event in notify


def is_bounce(sender: str) -> bool:
    """Whether the reverse-path is null (``MAIL FROM:<>``): its failures are not reported
    (RFC 5321 §4.5.5, RFC 3461 §6.2), which also means no DSN is sent about a DSN."""
    return sender.strip() in ("", "<>")


# --- the report ----------------------------------------------------------------------------

_STATUS = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")  # RFC 3464 §2.3.4 / RFC 3463
_TYPED = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*\s*;")  # "smtp;", "dns;", "rfc822;"


@dataclass(frozen=True)
class RecipientStatus:
    """What happened to one recipient: one per-recipient block of RFC 3464 §2.3."""

    final_recipient: str  # the address; "rfc822;" is added
    action: str  # failed | delayed | delivered | relayed | expanded
    status: str  # e.g. "5.1.1"
    diagnostic: str | None = None  # e.g. "smtp; 550 5.1.1 No such user"
    original_recipient: str | None = None  # the ORCPT, e.g. "rfc822;addr"
    remote_mta: str | None = None  # host name; "dns;" is added
    last_attempt: datetime | None = None
    will_retry_until: datetime | None = None


@dataclass(frozen=True)
class _Wording:
    subject: str
    fr: str
    en: str


_OUTCOMES = {
    "failed": _Wording(
        "Échec de distribution / Delivery failure",
        "n'a pas pu être distribué aux destinataires suivants (échec définitif)",
        "could not be delivered to the following recipients (permanent failure)",
    ),
    "delayed": _Wording(
        "Distribution retardée / Delivery delayed",
        "n'a pas encore pu être distribué aux destinataires suivants ; "
        "de nouvelles tentatives auront lieu",
        "has not yet been delivered to the following recipients; delivery will be retried",
    ),
    "delivered": _Wording(
        "Message distribué / Delivery report",
        "a été distribué aux destinataires suivants",
        "was delivered to the following recipients",
    ),
    "relayed": _Wording(
        "Message distribué / Delivery report",
        "a été transmis aux destinataires suivants, dont le serveur ne renvoie pas d'avis "
        "de distribution",
        "was relayed to the following recipients, whose server sends no delivery report",
    ),
    "expanded": _Wording(
        "Message distribué / Delivery report",
        "a été distribué aux listes suivantes",
        "was delivered to the following lists",
    ),
}
_ORDER = ("failed", "delayed", "delivered", "relayed", "expanded")


def subject_for(recipients: Sequence[RecipientStatus]) -> str:
    """The Subject: the gravest outcome among the recipients (failure, then delay)."""
    actions = {r.action for r in recipients}
    first = next(a for a in _ORDER if a in actions)
    return _OUTCOMES[first].subject


def _ascii(text: str) -> str:
    """message/delivery-status is US-ASCII (RFC 3464 §2.1); other characters become '?'."""
    return report.clean(text).encode("ascii", "replace").decode("ascii")


def _original_recipient(orcpt: str) -> str:
    """The ORCPT as parsed (``addr-type;address``) back in an ASCII field: a ``utf-8``
    address with RFC 6533's escapes."""
    addr_type, _, address = orcpt.partition(";")
    if addr_type.lower() == "utf-8" and not address.isascii():
        return f"utf-8;{report.utf8_addr_xtext(address)}"
    return _ascii(orcpt)


def _typed(default_type: str, value: str) -> str:
    value = _ascii(value)
    return value if _TYPED.match(value) else f"{default_type}; {value}"


def _check(recipient: RecipientStatus) -> None:
    if recipient.action not in ACTIONS:
        raise ValueError(f"unknown DSN action {recipient.action!r}")
    if not _STATUS.fullmatch(recipient.status):
        raise ValueError(f"bad status code {recipient.status!r} (RFC 3464 §2.3.4)")
    # remote_mta and diagnostic may come from the remote server: cleaned, not refused
    for name in ("final_recipient", "original_recipient"):
        value = getattr(recipient, name)
        if value is not None:
            report.check_line(name, value)


def _delivery_status(
    reporting_mta: str,
    envid: str | None,
    arrival: datetime | None,
    recipients: Sequence[RecipientStatus],
) -> bytes:
    # RFC 3464 §2.2: per-message fields, then §2.3: one block per recipient, blank-line separated
    fields = report.fold("Reporting-MTA", f"dns; {_ascii(reporting_mta)}")
    if envid is not None:
        fields += report.fold("Original-Envelope-Id", _ascii(envid))
    if arrival is not None:
        fields += report.fold("Arrival-Date", report.rfc5322_date(arrival))
    blocks = [fields]
    for r in recipients:
        block = b""
        if r.original_recipient is not None:
            block += report.fold("Original-Recipient", _original_recipient(r.original_recipient))
        block += report.fold("Final-Recipient", report.address_field(r.final_recipient))
        block += report.fold("Action", r.action)
        block += report.fold("Status", r.status)
        if r.remote_mta is not None and report.clean(r.remote_mta):
            block += report.fold("Remote-MTA", _typed("dns", r.remote_mta))
        if r.diagnostic is not None and report.clean(r.diagnostic):
            block += report.fold("Diagnostic-Code", _typed("smtp", r.diagnostic))
        if r.last_attempt is not None:
            block += report.fold("Last-Attempt-Date", report.rfc5322_date(r.last_attempt))
        if r.will_retry_until is not None:
            block += report.fold("Will-Retry-Until", report.rfc5322_date(r.will_retry_until))
        blocks.append(block)
    return report.CRLF.join(blocks)


def _human_text(reporting_mta: str, recipients: Sequence[RecipientStatus], returned: str) -> str:
    fr = [f"Ceci est le système de distribution du courrier de {reporting_mta}.", ""]
    en = [f"This is the mail delivery system at {reporting_mta}.", ""]
    for action in _ORDER:
        group = [r for r in recipients if r.action == action]
        if not group:
            continue
        wording = _OUTCOMES[action]
        fr += [f"Votre message {wording.fr} :", ""]
        en += [f"Your message {wording.en}:", ""]
        for r in group:
            for lines in (fr, en):
                lines.append(f"  <{report.clean(r.final_recipient)}>")
            detail = report.clean(r.diagnostic or "")
            if detail:
                detail = detail.split(";", 1)[1].strip() if _TYPED.match(detail) else detail
                fr.append(f"    réponse du serveur : {detail}")
                en.append(f"    server reply: {detail}")
            if r.remote_mta and report.clean(r.remote_mta):
                fr.append(f"    serveur : {report.clean(r.remote_mta)}")
                en.append(f"    server: {report.clean(r.remote_mta)}")
            if r.will_retry_until is not None:
                fr.append(
                    f"    nouvelles tentatives jusqu'au {report.rfc5322_date(r.will_retry_until)}"
                )
                en.append(f"    retrying until {report.rfc5322_date(r.will_retry_until)}")
            for lines in (fr, en):
                lines.append("")
    returned_fr = {
        "full": "Le message d'origine est joint.",
        "headers": "L'en-tête du message d'origine est joint.",
        "headers-capped": "L'en-tête du message d'origine est joint (le message est trop "
        "volumineux pour être renvoyé en entier).",
    }[returned]
    returned_en = {
        "full": "The original message is attached.",
        "headers": "The header of the original message is attached.",
        "headers-capped": "The header of the original message is attached (the message is "
        "too large to be returned in full).",
    }[returned]
    fr.append(returned_fr)
    en.append(returned_en)
    return "\n".join([*fr, "", "-" * 60, "", *en, ""])


def build_report(
    *,
    reporting_mta: str,
    postmaster: str,
    sender: str,
    original: bytes,
    recipients: Sequence[RecipientStatus],
    envid: str | None = None,
    ret: str | None = None,
    arrival: datetime | None = None,
    message_id_domain: str | None = None,
    now: datetime | None = None,
) -> bytes:
    """A complete DSN message (RFC 3464), CRLF line endings, to be sent ``MAIL FROM:<>``.

    ``ret`` is the RET the sender gave: ``"FULL"`` returns the whole original as
    ``message/rfc822`` unless it exceeds :data:`RETURN_LIMIT`; otherwise, and by default, only
    its header section goes back, as ``text/rfc822-headers`` (RFC 6522 §4), capped at
    :data:`HEADERS_LIMIT`. Raises ValueError for a null ``sender`` (never report on a
    bounce), no recipients, or a field value carrying CR/LF."""
    if is_bounce(sender):
        raise ValueError("no DSN for a null reverse-path (RFC 3461 §6.2)")
    if not recipients:
        raise ValueError("a DSN reports on at least one recipient")
    for name, value in (
        ("reporting_mta", reporting_mta),
        ("postmaster", postmaster),
        ("sender", sender),
        ("envid", envid or ""),
    ):
        report.check_line(name, value)
    for r in recipients:
        _check(r)
    if ret is not None and ret.upper() not in ("FULL", "HDRS"):
        raise ValueError(f"RET is FULL or HDRS, not {ret!r}")
    when = now or report.now()

    headers = report.parse_headers(original)
    if ret is not None and ret.upper() == "FULL" and len(original) <= RETURN_LIMIT:
        returned = "full"
        content = report.message_part("message/rfc822", original)
    else:
        returned = "headers-capped" if ret is not None and ret.upper() == "FULL" else "headers"
        head = report.truncate_fields(report.header_section(original), HEADERS_LIMIT)
        # RFC 6532 header fields may carry raw UTF-8: say so, so that readers decode them
        charset = '; charset="utf-8"' if report.eight_bit(head) else ""
        content = report.message_part(f"text/rfc822-headers{charset}", head)

    parts = [
        report.text_part(_human_text(reporting_mta, recipients, returned)),
        report.message_part(
            "message/delivery-status",
            _delivery_status(reporting_mta, envid, arrival, recipients),
        ),
        content,
    ]
    sender_address = sender.strip().strip("<>")
    fields = [
        report.fold("From", f"Mail Delivery System <{postmaster.strip().strip('<>')}>"),
        report.fold("To", f"<{sender_address}>"),
        report.encoded_header("Subject", subject_for(recipients)),
        report.fold("Date", report.rfc5322_date(when)),
        report.fold("Message-ID", report.new_message_id(message_id_domain or reporting_mta)),
        # RFC 3834 §5: a report is an automatic response; auto-responders must not answer it
        b"Auto-Submitted: auto-replied\r\n",
    ]
    original_id = report.message_id(headers)
    if original_id is not None:
        fields += [report.fold("In-Reply-To", original_id), report.fold("References", original_id)]
    return report.multipart(fields, "report; report-type=delivery-status", parts)
