"""The patient's secure messaging in the browser (issue 22 item 2, *Messagerie*), after the
two-factor sign-in:

- ``/espace/messages``: the folders, and the newest messages of one (``?dossier=<id>``);
- ``/espace/messages/<folder>/<uid>``: one message: its header fields and its text (an HTML
  body is shown as text: every tag dropped, scripts and styles with their content; the
  template escapes the rest), its attachments to download (``…/pj/<n>``, always as a file);
- ``POST …/repondre``: a reply to whoever wrote, through the submission listener's own checks
  and the one pipeline (``SubmissionHandler.submit``): a patient only answers a professional
  who wrote first, and no longer after ``FIN``; the form is not offered then, and a forged
  post gets the listener's refusal.

The mailbox is read with the account's keys (unlocked per request, as an IMAP login does).
"""

from __future__ import annotations

import email.policy
import email.utils
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import EmailMessage
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from server.http.espace.pages import EspacePages
from server.http.espace.site import Page
from server.http.responses import peer, row_id
from storage.accounts import AccountInfo, unlock_keys
from storage.crypto import MasterKey
from storage.mailstore import FolderInfo, MailStore
from storage.transactions import FolderError

#: (account, recipient, message, client address, TLS) → the SMTP reply (250 when accepted).
Submit = Callable[[AccountInfo, str, bytes, str, str], Awaitable[str]]
#: (account, address) → None when the account may write to the address, else the refusal.
MayWrite = Callable[[AccountInfo, str], Awaitable[str | None]]
SHOWN = 50  # messages listed per folder page
MAX_REPLY = 20_000  # characters of a reply's text


@dataclass(frozen=True)
class Listed:
    uid: int
    sender: str
    subject: str
    date: str


def _words(value: Any) -> str:
    if not value:
        return ""
    try:
        return str(make_header(decode_header(str(value))))
    except (LookupError, ValueError, UnicodeError):
        return str(value)


def _who(addresses: Any) -> str:
    out = []
    for entry in addresses or []:
        name, _adl, mailbox, host = (list(entry) + [None] * 4)[:4]
        address = f"{mailbox or ''}@{host or ''}"
        out.append(f"{_words(name)} <{address}>" if name else address)
    return ", ".join(out)


class _Text(HTMLParser):
    """An HTML body as plain text: tags dropped, script and style content too."""

    SKIP = frozenset({"script", "style", "head", "title"})
    BREAK = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "table"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in self.BREAK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self.skipping:
            self.skipping -= 1

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def html_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)


def body_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, ValueError, UnicodeError):
        return ""
    text = str(content)
    return html_text(text) if part.get_content_subtype() == "html" else text


