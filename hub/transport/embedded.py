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

from hub import db
from hub.transport.base import DeadHandler, Handler, Item, Transport, backoff
from hub.tables import dead_letters, outbox

log = structlog.get_logger("hub.transport.embedded")


class EmbeddedTransport(Transport):
    name = "embedded"
    batch_size = 32

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
        try:
            with db.write(self.engine) as conn:
                handler(conn, item)
                conn.execute(outbox.delete().where(outbox.c.id == item.id))  # ack, atomically with the work
            return True
        except Exception as exc:  # noqa: BLE001 - any failure means: try again later
            log.warning("handler failed; will retry", queue=item.queue, attempt=item.attempts, error=repr(exc))
            try:
                with db.write(self.engine) as conn:  # nack with backoff
                    conn.execute(
                        outbox.update().where(outbox.c.id == item.id).values(available_at=time.time() + backoff(item.attempts))
                    )
            except Exception:  # noqa: BLE001 - the visibility timeout brings it back anyway
                pass
            return False

    def consume(self, queue: str, handler: Handler, dead_handler: DeadHandler, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                items = self.claim(queue, dead_handler)
            except Exception as exc:  # noqa: BLE001 - database away: wait and retry, never die
                log.warning("claim failed; retrying", queue=queue, error=repr(exc))
                stop.wait(min(5.0, self.poll_interval * 20))
                continue
            for item in items:
                if stop.is_set():
                    break  # unprocessed claims come back after the visibility timeout
                self.process(item, handler)
            if not items:
                self.wait(self.poll_interval)

    def ready(self) -> bool:
        try:
            with db.read(self.engine) as conn:
                conn.execute(sa.select(1))
            return True
        except Exception:  # noqa: BLE001
            return False
