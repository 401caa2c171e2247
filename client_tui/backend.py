"""What the interface needs from the network, as protocols: :class:`~client_tui.imap.ImapClient`
and :class:`~client_tui.session.MailSession` fit them, and so does a test's in-memory mailbox
(the SVG snapshots need fixed dates and subjects)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from email.message import Message
from typing import Protocol, TypeVar

from client_tui.config import Account
from client_tui.imap import Folder, MessageSummary, SelectedFolder, Token

T = TypeVar("T")


class MailReader(Protocol):
    @property
    def selected(self) -> SelectedFolder | None: ...

    async def folders(self) -> list[Folder]: ...
    async def select(self, folder: str) -> SelectedFolder: ...
    async def uids(self) -> list[int]: ...
    async def search_text(self, text: str) -> list[int]: ...
    async def summaries(self, uids: Sequence[int]) -> list[MessageSummary]: ...
    async def fetch_message(self, uid: int, *, mark_seen: bool = True) -> bytes: ...
    async def store_flags(self, uids: Sequence[int], flags: str, *, add: bool = True) -> None: ...
    async def move(self, uids: Sequence[int], folder: str) -> None: ...
    async def delete_permanently(self, uids: Sequence[int]) -> None: ...
    async def append(self, folder: str, message: bytes, flags: str = "\\Seen") -> int | None: ...
    def idle(self, limit: float = 25 * 60) -> AsyncIterator[list[Token]]: ...
    def stop_idle(self) -> None: ...
    async def logout(self) -> None: ...


class MailAccount(Protocol):
    account: Account

    async def imap(self, *, fresh: bool = True) -> MailReader: ...
    async def send(self, message: Message, *, notify_success: bool = False) -> None: ...


# Signs in: (account, password or passphrase) → the session and its first IMAP connection.
Connector = Callable[[Account, str], Awaitable[tuple[MailAccount, MailReader]]]


async def connect(account: Account, secret: str) -> tuple[MailAccount, MailReader]:
    from client_tui.session import MailSession

    return await MailSession.sign_in(account, secret)


class Reconnecting:
    """A :class:`MailReader` that opens a new connection when the old one is gone (a server
    restart, the 30-minute autologout of RFC 9051 §5.4, a laptop asleep), selects the folder
    again and retries the command once. APPEND is not retried: a copy could be kept twice."""

    def __init__(self, session: MailAccount, reader: MailReader) -> None:
        self.session = session
        self.inner = reader
        self.folder: str | None = None

    @property
    def selected(self) -> SelectedFolder | None:
        return self.inner.selected

    def _lost(self) -> bool:
        return not bool(getattr(self.inner, "connected", True))

    async def _again(self) -> None:
        self.inner = await self.session.imap()
        if self.folder is not None:
            await self.inner.select(self.folder)

    async def _retry(self, call: Callable[[MailReader], Awaitable[T]]) -> T:
        from client_tui.imap import ImapError

        try:
            return await call(self.inner)
        except ImapError:
            if not self._lost():
                raise
        await self._again()
        return await call(self.inner)

    async def folders(self) -> list[Folder]:
        return await self._retry(lambda r: r.folders())

    async def select(self, folder: str) -> SelectedFolder:
        self.folder = folder
        return await self._retry(lambda r: r.select(folder))

    async def uids(self) -> list[int]:
        return await self._retry(lambda r: r.uids())

    async def search_text(self, text: str) -> list[int]:
        return await self._retry(lambda r: r.search_text(text))

    async def summaries(self, uids: Sequence[int]) -> list[MessageSummary]:
        return await self._retry(lambda r: r.summaries(uids))

    async def fetch_message(self, uid: int, *, mark_seen: bool = True) -> bytes:
        return await self._retry(lambda r: r.fetch_message(uid, mark_seen=mark_seen))

    async def store_flags(self, uids: Sequence[int], flags: str, *, add: bool = True) -> None:
        await self._retry(lambda r: r.store_flags(uids, flags, add=add))

    async def move(self, uids: Sequence[int], folder: str) -> None:
        await self._retry(lambda r: r.move(uids, folder))

    async def delete_permanently(self, uids: Sequence[int]) -> None:
        await self._retry(lambda r: r.delete_permanently(uids))

    async def append(self, folder: str, message: bytes, flags: str = "\\Seen") -> int | None:
        if self._lost():
            await self._again()
        return await self.inner.append(folder, message, flags)

    def idle(self, limit: float = 25 * 60) -> AsyncIterator[list[Token]]:
        return self.inner.idle(limit)

    def stop_idle(self) -> None:
        self.inner.stop_idle()

    async def logout(self) -> None:
        await self.inner.logout()