class MessagePages:
    def __init__(self, pages: EspacePages, store: MailStore, master: MasterKey,
                 submit: Submit, may_write: MayWrite) -> None:  # fmt: skip
        self.pages = pages
        self.site = pages.site
        self.store = store
        self.master = master
        self.submit = submit
        self.may_write = may_write

    def routes(self) -> list[BaseRoute]:
        page = self.pages.page
        return [
            Route("/messages", page(self._list), methods=["GET"]),
            Route("/messages/{folder}/{uid}", page(self._read), methods=["GET"]),
            Route("/messages/{folder}/{uid}/pj/{part}", page(self._attachment), methods=["GET"]),
            Route("/messages/{folder}/{uid}/repondre", page(self._reply), methods=["POST"]),
        ]

    async def _folder(self, account: AccountInfo, ident: str | None) -> tuple[
            list[FolderInfo], FolderInfo | None]:  # fmt: skip
        folders = await self.store.folders(account.id)
        wanted = row_id(ident) if ident is not None else None
        for folder in folders:
            if (wanted is None and folder.name.upper() == "INBOX") or folder.id == wanted:
                return folders, folder
        return folders, None

    async def _message(self, request: Request, account: AccountInfo) -> tuple[
            FolderInfo, int, EmailMessage] | None:  # fmt: skip
        _, folder = await self._folder(account, request.path_params["folder"])
        uid = row_id(request.path_params["uid"])
        if folder is None or uid is None:
            return None
        keys = await unlock_keys(self.store.db, self.master, account.id)
        try:
            raw = await self.store.read_body(keys, folder.id, uid)
        except FolderError:  # no such message (expunged meanwhile, or never there)
            return None
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return folder, uid, parsed

    # -- pages ------------------------------------------------------------------------------

    async def _list(self, request: Request, page: Page, form: dict[str, str]) -> Response:
        account = await self.pages.signed_in(request, page)
        if account is None:
            return self.pages.expired(page)
        page.section = "/messages"
        folders, folder = await self._folder(account, request.query_params.get("dossier"))
        listed: list[Listed] = []
        if folder is not None:
            snapshot = await self.store.snapshot(account.id, folder.name)
            uids = list(reversed(snapshot[1]))[:SHOWN] if snapshot else []
            keys = await unlock_keys(self.store.db, self.master, account.id)
            metas = await self.store.read_meta(keys, folder.id, uids)
            for uid in uids:
                envelope = (metas.get(uid) or {}).get("envelope") or {}
                date = email.utils.parsedate_to_datetime(envelope["date"]) \
                    if envelope.get("date") else None  # fmt: skip
                listed.append(Listed(uid, _who(envelope.get("from")),
                                     _words(envelope.get("subject")) or page.t["no_subject"],
                                     date.strftime("%d/%m/%Y %H:%M") if date else ""))
        return self.site.render(page, "messages.html", page.t["nav_messages"], folders=folders,
                                folder=folder, listed=listed, wide=True)  # fmt: skip

    async def _read(
        self, request: Request, page: Page, form: dict[str, str], error_text: str = "",
        status: int = 200, draft: str = "",
    ) -> Response:  # fmt: skip
        account = await self.pages.signed_in(request, page)
        if account is None:
            return self.pages.expired(page)
        page.section = "/messages"
        found = await self._message(request, account)
        if found is None:
            return self.site.notice(page, page.t["error"], page.t["msg_missing"], 404, error=True)
        folder, uid, message = found
        attachments = [part.get_filename() or page.t["msg_attachment"]
                       for part in message.iter_attachments()]  # fmt: skip
        to = _reply_address(message)
        refusal = await self.may_write(account, to) if to else "no sender"
        subject = _words(message.get("Subject", "")) or page.t["no_subject"]
        return self.site.render(
            page, "message.html", subject, status, folder=folder, uid=uid,
            sender=_people(message, "From"), to=_people(message, "To"),
            date=_words(message.get("Date", "")), text=body_text(message),
            attachments=attachments, reply_to=to if refusal is None else "",
            no_reply=_no_reply(page, refusal), error_text=error_text,
            ok_text=page.t["msg_sent"] if request.query_params.get("envoye") else "",
            draft=draft, wide=True,
        )  # fmt: skip

    async def _attachment(self, request: Request, page: Page, form: dict[str, str]) -> Response:
        account = await self.pages.signed_in(request, page)
        if account is None:
            return self.pages.expired(page)
        found = await self._message(request, account)
        number = row_id(request.path_params["part"])
        parts = list(found[2].iter_attachments()) if found is not None else []
        if number is None or number >= len(parts):
            return self.site.notice(page, page.t["error"], page.t["msg_missing"], 404, error=True)
        part = parts[number]
        content = part.get_payload(decode=True)
        data = content if isinstance(content, bytes) else b""
        return Response(data, 200, media_type="application/octet-stream", headers={
            "Content-Disposition": f"attachment; filename=\"piece-jointe-{number + 1}\"; "
                                   f"filename*=UTF-8''{_quoted(part.get_filename() or '')}",
            "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        })  # fmt: skip

    async def _reply(self, request: Request, page: Page, form: dict[str, str]) -> Response:
        account = await self.pages.signed_in(request, page)
        if account is None:
            return self.pages.expired(page)
        found = await self._message(request, account)
        if found is None:
            return self.site.notice(page, page.t["error"], page.t["msg_missing"], 404, error=True)
        folder, uid, original = found
        text = form.get("texte", "").strip()
        if not text or len(text) > MAX_REPLY:
            return await self._read(request, page, form, page.t["msg_reply_empty"], 400, text)
        to = _reply_address(original)
        reply = EmailMessage()
        reply["From"] = account.address
        reply["To"] = to or "-"
        subject = str(original.get("Subject", "")).strip()
        reply["Subject"] = subject if subject.lower().startswith("re:") else f"Re: {subject}"
        reply["Date"] = email.utils.format_datetime(self.site.clock())
        reply["Message-ID"] = email.utils.make_msgid(domain=account.address.rsplit("@", 1)[1])
        if original.get("Message-ID"):
            reply["In-Reply-To"] = str(original["Message-ID"])
            references = str(original.get("References", "")).split()
            reply["References"] = " ".join([*references, str(original["Message-ID"])])
        reply.set_content(text)
        raw = reply.as_bytes(policy=email.policy.SMTP)
        answer = await self.submit(account, to, raw, peer(request), "TLS (HTTPS)") if to \
            else "550 5.1.1 no sender to reply to"  # fmt: skip
        if answer.startswith("250"):
            return self.site.redirect(page.href(f"/messages/{folder.id}/{uid}", envoye=1))
        status = 403 if answer.startswith("5") else 503
        message = page.t["msg_refused"].format(reason=answer)
        return await self._read(request, page, form, message, status, text)


def _people(message: EmailMessage, field: str) -> str:
    """A field's addresses as "Name <address>", decoded."""
    pairs = email.utils.getaddresses([_words(v) for v in message.get_all(field, [])])
    return ", ".join(f"{name} <{address}>" if name else address for name, address in pairs)


def _no_reply(page: Page, refusal: str | None) -> str:
    """Why the message offers no reply form ("" when it offers one)."""
    if refusal is None:
        return ""
    return page.t["msg_closed"] if "FIN" in refusal else page.t["msg_no_start"]


def _reply_address(message: EmailMessage) -> str:
    """Whom a reply goes to: the Reply-To the sender gave, else the From (the patient rules
    decide whether either may be written to)."""
    for field in ("Reply-To", "From"):
        pairs = email.utils.getaddresses([str(v) for v in message.get_all(field, [])])
        for _, address in pairs:
            if "@" in address:
                return address.lower()
    return ""


def _quoted(name: str) -> str:
    return quote(name.replace("/", "_").replace("\\", "_")[:200], safe="")
