"""Mail to patients' personal e-mail addresses through an ordinary SMTP relay (issue 11 item 2):
the invitation that opens a space by opt-out, and the "something new in your space" notice.

These mails leave the MSSanté trust space, so they carry **no health information**: no sender,
no subject, no document type, no INS, no name; only that something arrived and where to sign
in (and, for an invitation, the one-time code and the opening date). They are written here and
nowhere else, from fixed texts, so a test can check every byte that leaves.

The smarthost is configured in ``[notify]``; its failures are retried from the durable state in
``patient_spaces`` (``storage.spaces``) and never touch the MSSanté delivery that caused them.
"""

from __future__ import annotations

import datetime as dt
import functools
import ssl
from email.charset import QP, Charset
from email.header import Header
from email.message import Message
from email.utils import format_datetime, make_msgid

import aiosmtplib
import structlog

from server.config import Config
from storage.spaces import INVITATION, MailJob

log = structlog.get_logger("hygie.notify")
_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP
TIMEOUT = 30.0


class NotifyError(Exception):
    """The smarthost did not take the mail; ``reason`` is safe to log (no address)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def public_url(config: Config) -> str:
    if config.spaces.public_url:
        return config.spaces.public_url.rstrip("/")
    return f"https://{config.server.hostname}:{config.http.https_port}"


def sender_address(config: Config) -> str:
    if config.notify.sender:
        return config.notify.sender
    domain = next((d for d in config.server.domains if not d.startswith("patient.")),
                  config.server.hostname)  # fmt: skip
    return f"ne-pas-repondre@{domain}"


def _date_fr(when: dt.datetime) -> str:
    months = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
              "septembre", "octobre", "novembre", "décembre")  # fmt: skip
    return f"{when.day} {months[when.month - 1]} {when.year}"


def invitation_text(url: str, code: str, opens_at: dt.datetime) -> tuple[str, str]:
    """(subject, body) of an invitation."""
    opens = opens_at.astimezone(dt.UTC)
    subject = "Votre espace santé va être ouvert / Your health space is about to open"
    body = f"""Bonjour,

Un espace santé sécurisé va être ouvert pour vous le {_date_fr(opens)}. Vous y recevrez les
documents et messages que vous adressent vos professionnels de santé.

Si vous ne souhaitez pas d'espace santé, vous pouvez le refuser jusqu'à cette date :
rendez-vous sur {url}/espace/refus et saisissez ce code à usage unique :

    {code}

Sans refus de votre part, votre espace sera ouvert automatiquement. Vous l'activerez alors
sur {url}/espace/activation avec ce même code, en choisissant votre mot de passe. Vous
pourrez le fermer à tout moment.

Ce message ne contient aucune information de santé. Merci de ne pas y répondre.

---

Hello,

A secure health space will be opened for you on {opens:%Y-%m-%d}. It will receive the documents
and messages your health professionals send you.

If you do not want one, you can refuse it until that date at {url}/espace/refus?lang=en
with this one-time code: {code}

Otherwise your space opens automatically: activate it then at
{url}/espace/activation?lang=en with the same code, choosing your password. You can close it
at any time.
"""
    return subject, body


def notification_text(url: str) -> tuple[str, str]:
    """(subject, body) of a notification: the same words whatever arrived."""
    subject = "Nouvel élément dans votre espace santé / Something new in your health space"
    body = f"""Bonjour,

Vous avez reçu un nouvel élément dans votre espace santé.
Connectez-vous pour le consulter : {url}/espace/connexion

Ce message ne contient aucune information de santé. Merci de ne pas y répondre.

---

Hello,

Something new has arrived in your health space. Sign in to read it:
{url}/espace/connexion?lang=en
"""
    return subject, body


def build_mail(config: Config, job: MailJob, now: dt.datetime) -> Message:
    url = public_url(config)
    if job.kind == INVITATION:
        assert job.code is not None
        subject, body = invitation_text(url, job.code, job.opens_at)
    else:
        subject, body = notification_text(url)
    # The compat32 classes: the default policy's header registry costs ~4 ms a message.
    msg = Message()
    sender = sender_address(config)
    msg["From"] = sender
    msg["To"] = job.email
    msg["Subject"] = _encoded(subject)
    msg["Date"] = format_datetime(now.astimezone(dt.UTC))
    msg["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1])
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834 §5
    msg["MIME-Version"] = "1.0"
    msg.set_payload(body, _UTF8_QP)  # text/plain; charset="utf-8", quoted-printable
    return msg


@functools.cache
def _encoded(subject: str) -> str:
    return Header(subject, "utf-8").encode()  # RFC 2047 encoded words


class Smarthost:
    """One SMTP session per mail to the configured relay (aiosmtplib)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        section = config.notify
        if section.security not in ("starttls", "tls", "none"):
            raise ValueError("[notify] security is starttls, tls or none")
        self.context = ssl.create_default_context(
            cafile=str(config.path(section.ca_file)) if section.ca_file else None
        )
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2

    @property
    def configured(self) -> bool:
        return bool(self.config.notify.host)

    def _password(self) -> str | None:
        section = self.config.notify
        if not section.password_file:
            return None
        return self.config.path(section.password_file).read_text("utf-8").strip()

    async def send(self, msg: Message) -> None:
        section = self.config.notify
        try:
            await aiosmtplib.send(
                msg,
                hostname=section.host,
                port=section.port,
                use_tls=section.security == "tls",
                start_tls=section.security == "starttls",
                tls_context=self.context if section.security != "none" else None,
                username=section.username or None,
                password=self._password() if section.username else None,
                timeout=TIMEOUT,
            )
        except aiosmtplib.SMTPResponseException as exc:
            raise NotifyError(f"smarthost said {exc.code}") from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise NotifyError(type(exc).__name__) from None
