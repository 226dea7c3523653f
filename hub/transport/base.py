"""The transport interface: the only thing the pipeline knows about the broker.

Publishing always goes through the transactional outbox: `publish()` inserts into the `outbox` table
inside the caller's database transaction, so a message is stored and queued, or neither. How the
outbox reaches consumers is the transport's business: the embedded transport consumes the table
directly (it *is* the queue); the AMQP transport relays it to RabbitMQ with publisher confirms.

Consumers get at-least-once delivery: a handler runs inside a database transaction and the item is
acknowledged only with (embedded) or after (AMQP) that transaction's commit. Handlers are therefore
idempotent receivers.

How a batch of items is processed (one transaction, a savepoint each, one by one if the batch fails
as a whole, burial after the last attempt, an outage told apart from a bad message) is the batch
template's, `hub.store.batch.Batch`, which the group commit of accepts uses too. Here `Consumer`
binds it to a queue and a handler; a transport subclasses `Consumer` with its own template methods
(where an item is acked, nacked, buried, and `settle`: what the queue is told after the commit), and
a transport whose consumers fetch their work (`PollingTransport`) supplies only `claim` besides.
"""

from __future__ import annotations

import random
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.engine import Connection, Engine

from hub.store import db, unit_of_work
from hub.store.flows import QueueDepth, outbox_depths
from hub.store.batch import BURIED, DONE, FAILED, FAILURES, OUTAGE, UNBURIED, Batch, Job
from hub.store.db import utcnow
from hub.store.tables import dead_letters, outbox

__all__ = [
    "BURIED", "DONE", "FAILED", "FAILURES", "OUTAGE", "PARTNER", "PIPELINE", "UNBURIED",
    "Batch", "Consumer", "DeadHandler", "Handler", "Item", "Job", "PollingTransport", "Transport",
    "backoff", "bury", "dead_reason", "log_failure", "prefetch", "still_current",
]

log = structlog.get_logger("hub.transport")

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


def bury(conn: Connection, item: Item, reason: str, dead_handler: DeadHandler | None) -> None:
    """Give an item up for good in `conn`: its `dead_letters` row (what `hub messages dead` lists) and
    whatever the dead handler records (the message's status and history)."""
    conn.execute(
        dead_letters.insert().values(
            queue=item.queue, payload=item.payload, attempts=item.attempts - 1, reason=reason,
            message_id=item.payload.get("message_id"), at=utcnow(),
        )
    )
    if dead_handler is not None:
        dead_handler(conn, item, reason)


def log_failure(logger: Any, item: Item, error: str | None, max_attempts: int, delay_ms: int | None = None) -> None:
    """One line per failed attempt, with the message it concerns; the last one says it is the last
    (and a retry says when it comes back, where the transport knows: `delay_ms`)."""
    fields = {"queue": item.queue, "attempt": item.attempts, "message_id": item.payload.get("message_id"), "error": error}
    if item.attempts >= max_attempts:
        logger.error("handler failed on its last attempt; the item goes to the dead letters", **fields)
    elif delay_ms is None:
        logger.warning("handler failed; will retry", **fields)
    else:
        logger.warning("handler failed; will retry", delay_ms=delay_ms, **fields)


