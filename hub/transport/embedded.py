"""The embedded broker: a queue in the hub's own database, for running with no services at all.

Semantics match the AMQP transport: at-least-once delivery, a visibility timeout after which an item
claimed by a consumer that died is delivered again, exponential backoff on failure and a dead letter
table after `max_attempts`. On PostgreSQL, claims use SELECT ... FOR UPDATE SKIP LOCKED so any number
of workers share the queue; on SQLite the write lock serialises claims.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa
import structlog

from hub import errors
from hub.store import db
from hub.store import unit_of_work
from hub.transport.base import DeadHandler, Handler, Item, Transport, backoff, dead_reason, prefetch, still_current
from hub.store.tables import dead_letters, outbox

log = structlog.get_logger("hub.transport.embedded")

_ACK = outbox.delete().where(outbox.c.id == sa.bindparam("b_id"))
_NACK = outbox.update().where(outbox.c.id == sa.bindparam("b_id")).values(available_at=sa.bindparam("b_at"), last_error=sa.bindparam("b_error"))


@dataclass
class _Speculation:
    """What a speculative pass collected: its unit of work, the items done and the items left."""

    unit: unit_of_work.UnitOfWork
    empty: unit_of_work.Mark
    done: list[Item] = field(default_factory=list)
    left: list[Item] = field(default_factory=list)


#: the next ready items of a queue, oldest first; on (queue, id) a walk that stops at the batch
_CLAIM = (
    sa.select(outbox.c.id, outbox.c.payload, outbox.c.attempts, outbox.c.last_error)
    .where(outbox.c.queue == sa.bindparam("queue"), outbox.c.available_at <= sa.bindparam("now"))
    .order_by(outbox.c.id)
    .limit(sa.bindparam("batch", type_=sa.Integer))
    .with_for_update(skip_locked=True)
)


class EmbeddedTransport(Transport):
    name = "embedded"
    batch_size = 32
    #: items per transaction when processing a claimed batch (HUB_EMBEDDED_COMMIT_EVERY)
    commit_every = 16
    #: on SQLite, process outside the write lock first (HUB_EMBEDDED_SPECULATE)
    speculate = True
    #: wall-clock seconds deciding when an item is due (visibility timeout, backoff); injectable so a
    #: test lets a timeout pass without waiting for it
    clock: Callable[[], float] = staticmethod(time.time)

    def claim(self, queue: str, dead_handler: DeadHandler) -> list[Item]:
        now = self.clock()
        with db.write(self.engine) as conn:
            rows = conn.execute(_CLAIM, {"queue": queue, "now": now, "batch": self.batch_size}).all()
            items, dead = [], []
            last_errors = {}
            for row in rows:
                item = Item(row.id, queue, row.payload, row.attempts + 1)
                (dead if row.attempts >= self.max_attempts else items).append(item)
                last_errors[row.id] = row.last_error
            if items:
                conn.execute(
                    outbox.update()
                    .where(outbox.c.id.in_([i.id for i in items]))
                    .values(available_at=now + self.visibility_timeout, attempts=outbox.c.attempts + 1)
                )
            for item in dead:
                reason = dead_reason(item.attempts - 1, last_errors[item.id])
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

        On SQLite the items are first processed speculatively, outside the write lock (`_speculate`):
        the lock is then held only to check and write, not for the work.
        """
        spec = self._speculate(items, handler) if self.speculate and db.is_sqlite(self.engine) else None
        return self._commit(items, handler, spec)

    def _commit(self, items: list[Item], handler: Handler, spec: _Speculation | None) -> list[bool]:
        """The write transaction of `process_batch`: what `spec` collected, if still current, and the rest."""
        try:
            with db.write(self.engine) as conn, unit_of_work.collecting(conn, spec.unit if spec else None):
                results: dict[int, bool] = {}
                todo = items
                if spec is not None:
                    if still_current(handler, conn):
                        results = {id(item): True for item in spec.done}
                        todo = spec.left
                    else:  # another worker processed one of them meanwhile: do the batch again, under the lock
                        unit_of_work.current(conn).rollback_to(spec.empty)  # type: ignore[union-attr]
                self._run(conn, todo, handler, results)
            return [results[id(item)] for item in items]
        except Exception as exc:  # noqa: BLE001 - the database is away, or the batch could not commit
            if len(items) > 1 and not db.is_outage(self.engine, exc):
                log.warning("batch failed as a whole; processing its items one by one", queue=items[0].queue, size=len(items), error=repr(exc))
                return [self.process(item, handler) for item in items]
            error = errors.describe(exc)
            for item in items:
                self._log_failure(item, error)
            try:
                with db.write(self.engine) as conn:  # nack with backoff
                    for item in items:
                        conn.execute(_NACK, {"b_id": item.id, "b_at": self.clock() + backoff(item.attempts), "b_error": error})
            except Exception:  # noqa: BLE001 - the visibility timeout brings them back anyway
                pass
            return [False] * len(items)

    def _run(self, conn: sa.Connection, items: list[Item], handler: Handler, results: dict[int, bool]) -> None:
        """Handle `items` in the open write transaction: ack each with its work, or nack it with backoff."""
        prefetch(handler, conn, items)
        for item in items:
            try:
                with unit_of_work.savepoint(conn):
                    handler(conn, item)
                    unit_of_work.execute(conn, _ACK, {"b_id": item.id})  # ack, atomically with the work
                results[id(item)] = True
            except Exception as exc:  # noqa: BLE001 - any failure means: try again later
                if db.is_outage(self.engine, exc):
                    raise
                error = errors.describe(exc)
                self._log_failure(item, error)
                conn.execute(_NACK, {"b_id": item.id, "b_at": self.clock() + backoff(item.attempts), "b_error": error})
                results[id(item)] = False

    def _log_failure(self, item: Item, error: str) -> None:
        """One line per failed attempt, with the message it concerns; the last one says it is the last."""
        fields = {"queue": item.queue, "attempt": item.attempts, "message_id": item.payload.get("message_id"), "error": error}
        if item.attempts >= self.max_attempts:
            log.error("handler failed on its last attempt; the item goes to the dead letters", **fields)
        else:
            log.warning("handler failed; will retry", **fields)

    def _speculate(self, items: list[Item], handler: Handler) -> _Speculation | None:
        """Handle the items in a READING transaction, collecting their writes; None if that failed.

        SQLite has one writer at a time, and the pipeline's work (decode, route, encode, validate) is
        most of an item's time: done under the write lock it kept every HTTP accept waiting (that was
        the accept p99). Here it runs beside the writers; `process_batch` then takes the lock, checks
        that none of the messages was processed meanwhile, and writes what was collected. An item
        that would write at once (opening a case, filing a person) or fails is left for the lock,
        where it runs as before -- speculation never changes an outcome, it only moves work."""
        try:
            with db.read(self.engine) as conn, unit_of_work.collecting(conn, flush=False) as unit, unit_of_work.read_only(conn):
                spec = _Speculation(unit, unit.mark())
                prefetch(handler, conn, items)
                for item in items:
                    try:
                        with unit_of_work.savepoint(conn):
                            handler(conn, item)
                            unit.add(_ACK, {"b_id": item.id})
                        spec.done.append(item)
                    except Exception:  # noqa: BLE001 - NeedsWriter, or a failure the write path will handle
                        spec.left.append(item)
            return spec
        except Exception as exc:  # noqa: BLE001 - e.g. the database is away: the write path decides
            log.info("speculative pass failed; processing under the write lock", error=repr(exc))
            return None

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
