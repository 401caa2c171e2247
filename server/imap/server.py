"""IMAP listeners: port 2143 (STARTTLS, RFC 9051 §6.2.1) and 2993 (implicit TLS, RFC 8314)."""

from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING

from server.auth.authenticator import Authenticator
from server.config import Config
from server.imap.capabilities import capabilities
from server.imap.commands import dispatch
from server.imap.session import Session
from server.imap.summary import ImapSummaries
from server.listeners import endpoint
from storage.crypto import MasterKey
from storage.mailstore import MailStore

if TYPE_CHECKING:
    from server.ops.metrics import ServerMetrics


class ImapServer:
    #: The command table (by state) and the capability list its sessions answer with.
    dispatch = staticmethod(dispatch)
    capabilities = staticmethod(capabilities)

    def __init__(
        self,
        config: Config,
        store: MailStore,
        auth: Authenticator,
        master: MasterKey,
        tls: ssl.SSLContext,
    ) -> None:
        self.config = config
        self.store = store
        if store.summaries is None:
            store.summaries = ImapSummaries()
        self.auth = auth
        self.master = master
        self.tls = tls
        self.sessions: set[Session] = set()
        self.metrics: ServerMetrics | None = None  # issue 11 item 4
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> list[asyncio.Server]:
        host = self.config.server.listen
        plain = await asyncio.start_server(self._plain, **endpoint(host, self.config.imap.port))
        implicit = await asyncio.start_server(
            self._implicit, **endpoint(host, self.config.imap.tls_port), ssl=self.tls
        )
        return [plain, implicit]

    async def _plain(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._run(Session(self, reader, writer, implicit_tls=False))

    async def _implicit(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._run(Session(self, reader, writer, implicit_tls=True))

    async def _run(self, session: Session) -> None:
        self.sessions.add(session)
        if self.metrics is not None:
            self.metrics.connection_opened("imap")
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await session.run()
        finally:
            self.sessions.discard(session)
            if self.metrics is not None:
                self.metrics.connection_closed("imap")
            if task is not None:
                self._tasks.discard(task)

    async def close(self) -> None:
        for session in list(self.sessions):
            await session.shutdown()
