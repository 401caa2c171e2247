"""``GET /metrics`` (issue 11 item 4): the Prometheus exposition of :mod:`server.ops.metrics`,
for a bearer token whose SHA-256 is in the data directory (``hygie report metrics-token``)."""

from __future__ import annotations

from pathlib import Path

import structlog
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from server.http.responses import peer, text
from server.ops.metrics import ServerMetrics, token_ok
from storage.db import Database

log = structlog.get_logger("hygie.metrics")


def metrics_routes(metrics: ServerMetrics, db: Database, data_dir: Path) -> list[BaseRoute]:
    async def handle(request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return text(401, "a bearer token is required",
                        {"WWW-Authenticate": 'Bearer realm="hygie-metrics"'})  # fmt: skip
        if not token_ok(data_dir, token.strip()):
            log.info("metrics_refused", peer=peer(request))
            return text(401, "invalid token", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        await metrics.refresh(db)
        return Response(metrics.exposition(), 200, headers={"Cache-Control": "no-store"},
                        media_type=CONTENT_TYPE_LATEST)  # fmt: skip

    return [Route("/metrics", handle, methods=["GET"])]
