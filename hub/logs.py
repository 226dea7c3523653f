"""Structured logging: JSON lines in production, readable console output on a terminal.

Every log line of message processing carries `message_id` and `correlation_id` (bound through
structlog's contextvars), so one grep follows one message across API, pipeline and delivery.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TextIO

import structlog


#: the log file `configure(to=...)` opened; kept open for the life of the process
_log_file: TextIO | None = None


class _Stderr:
    """Whatever `sys.stderr` is when a line is written: a process that swaps it (a test runner
    capturing a command's output, then closing the capture) keeps logging instead of failing."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def configure(fmt: str = "console", level: str = "info", to: Path | None = None) -> None:
    """Log to stderr, or with `to` into that file (truncated), so that a command's own output on
    stdout/stderr (the `hub demo` story) is not interleaved with log lines."""
    global _log_file
    stream: TextIO = _Stderr()  # type: ignore[assignment]
    if to is not None:
        to.parent.mkdir(parents=True, exist_ok=True)
        _log_file = stream = open(to, "w", encoding="utf-8", buffering=1)  # noqa: SIM115 - lives as long as the process
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper(), logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO), stream=stream, format="%(levelname)s %(name)s: %(message)s", force=to is not None
    )
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # migrations speak only when something is wrong
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the demo's own requests are not news
