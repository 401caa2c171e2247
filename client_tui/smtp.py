"""Message submission (RFC 6409) with aiosmtplib: implicit TLS or STARTTLS, SASL PLAIN,
EXTERNAL or OAUTHBEARER, DSN requests (RFC 3461). No Textual import."""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import Sequence
from email.message import Message
from email.utils import getaddresses

import aiosmtplib

from client_tui.credentials import Credentials
from client_tui.revocation import RevocationChecker, ServerRevoked, peer_certificate


class SubmissionError(Exception):
    """The message was not accepted; the message is one line for the user."""


async def submit(
    message: Message,
    *,
    host: str,
    port: int,
    security: str,
    context: ssl.SSLContext,
    credentials: Credentials,
    notify_success: bool = False,
    timeout: float = 60.0,  # noqa: ASYNC109 - aiosmtplib applies it to each command
    revocation: RevocationChecker | None = None,
) -> None:
    """Send ``message`` to every To/Cc/Bcc address (Bcc is stripped from what is sent)."""
    recipients = [a for _, a in getaddresses(message.get_all("To", []) + message.get_all("Cc", [])
                  + message.get_all("Bcc", [])) if a]  # fmt: skip
    if not recipients:
        raise SubmissionError("no recipient")
    del message["Bcc"]
    sender = credentials.address
    client = aiosmtplib.SMTP(
        hostname=host,
        port=port,
        use_tls=security == "tls",
        start_tls=security == "starttls",
        tls_context=context,
        timeout=timeout,
    )
    try:
        await client.connect()
    except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as exc:
        raise SubmissionError(f"cannot reach SMTP server {host}:{port}: {_why(exc)}") from exc
    try:
        if revocation is not None and client.transport is not None:
            der = peer_certificate(client.transport.get_extra_info("ssl_object"))
            try:
                await asyncio.to_thread(revocation.check, der)
            except ServerRevoked as exc:
                raise SubmissionError(f"SMTP server {host}:{port}: {exc}") from None
        await _authenticate(client, credentials, host, port)
        rcpt_options: Sequence[str] = ()
        mail_options: Sequence[str] = ()
        if notify_success and client.supports_extension("dsn"):
            # RFC 3461 §4.1: ask for a success report as well as the failure one.
            rcpt_options = ["NOTIFY=SUCCESS,FAILURE"]
            mail_options = ["RET=HDRS"]
        try:
            errors, _ = await client.sendmail(
                sender, recipients, message.as_bytes(),
                mail_options=mail_options, rcpt_options=rcpt_options,
            )  # fmt: skip
        except aiosmtplib.SMTPRecipientsRefused as exc:
            first = exc.recipients[0]
            raise SubmissionError(
                f"recipient {first.recipient} refused: {first.code} {first.message}"
            ) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise SubmissionError(f"message refused: {exc.code} {exc.message}") from exc
        if errors:
            address, (code, text) = next(iter(errors.items()))
            raise SubmissionError(f"recipient {address} refused: {code} {text}")
    except aiosmtplib.SMTPServerDisconnected as exc:
        raise SubmissionError(f"SMTP server closed the connection: {exc}") from exc
    except aiosmtplib.SMTPException as exc:
        if isinstance(exc, SubmissionError):
            raise
        raise SubmissionError(f"SMTP error: {exc}") from exc
    finally:
        try:
            await client.quit()
        except Exception:  # the connection may be gone already; nothing left to tell the user
            client.close()


async def _authenticate(
    client: aiosmtplib.SMTP, credentials: Credentials, host: str, port: int
) -> None:
    await client.ehlo()  # aiosmtplib sends EHLO lazily; AUTH needs it first (RFC 4954 §4)
    mechanism, initial = credentials.sasl(host, port)
    encoded = base64.b64encode(initial).decode() if initial else "="
    response = await client.execute_command(b"AUTH", mechanism.encode(), encoded.encode())
    if response.code == 334 and mechanism == "OAUTHBEARER":
        # RFC 7628 §3.2.3: the server's error challenge; answer ^A and read the final 535.
        challenge = response.message
        response = await client.execute_command(b"AQ==")
        detail = _bearer_error(challenge)
        if response.code != 235:
            raise SubmissionError(f"login refused: {response.code} {response.message}{detail}")
    if response.code != 235:
        raise SubmissionError(f"login refused: {response.code} {response.message}")


def _bearer_error(challenge: str) -> str:
    try:
        return f" ({base64.b64decode(challenge).decode()})"
    except ValueError:
        return ""


def _why(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate not trusted ({exc.verify_message})"
    text = str(exc)
    # aiosmtplib wraps the OSError in SMTPConnectError, keeping only its text.
    cause = exc.__cause__ or exc.__context__
    if (
        isinstance(exc, ConnectionRefusedError)
        or isinstance(cause, ConnectionRefusedError)
        or "Connect call failed" in text
    ):
        return "connection refused"
    return text or type(exc).__name__