class Consumer(Batch[Job[Item]]):
    """The consumer of one queue: the batch template (`hub.store.batch`) bound to a handler.

    The defaults here are every transport's: the handler and its read-ahead hook do the work, and an
    item whose last allowed attempt failed is buried (`bury`) in its savepoint instead. A transport
    subclasses this with the template methods of its queue and `settle`."""

    def __init__(self, transport: Transport, queue: str, handler: Handler, dead_handler: DeadHandler | None = None) -> None:
        self.transport, self.engine, self.queue = transport, transport.engine, queue
        self.handler, self.dead_handler = handler, dead_handler
        self.log_fields = {"queue": queue}

    def process(self, items: list[Item]) -> list[Job[Item]]:
        """Run `items` as one batch (`Batch.decide`), then tell the queue what each came to (`settle`)."""
        jobs = self.decide([Job(item) for item in items])
        self.settle(jobs)
        return jobs

    def settle(self, jobs: list[Job[Item]]) -> None:
        """After the batch: tell the queue each item's outcome -- DONE and BURIED are acked, FAILED
        counts an attempt and comes back later, UNBURIED and OUTAGE come back without counting one.
        Nothing to do where `done` and `failed` already did it in the transaction."""

    def last_error(self, job: Job[Item]) -> str | None:
        """How the item's previous attempt failed, as the queue remembers it (for its burial reason)."""
        return None

    def handle(self, conn: Connection, job: Job[Item]) -> None:
        self.handler(conn, job.item)

    def prefetch(self, conn: Connection, jobs: list[Job[Item]]) -> None:
        prefetch(self.handler, conn, [job.item for job in jobs])

    def burial(self, job: Job[Item]) -> str | None:
        return self.transport.exhausted(job.item, self.last_error(job))

    def bury(self, conn: Connection, job: Job[Item], reason: str) -> None:
        bury(conn, job.item, reason, self.dead_handler)


class Transport(ABC):
    name: str
    #: the consumer of this transport's queues (its template methods; see `Consumer`)
    Consumer: type[Consumer] = Consumer
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

    def consumer(self, queue: str, handler: Handler, dead_handler: DeadHandler | None = None) -> Consumer:
        """A consumer of `queue` running `handler` (one per consuming thread)."""
        return self.Consumer(self, queue, handler, dead_handler)

    def exhausted(self, item: Item, last_error: str | None) -> str | None:
        """Why `item` is given up (its last allowed attempt failed); None while it may be tried."""
        return dead_reason(item.attempts - 1, last_error) if item.attempts > self.max_attempts else None

    @abstractmethod
    def consume(self, queue: str, handler: Handler, dead_handler: DeadHandler, stop: threading.Event) -> None:
        """Run handler for every item of `queue` until `stop` is set."""

    @abstractmethod
    def ready(self) -> bool:
        """True when the broker is reachable (readiness probe)."""

    def queue_depths(self) -> list[QueueDepth]:
        """Per queue, the items waiting and the age of the oldest (the console). Here the outbox's,
        which on the embedded broker are the queues; a broker adds its own."""
        with db.read(self.engine) as conn:
            return outbox_depths(conn)

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


class PollingTransport(Transport):
    """A transport whose consumers fetch their work from the queue (the embedded one): the consume
    loop over `claim`. A broker that pushes work to its consumers (AMQP) has a loop of its own."""

    #: items per transaction when processing a claimed batch
    commit_every: int = 16

    @abstractmethod
    def claim(self, queue: str, dead_handler: DeadHandler) -> list[Item]:
        """The next items of `queue` that are due, taken from other consumers until settled."""

    def consume(self, queue: str, handler: Handler, dead_handler: DeadHandler, stop: threading.Event) -> None:
        consumer = self.consumer(queue, handler, dead_handler)
        while not stop.is_set():
            try:
                items = self.claim(queue, dead_handler)
            except Exception as exc:  # noqa: BLE001 - database away: wait and retry, never die
                log.warning("claim failed; retrying", queue=queue, error=repr(exc))
                stop.wait(min(5.0, self.poll_interval * 20))
                continue
            # commit in slices: the write lock (SQLite) is never held for long, so accepts stay fast
            for start in range(0, len(items), self.commit_every):
                if stop.is_set():
                    break  # unprocessed claims come back after the visibility timeout
                consumer.process(items[start : start + self.commit_every])
            if not items:
                self.wait(self.poll_interval)

    def process(self, item: Item, handler: Handler) -> bool:
        """Process one item in its own transaction; True when it succeeded (and is acked)."""
        return self.process_batch([item], handler)[0]

    def process_batch(self, items: list[Item], handler: Handler) -> list[bool]:
        """Process claimed items as one batch (see `Consumer`); which of them succeeded."""
        if not items:
            return []
        return [job.outcome == DONE for job in self.consumer(items[0].queue, handler).process(items)]
