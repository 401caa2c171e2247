"""Message Disposition Notifications (RFC 8098) with the MSSanté integration errors.

Sans-I/O. Hygie's service addresses answer a ``Disposition-Notification-To`` request with
:func:`build_mdn` once :func:`automatic_mdn_target` says an automatic MDN may be sent (RFC
8098 §2.1 loop prevention); the client reads MDNs back with :func:`parse_mdn`. The layout is
the one of the MSSanté volet "Transmission au LPS de documents CDA provenant d'un courriel
MSSanté" (ANS, IG v1.1.3, "Structure du MDN"): part 1 human-readable text, part 2
``message/disposition-notification``, part 3 the whole original as ``message/rfc822`` (its
IHE_XDM.zip and PDF travel inside it, once). An integration failure is reported as
``processed/error`` with the MSSanté code in the ``Error:`` field (RFC 8098 §3.2.7), e.g.
``Error: 902^Identifiant de patient inconnu``; see docs/decisions.md for the older form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parseaddr

from mailformats import report

# --- the MSSanté integration errors ---------------------------------------------------------


@dataclass(frozen=True)
class IntegrationError:
    """An MSSanté application error (table applicationErrorCondition, codes 900-906), as the
    consumer returns it in ERR-5 and the MDN carries it: ``code^libellé``."""

    code: int
    text: str

    def __post_init__(self) -> None:
        if not 900 <= self.code <= 906:
            raise ValueError(f"MSSanté integration error codes are 900-906, not {self.code}")
        if not self.text or any(c in self.text for c in "\r\n^"):
            raise ValueError(f"bad integration error label {self.text!r}")

    @property
    def hl7(self) -> str:
        """``902^Identifiant de patient inconnu``: the string of the ``Error:`` field."""
        return f"{self.code}^{self.text}"


# Labels from the volet's table applicationErrorCondition (error-codes.md); 902 is worded as
# in the volet's MDN examples ("Identifiant de patient inconnu").
VERSION_MISMATCH = IntegrationError(
    900, "Version du document incorrecte lors d'une demande de remplacement/suppression"
)
AUTHOR_NOT_ALLOWED = IntegrationError(
    901, "Auteur non autorisé à remplacer ou supprimer un document"
)
UNKNOWN_PATIENT = IntegrationError(902, "Identifiant de patient inconnu")
INS_MISSING = IntegrationError(903, "INS non présent dans le document")
INS_MISMATCH = IntegrationError(
    904, "L'INS transmis ne correspond pas exactement à celui stocké dans la base du consommateur"
)
INS_INCOMPLETE = IntegrationError(905, "L'INS transmis n'est pas complet")
OTHER = IntegrationError(906, "Erreur 'Autre'")

INTEGRATION_ERRORS: dict[int, IntegrationError] = {
    e.code: e
    for e in (
        VERSION_MISMATCH,
        AUTHOR_NOT_ALLOWED,
        UNKNOWN_PATIENT,
        INS_MISSING,
        INS_MISMATCH,
        INS_INCOMPLETE,
        OTHER,
    )
}

# The subject of a failed integration (volet, "Objet du MDN"): "[KO Intégration système !][902] "
KO_PREFIX = "[KO Intégration système !]"


class MdnSyntaxError(ValueError):
    """A message that is not a readable MDN."""


# --- when to send one -----------------------------------------------------------------------


def _addr_spec(address: str) -> tuple[str, str] | None:
    """(local-part, domain) of an addr-spec; the local part unquoted (RFC 8098 §2.1)."""
    address = address.strip().strip("<>").strip()
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        return None
    if len(local) >= 2 and local[0] == local[-1] == '"':
        local = re.sub(r"\\(.)", r"\1", local[1:-1])
    return local, domain.lower()


def is_report_or_auto(headers: Message) -> bool:
    """Whether the message is itself a report (DSN, MDN, ARF...) or auto-submitted: no
    automatic MDN answers it (RFC 8098 §2.1, §5; RFC 3834 §2)."""
    content_type = (headers.get_content_type() or "").lower()
    if content_type in ("multipart/report", "message/disposition-notification"):
        return True
    auto = str(headers.get("Auto-Submitted", "no")).split(";")[0].strip().lower()
    return auto != "no"


def automatic_mdn_target(headers: Message, return_path: str) -> str | None:
    """The address an automatic MDN goes to, or None when none may be sent automatically.

    None when there is no ``Disposition-Notification-To``, when it names several addresses,
    when the Return-Path is null, when its addr-spec differs from the Return-Path's (RFC 8098
    §2.1: local parts compared case-sensitively after unquoting, domains case-insensitively),
    or when the message is a report or auto-submitted."""
    try:
        fields = headers.get_all("Disposition-Notification-To") or []
        if len(fields) != 1 or is_report_or_auto(headers):
            return None
        addresses = [a for _, a in getaddresses([str(fields[0])]) if a]
    except Exception:  # a malformed header field is no request
        return None
    if len(addresses) != 1 or "\r" in addresses[0] or "\n" in addresses[0]:
        return None
    wanted = _addr_spec(addresses[0])
    returned = _addr_spec(parseaddr(return_path)[1] or return_path)
    if wanted is None or returned is None or wanted != returned:
        return None
    return addresses[0]


# --- building one ---------------------------------------------------------------------------

_DISPOSITION_TYPES = frozenset({"displayed", "deleted", "dispatched", "processed"})


_MASKED_FR = (
    "Un document du message est masqué aux professionnels de santé (MASQUE_PS) : seul "
    "l'en-tête du courriel d'origine est joint. Vérifiez les informations fournies et "
    "renvoyez les documents après correction.\n"
)
_MASKED_EN = (
    "A document of the message is masked from health professionals (MASQUE_PS): only the "
    "original's header is attached.\n"
)


def _text(
    error: IntegrationError | None, disposition_type: str, subject: str, headers_only: bool
) -> str:
    if error is not None:
        return (
            "Le message ci-dessous n'a pas pu être intégré automatiquement pour la raison "
            f"suivante : {error.text}\n"
            f"Le système a retourné l'erreur {error.hl7}\n"
            "\n"
            + (_MASKED_FR if headers_only else
               "Le courriel d'origine est joint, avec ses pièces jointes : vérifiez les "
               "informations fournies et renvoyez les documents après correction.\n")
            + "\n"
            "The message below could not be integrated automatically: error "
            f"{error.code} ({error.text}).\n"
            + (_MASKED_EN if headers_only else
               "The original message is attached with its attachments.\n")
        )  # fmt: skip
    fr = {
        "processed": "a été traité",
        "displayed": "a été affiché",
        "dispatched": "a été transmis",
        "deleted": "a été supprimé",
    }[disposition_type]
    return (
        f'Le message « {subject} » {fr}.\n\nThe message "{subject}" has been {disposition_type}.\n'
    )


def build_mdn(
    *,
    original: bytes,
    reporting_ua: str,
    from_address: str,
    to_address: str,
    final_recipient: str,
    error: IntegrationError | None = None,
    attach_original: bool = True,
    headers_only: bool = False,
    message_id_domain: str,
    original_recipient: str | None = None,
    disposition_type: str = "processed",
    manual: bool = False,
    legacy_error_form: bool = False,
    now: datetime | None = None,
) -> bytes:
    """An MDN (RFC 8098) for ``original``, CRLF line endings, sent ``MAIL FROM:<>``
    (RFC 8098 §2.1) from ``from_address`` to ``to_address`` (the request's address).

    ``Disposition: automatic-action/MDN-sent-automatically; processed`` on success; with
    ``error``, ``processed/error`` and ``Error: <code>^<libellé>``, the Subject prefixed
    ``[KO Intégration système !][<code>]``. On success the Subject is the original's (the
    volet's rule). ``legacy_error_form`` writes the error as older versions of the volet did,
    inside the Disposition (``processed/Error: 902^...``), for peers that read it there;
    ``Error:`` is written either way. ``Original-Recipient`` comes from the argument or the
    original's ``Original-Recipient`` header field. ``manual`` makes it
    ``manual-action/MDN-sent-manually`` (a client asking its user, RFC 8098 §2.1).
    ``headers_only`` returns the original's header section (``text/rfc822-headers``, RFC 8098
    §3) instead of the whole message: for a document masked from professionals."""
    if disposition_type not in _DISPOSITION_TYPES:
        raise ValueError(f"disposition type is one of {sorted(_DISPOSITION_TYPES)}")
    for name, value in (
        ("reporting_ua", reporting_ua),
        ("from_address", from_address),
        ("to_address", to_address),
        ("final_recipient", final_recipient),
    ):
        report.check_line(name, value)
    when = now or report.now()
    headers = report.parse_headers(original)
    subject = report.header_text(headers, "Subject") or ""
    original_id = report.message_id(headers)
    if original_recipient is None:
        original_recipient = report.header_text(headers, "Original-Recipient")

    # RFC 8098 §3.1: disposition-notification-content
    mode = (
        "manual-action/MDN-sent-manually" if manual else "automatic-action/MDN-sent-automatically"
    )
    disposition = f"{mode}; {disposition_type}"
    if error is not None:
        disposition += f"/Error: {error.hl7}" if legacy_error_form else "/error"
    fields = report.fold("Reporting-UA", report.clean(reporting_ua))
    if original_recipient:
        value = report.check_line("original_recipient", original_recipient).strip()
        if ";" not in value:
            value = report.address_field(value)
        fields += report.fold("Original-Recipient", value)
    fields += report.fold("Final-Recipient", report.address_field(final_recipient))
    if original_id is not None:
        fields += report.fold("Original-Message-ID", original_id)
    fields += report.fold("Disposition", disposition)
    if error is not None:
        fields += report.fold("Error", error.hl7)

    parts = [
        report.text_part(_text(error, disposition_type, subject, headers_only)),
        report.message_part("message/disposition-notification", fields),
    ]
    if attach_original:
        parts.append(_returned(original, headers_only))

    if error is not None:
        mdn_subject = f"{KO_PREFIX}[{error.code}] {subject}".rstrip()
    else:
        mdn_subject = subject or "Accusé de traitement / Disposition notification"
    header_fields = [
        report.fold("From", from_address.strip()),
        report.fold("To", to_address.strip()),
        report.encoded_header("Subject", mdn_subject),
        report.fold("Date", report.rfc5322_date(when)),
        report.fold("Message-ID", report.new_message_id(message_id_domain)),
    ]
    if not manual:  # RFC 3834 §5: a receipt the user chose to send is not automatic
        header_fields.append(b"Auto-Submitted: auto-replied\r\n")
    if original_id is not None:
        header_fields += [
            report.fold("In-Reply-To", original_id),
            report.fold("References", original_id),
        ]
    return report.multipart(header_fields, "report; report-type=disposition-notification", parts)


def _returned(original: bytes, headers_only: bool) -> bytes:
    """The original as a report returns it: whole, or its header section only."""
    if not headers_only:
        return report.message_part("message/rfc822", original)
    head = report.header_section(original)
    charset = '; charset="utf-8"' if report.eight_bit(head) else ""  # RFC 6532 fields
    return report.message_part(f"text/rfc822-headers{charset}", head)


def build_error_mail(
    *,
    original: bytes,
    from_address: str,
    to_address: str,
    error: IntegrationError,
    message_id_domain: str,
    headers_only: bool = False,
    now: datetime | None = None,
) -> bytes:
    """The volet's "courriel standard": how an integration error is reported when the
    original asked for no MDN (no automatic MDN may be sent without a request, RFC 8098 §2).

    A plain ``multipart/mixed`` message (RFC 5322): the Subject of an MDN in error
    (``[KO Intégration système !][902] <subject>``), a text naming the code and label, and the
    whole original as a ``message/rfc822`` attachment, its IHE_XDM.zip and PDF inside it
    (only its header section with ``headers_only``: a document masked from professionals)."""
    for name, value in (("from_address", from_address), ("to_address", to_address)):
        report.check_line(name, value)
    headers = report.parse_headers(original)
    subject = report.header_text(headers, "Subject") or ""
    original_id = report.message_id(headers)
    parts = [
        report.text_part(_text(error, "processed", subject, headers_only)),
        _returned(original, headers_only)
        if headers_only
        else report.message_part(
            "message/rfc822",
            original,
            [b'Content-Disposition: attachment; filename="message_original.eml"\r\n'],
        ),
    ]
    header_fields = [
        report.fold("From", from_address.strip()),
        report.fold("To", to_address.strip()),
        report.encoded_header("Subject", f"{KO_PREFIX}[{error.code}] {subject}".rstrip()),
        report.fold("Date", report.rfc5322_date(now or report.now())),
        report.fold("Message-ID", report.new_message_id(message_id_domain)),
        b"Auto-Submitted: auto-replied\r\n",  # RFC 3834 §5
    ]
    if original_id is not None:
        header_fields += [
            report.fold("In-Reply-To", original_id),
            report.fold("References", original_id),
        ]
    return report.multipart(header_fields, "mixed", parts)


# --- reading one ----------------------------------------------------------------------------


@dataclass(frozen=True)
class MdnInfo:
    """What an MDN says (RFC 8098 §3.2)."""

    original_message_id: str | None
    disposition: str  # the whole field, e.g. "automatic-action/MDN-sent-automatically; processed"
    disposition_type: str  # "processed", "displayed", ...
    error_code: int | None  # the code before "^" (MSSanté: 900-906), from Error: or the old form
    error_text: str | None  # the Error: field (or the older form's text), e.g. "902^..."
    final_recipient: str | None
    original_recipient: str | None
    reporting_ua: str | None


# RFC 8098 §3.2.6: disposition-field = "Disposition" ":" OWS disposition-mode OWS ";"
#     OWS disposition-type [ OWS "/" OWS disposition-modifier *( OWS "," OWS ... ) ] OWS
_DISPOSITION = re.compile(
    r"\s*(?P<mode>[\w-]+\s*/\s*[\w-]+)\s*;\s*(?P<type>[\w-]+)\s*(?:/\s*(?P<modifiers>.*))?",
    re.DOTALL,
)
_CODE = re.compile(r"(?:error\s*:\s*)?(\d{3})\s*\^", re.IGNORECASE)


def _notification_fields(message: EmailMessage) -> Message:
    for part in message.walk():
        if part.get_content_type() in (
            "message/disposition-notification",
            "message/global-disposition-notification",
        ):
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
            raise MdnSyntaxError("empty disposition-notification part")
    raise MdnSyntaxError("no message/disposition-notification part")


def parse_mdn(raw: bytes) -> MdnInfo:
    """The facts of an MDN; raises :class:`MdnSyntaxError` if ``raw`` is not one."""
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    if message.get_content_type() != "multipart/report":
        raise MdnSyntaxError("not a multipart/report")
    fields = _notification_fields(message)

    def field(name: str) -> str | None:
        try:
            value = fields.get(name)
        except Exception:  # the stdlib's header classes raise assorted errors on junk
            return None
        return report.clean(str(value)) if value is not None else None

    disposition = field("Disposition")
    if disposition is None:
        raise MdnSyntaxError("no Disposition field (RFC 8098 §3.2.6)")
    match = _DISPOSITION.fullmatch(disposition)
    if match is None:
        raise MdnSyntaxError(f"malformed Disposition: {disposition!r}")
    modifiers = match.group("modifiers") or ""
    error_text = field("Error")
    if error_text is None and modifiers.lower().startswith("error:"):
        error_text = modifiers.split(":", 1)[1].strip()  # the volet's older form
    error_code: int | None = None
    if error_text is not None:
        code = _CODE.match(error_text)
        if code is not None:
            error_code = int(code.group(1))
    original_id = field("Original-Message-ID")
    return MdnInfo(
        original_message_id=original_id,
        disposition=disposition,
        disposition_type=match.group("type").lower(),
        error_code=error_code,
        error_text=error_text,
        final_recipient=field("Final-Recipient"),
        original_recipient=field("Original-Recipient"),
        reporting_ua=field("Reporting-UA"),
    )
