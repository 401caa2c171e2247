"""Structured logs: one event per line (JSON by default), to standard error.

Log events carry ids, counts, sizes and client addresses; never a password, a token, a
message body or subject, a correspondent's address or an INS (style.md, design.md §4).
"""

from __future__ import annotations

import logging
import sys

import structlog

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def configure_logging(
    level: str = "info", fmt: str = "json", *, worker: str | None = None
) -> None:
    """``worker``: this process among the processes of ``hygie serve --workers N``
    (``"worker 2/4"``, or ``"supervisor"``), written as ``process`` in every event it logs."""
    numeric = LEVELS.get(level.lower(), logging.INFO)
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )

    def name_worker(
        _logger: object, _method: str, event: structlog.typing.EventDict
    ) -> structlog.typing.EventDict:
        event.setdefault("process", worker)
        return event

    named: list[structlog.typing.Processor] = [name_worker] if worker is not None else []
    structlog.configure(
        processors=[
            *named,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Libraries that use the standard logging module (aiosmtpd, asyncio) go to stderr too.
    logging.basicConfig(
        stream=sys.stderr,
        level=max(numeric, logging.WARNING),
        format="%(name)s %(levelname)s %(message)s",
    )
