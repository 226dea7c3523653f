"""Worker threads: pipeline consumers (and, with a push transport, delivery), started by role.

`hub serve` runs them beside the API in one process; `hub worker` runs them alone, any number of
processes on any number of hosts (competing consumers on the same queue).
"""

from __future__ import annotations

import threading

import structlog

from hub import pipeline
from hub.runtime import Hub
from hub.transport import PIPELINE

log = structlog.get_logger("hub.workers")

ROLES = ("all", "api", "pipeline", "delivery")


class Workers:
    def __init__(self, hub: Hub, role: str = "all", threads: int = 1) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        self.hub = hub
        self.role = role
        self.threads = threads
        self.stop_event = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        if self.role in ("all", "pipeline"):
            for n in range(self.threads):
                self._spawn(f"pipeline-{n}", self._pipeline)
        log.info("workers.started", role=self.role, threads=len(self._threads), broker=self.hub.transport.name)

    def _spawn(self, name: str, target) -> None:  # type: ignore[no-untyped-def]
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _pipeline(self) -> None:
        hub = self.hub
        hub.transport.consume(
            PIPELINE,
            lambda conn, item: pipeline.handle(hub, conn, item),
            lambda conn, item, reason: pipeline.dead(hub, conn, item, reason),
            self.stop_event,
        )

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        self.hub.transport.notify()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
