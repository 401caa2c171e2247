"""An account signed in: its credentials resolved once, an IMAP connection for reading and a
second one for IDLE, and submission. No Textual import: the app and ``send`` share it."""

from __future__ import annotations

import asyncio
from email.message import Message

from client_tui.compose import DocumentAuthor, author_from_address
from client_tui.config import Account
from client_tui.credentials import (
    CredentialError,
    Credentials,
    load_pkcs12,
    run_token_command,
    tls_context,
)
from client_tui.directory import DirectoryError, owner_of
from client_tui.imap import Folder, ImapClient
from client_tui.smtp import submit


async def resolve_credentials(account: Account, secret: str = "") -> Credentials:
    """The account's credentials: ``secret`` is the password or the PKCS#12 passphrase; a
    token is fetched from ``token_command`` (in a thread: the command may take a while)."""
    if account.auth == "certificate":
        path = account.pkcs12_path
        if path is None:
            raise CredentialError(f"account {account.name!r} names no pkcs12 file")
        certificate = await asyncio.to_thread(load_pkcs12, path, secret)
        return Credentials("certificate", account.address, certificate=certificate)
    if account.auth == "token":
        token = await asyncio.to_thread(run_token_command, account.token_command)
        return Credentials("token", account.address, token=token)
    if not secret:
        raise CredentialError("a password is needed")
    return Credentials("password", account.address, login=account.login, password=secret)


class MailSession:
    """The signed-in account. Tokens expire, so a token account fetches a fresh one for each
    new connection."""

    def __init__(self, account: Account, credentials: Credentials) -> None:
        self.account = account
        self.credentials = credentials
        self.context = tls_context(account.ca_path, credentials.certificate)
        self._author: DocumentAuthor | None = None

    @classmethod
    async def sign_in(cls, account: Account, secret: str = "") -> tuple[MailSession, ImapClient]:
        credentials = await resolve_credentials(account, secret)
        session = cls(account, credentials)
        return session, await session.imap(fresh=False)

    async def _fresh_credentials(self) -> Credentials:
        if self.account.auth == "token":
            self.credentials = await resolve_credentials(self.account)
        return self.credentials

    async def imap(self, *, fresh: bool = True) -> ImapClient:
        credentials = await self._fresh_credentials() if fresh else self.credentials
        return await ImapClient.connect(
            self.account.host,
            self.account.imap_port,
            security=self.account.imap_security,
            context=self.context,
            credentials=credentials,
        )

    async def send(self, message: Message, *, notify_success: bool = False) -> None:
        credentials = await self._fresh_credentials()
        await submit(
            message,
            host=self.account.host,
            port=self.account.smtp_port,
            security=self.account.smtp_security,
            context=self.context,
            credentials=credentials,
            notify_success=notify_success,
        )


    async def author(self) -> DocumentAuthor:
        """The author of a PDF wrapped in CDA: the practitioner the client certificate names,
        else the one the operator's directory lists for this mailbox (with the IdNat), else
        the ``prenom.nom`` of the address. Asked once per session."""
        if self._author is None:
            self._author = document_author(self.account.address, self.credentials)
            if self._author.idnat is None:
                self._author = await self._directory_author() or self._author
        return self._author

    async def _directory_author(self) -> DocumentAuthor | None:
        base = self.account.directory_url or f"https://{self.account.host}:8443/fhir"
        try:
            owner = await owner_of(base, self.account.address, self.context)
        except DirectoryError:
            return None  # not a Hygie operator, or no directory: the address's names
        if owner is None:
            return None
        return DocumentAuthor(owner.given, owner.family.upper(), owner.idnat)


def document_author(address: str, credentials: Credentials) -> DocumentAuthor:
    """What the credentials alone say of the author: the practitioner the client certificate
    names (with the IdNat), else the ``prenom.nom`` of the address."""
    certificate = credentials.certificate
    if certificate is not None and certificate.family:
        return DocumentAuthor(
            certificate.given,
            certificate.family.upper(),
            certificate.idnat or None,
            certificate.organisation or None,
        )
    return author_from_address(address)


def find_special(folders: list[Folder], use: str, fallback: str) -> str:
    """The folder with special use ``use`` (RFC 6154), else the one named ``fallback``."""
    for folder in folders:
        if folder.special_use == use:
            return folder.name
    return fallback
