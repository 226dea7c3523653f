"""The transport interface: the only thing the pipeline knows about the broker.

Publishing always goes through the transactional outbox: `publish()` inserts into the `outbox` table
inside the caller's database transaction, so a message is stored and queued, or neither. How the
outbox reaches consumers is the transport's business: the embedded transport consumes the table
directly (it *is* the queue); the AMQP transport relays it to RabbitMQ with publisher confirms.

Consumers get at-least-once delivery: a handler runs inside a database transaction and the item is
acknowledged only with (embedded) or after (AMQP) that transaction's commit. Handlers are therefore
idempotent receivers.
"""

from __future__ import annotations

import random
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection, Engine

from hub.store import unit_of_work
from hub.store.db import utcnow
from hub.store.tables import outbox

_INSERT_OUTBOX = outbox.insert()

PIPELINE = "pipeline"
#: outbox rows that the relay publishes straight to a partner's own queue (payload: delivery_id)
PARTNER = "partner"


@dataclass
class Item:
    """One queue message as handed to a consumer."""

    id: Any
    queue: str
    payload: dict[str, Any]
    attempts: int


#: handler(conn, item): process inside the open transaction; raise to have the item redelivered.
#: A handler may carry `handler.prefetch(conn, items)`: called once per batch, in the batch's
#: transaction before its items, to read in one statement what each item would read alone; and
#: `handler.still_current(conn)`: after a speculative pass in a reading transaction (embedded queue on
#: SQLite), whether what the pass did still holds under the write lock. The transport knows nothing else
#: of what a handler does.
Handler = Callable[[Connection, Item], None]
#: dead_handler(conn, item, reason): record that an item gave up after its last attempt
DeadHandler = Callable[[Connection, Item, str], None]


def still_current(handler: Handler, conn: Connection) -> bool:
    """Ask the handler's speculation hook, if it has one (see `Handler`), whether what a pass over a
    batch in a reading transaction did still holds now that the write lock is taken."""
    hook = getattr(handler, "still_current", None)
    return True if hook is None else bool(hook(conn))


def prefetch(handler: Handler, conn: Connection, items: list[Item]) -> None:
    """Call the handler's batch hook, if it has one (see `Handler`)."""
    hook = getattr(handler, "prefetch", None)
    if hook is not None and items:
        hook(conn, items)


def dead_reason(attempts: int, last_error: str | None) -> str:
    """Why an item went to the dead letters: how often it was tried, and how its last attempt failed."""
    reason = f"gave up after {attempts} attempts"
    return f"{reason}; last error: {last_error}" if last_error else reason


def backoff(attempts: int, base: float = 0.5, cap: float = 60.0) -> float:
    """Exponential backoff with full jitter (AWS architecture blog), so retries do not march in step."""
    return random.uniform(0, min(cap, base * 2**attempts))


class Transport(ABC):
    name: str
    #: True when the outbox table is not itself the queue and a relay must move it to the broker
    needs_relay: bool = False
    #: True when the relay pushes deliveries to a partner's own queue (profile `delivery: amqp`)
    pushes_to_partners: bool = False

    def __init__(self, engine: Engine, *, visibility_timeout: float, max_attempts: int, poll_interval: float) -> None:
        self.engine = engine
        self.visibility_timeout = visibility_timeout
        self.max_attempts = max_attempts
        self.poll_interval = poll_interval
        self._wakeup = threading.Condition()

    def publish(self, conn: Connection, queue: str, payload: dict[str, Any], delay: float = 0.0) -> None:
        """Stage `payload` for `queue` in the caller's transaction (the outbox)."""
        unit_of_work.execute(
            conn, _INSERT_OUTBOX, {"queue": queue, "payload": payload, "available_at": time.time() + delay, "attempts": 0, "created_at": utcnow()}
        )

    def notify(self) -> None:
        """Wake consumers in this process after a commit, so they need not wait for the next poll."""
        with self._wakeup:
            self._wakeup.notify_all()

    def wait(self, timeout: float) -> None:
        with self._wakeup:
            self._wakeup.wait(timeout)

    @abstractmethod
    def consume(self, queue: str, handler: Handler, dead_handler: DeadHandler, stop: threading.Event) -> None:
        """Run handler for every item of `queue` until `stop` is set."""

    @abstractmethod
    def ready(self) -> bool:
        """True when the broker is reachable (readiness probe)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass
