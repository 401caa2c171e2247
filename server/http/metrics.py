"""``GET /metrics`` (issue 11 item 4): the Prometheus exposition of :mod:`server.ops.metrics`,
for a bearer token whose SHA-256 is in the data directory (``hygie report metrics-token``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog
from prometheus_client import CONTENT_TYPE_LATEST

from server.http.server import Request, Response, text
from server.ops.metrics import ServerMetrics, token_ok
from storage.db import Database

log = structlog.get_logger("hygie.metrics")


def metrics_route(
    metrics: ServerMetrics, db: Database, data_dir: Path
) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        if request.path != "/metrics":
            return text(404, "not found")
        if request.method not in ("GET", "HEAD"):
            return text(405, "method not allowed")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            response = text(401, "a bearer token is required")
            response.headers.append(("WWW-Authenticate", 'Bearer realm="hygie-metrics"'))
            return response
        if not token_ok(data_dir, token.strip()):
            log.info("metrics_refused", peer=request.peer)
            response = text(401, "invalid token")
            response.headers.append(("WWW-Authenticate", 'Bearer error="invalid_token"'))
            return response
        await metrics.refresh(db)
        return Response(200, CONTENT_TYPE_LATEST, metrics.exposition(),
                        [("Cache-Control", "no-store")])  # fmt: skip

    return handle
