"""The embedded broker: a queue in the hub's own database, for running with no services at all.

Semantics match the AMQP transport: at-least-once delivery, a visibility timeout after which an item
claimed by a consumer that died is delivered again, exponential backoff on failure and a dead letter
table after `max_attempts`. On PostgreSQL, claims use SELECT ... FOR UPDATE SKIP LOCKED so any number
of workers share the queue; on SQLite the write lock serialises claims.
"""

from __future__ import annotations

import threading
import time

import sqlalchemy as sa
import structlog

from hub import db, unit_of_work
from hub.transport.base import DeadHandler, Handler, Item, Transport, backoff, prefetch
from hub.tables import dead_letters, outbox

log = structlog.get_logger("hub.transport.embedded")

_ACK = outbox.delete().where(outbox.c.id == sa.bindparam("b_id"))
_NACK = outbox.update().where(outbox.c.id == sa.bindparam("b_id")).values(available_at=sa.bindparam("b_at"))


class EmbeddedTransport(Transport):
    name = "embedded"
    batch_size = 32
    #: items per transaction when processing a claimed batch (HUB_EMBEDDED_COMMIT_EVERY)
    commit_every = 16

    def claim(self, queue: str, dead_handler: DeadHandler) -> list[Item]:
        now = time.time()
        with db.write(self.engine) as conn:
            rows = conn.execute(
                sa.select(outbox.c.id, outbox.c.payload, outbox.c.attempts)
                .where(outbox.c.queue == queue, outbox.c.available_at <= now)
                .order_by(outbox.c.id)
                .limit(self.batch_size)
                .with_for_update(skip_locked=True)
            ).all()
            items, dead = [], []
            for row in rows:
                item = Item(row.id, queue, row.payload, row.attempts + 1)
                (dead if row.attempts >= self.max_attempts else items).append(item)
            if items:
                conn.execute(
                    outbox.update()
                    .where(outbox.c.id.in_([i.id for i in items]))
                    .values(available_at=now + self.visibility_timeout, attempts=outbox.c.attempts + 1)
                )
            for item in dead:
                reason = f"gave up after {item.attempts - 1} attempts"
                conn.execute(outbox.delete().where(outbox.c.id == item.id))
                conn.execute(
                    dead_letters.insert().values(
                        queue=queue,
                        payload=item.payload,
                        attempts=item.attempts - 1,
                        reason=reason,
                        message_id=item.payload.get("message_id"),
                        at=db.utcnow(),
                    )
                )
                dead_handler(conn, item, reason)
        return items

    def process(self, item: Item, handler: Handler) -> bool:
        """Process one item in its own transaction; True when it succeeded (and is acked)."""
        return self.process_batch([item], handler)[0]

    def process_batch(self, items: list[Item], handler: Handler) -> list[bool]:
        """Process claimed items in ONE transaction (a savepoint each) and ack them with it.

        The rows the handlers append are collected in a unit of work and written once per table at
        the end, so the per-message cost is the work, not the statements. An item whose handler
        raises is rolled back to its savepoint and nacked with backoff in the same transaction; the
        others commit. If the batch as a whole cannot commit, each item is tried again on its own,
        so one bad item never holds back the rest.
        """
        results: list[bool] = []
        try:
            with db.write(self.engine) as conn, unit_of_work.collecting(conn):
                prefetch(handler, conn, items)
                for item in items:
                    try:
                        with unit_of_work.savepoint(conn):
                            handler(conn, item)
                            unit_of_work.execute(conn, _ACK, {"b_id": item.id})  # ack, atomically with the work
                        results.append(True)
                    except Exception as exc:  # noqa: BLE001 - any failure means: try again later
                        if db.is_outage(self.engine, exc):
                            raise
                        log.warning("handler failed; will retry", queue=item.queue, attempt=item.attempts, error=repr(exc))
                        conn.execute(_NACK, {"b_id": item.id, "b_at": time.time() + backoff(item.attempts)})
                        results.append(False)
            return results
        except Exception as exc:  # noqa: BLE001 - the database is away, or the batch could not commit
            if len(items) > 1 and not db.is_outage(self.engine, exc):
                log.warning("batch failed as a whole; processing its items one by one", queue=items[0].queue, size=len(items), error=repr(exc))
                return [self.process(item, handler) for item in items]
            log.warning("handler failed; will retry", queue=items[0].queue, attempt=items[0].attempts, error=repr(exc))
            try:
                with db.write(self.engine) as conn:  # nack with backoff
                    for item in items:
                        conn.execute(_NACK, {"b_id": item.id, "b_at": time.time() + backoff(item.attempts)})
            except Exception:  # noqa: BLE001 - the visibility timeout brings them back anyway
                pass
            return [False] * len(items)

    def consume(self, queue: str, handler: Handler, dead_handler: DeadHandler, stop: threading.Event) -> None:
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
                self.process_batch(items[start : start + self.commit_every], handler)
            if not items:
                self.wait(self.poll_interval)

    def ready(self) -> bool:
        try:
            with db.read(self.engine) as conn:
                conn.execute(sa.select(1))
            return True
        except Exception:  # noqa: BLE001
            return False
