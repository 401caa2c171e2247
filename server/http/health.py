"""``GET /health``: whether this node should get connections, for the load balancer's checks
(docs/operations.md). 200 ``serving`` once every listener is up and the database answers;
503 ``draining`` from the stop signal on (the node still finishes what it has, and for
``[server] drain_seconds`` still accepts, while the balancer takes it out); 503 ``database
unavailable`` when a trivial query fails or takes more than :data:`DB_TIMEOUT` seconds.

It listens on its own plain-HTTP port (``[server] health_port``) rather than being a TCP check
of each service port: the node can say "take me out" before it refuses anything, one check
covers every port, and the checks cost no TLS handshake or PROXY header on the mail ports.
"""

from __future__ import annotations

import asyncio
import time

from server.http.server import Handler, Request, Response, text
from storage.db import Database

#: Seconds the database has to answer ``SELECT 1``.
DB_TIMEOUT = 2.0
#: A database answer is reused this long (several backends check every node each second).
CACHE_SECONDS = 0.5


class Health:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.draining = False
        self._checked = 0.0
        self._db_ok = False

    async def status(self) -> tuple[int, str]:
        if self.draining:
            return 503, "draining"
        now = time.monotonic()
        if now - self._checked > CACHE_SECONDS:
            try:
                async with asyncio.timeout(DB_TIMEOUT):
                    await self.db.lookup("SELECT 1")
                self._db_ok = True
            except Exception:
                self._db_ok = False
            self._checked = time.monotonic()
        if not self._db_ok:
            return 503, "database unavailable"
        return 200, "serving"


def health_route(health: Health) -> Handler:
    async def handle(request: Request) -> Response:
        if request.method != "GET":
            return text(405, "GET only")
        status, state = await health.status()
        response = text(status, state)
        response.headers.append(("Cache-Control", "no-store"))
        return response

    return handle
