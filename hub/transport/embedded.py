"""The embedded broker: a queue in the hub's own database, for running with no services at all.

Semantics match the AMQP transport: at-least-once delivery, a visibility timeout after which an item
claimed by a consumer that died is delivered again, exponential backoff on failure and a dead letter
table after `max_attempts`. On PostgreSQL, claims use SELECT ... FOR UPDATE SKIP LOCKED so any number
of workers share the queue; on SQLite the write lock serialises claims.

The batch algorithm is the template's (`hub.transport.base.Consumer`); this module supplies what is
particular to a queue that lives in the same database: `claim` (which also buries the items whose
last attempt failed), the ack and the nack as statements of the batch's own transaction, and on
SQLite the speculative pass outside the write lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
import structlog

from hub import errors
from hub.store import db
from hub.store import unit_of_work
from hub.transport.base import (
    DONE, Consumer, DeadHandler, Handler, Item, Job, PollingTransport, backoff, bury, log_failure, prefetch, still_current,
)
from hub.store.tables import outbox

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


class EmbeddedConsumer(Consumer):
    """The template methods of the embedded queue: an item is acked (deleted) with its work and nacked
    (due again after a backoff, its error kept) in the batch's transaction; items are buried when
    claimed, not in the batch. On SQLite the batch is first done ahead, outside the write lock."""

    transport: EmbeddedTransport

    def prepare(self, jobs: list[Job[Item]]) -> _Speculation | None:
        if self.transport.speculate and db.is_sqlite(self.engine):
            return self.transport._speculate([job.item for job in jobs], self.handler)
        return None

    @contextmanager
    def transaction(self, jobs: list[Job[Item]], spec: _Speculation | None) -> Iterator[sa.Connection]:
        with db.write(self.engine) as conn, unit_of_work.collecting(conn, spec.unit if spec else None):
            yield conn

    def still_to_do(self, conn: sa.Connection, jobs: list[Job[Item]], spec: _Speculation | None) -> list[Job[Item]]:
        """What `spec` did not do, if what it did still holds under the lock; else the whole batch."""
        if spec is None:
            return jobs
        if still_current(self.handler, conn):
            left = {id(item) for item in spec.left}
            return [job for job in jobs if id(job.item) in left]
        # another worker processed one of them meanwhile: do the batch again, under the lock
        unit_of_work.current(conn).rollback_to(spec.empty)  # type: ignore[union-attr]
        return jobs

    def burial(self, job: Job[Item]) -> None:
        return None  # `claim` buried the items whose last attempt failed

    def done(self, conn: sa.Connection, job: Job[Item]) -> None:
        unit_of_work.execute(conn, _ACK, {"b_id": job.item.id})  # ack, atomically with the work

    def failed(self, conn: sa.Connection | None, job: Job[Item], exc: BaseException) -> None:
        if conn is None:
            self.outage([job], exc)
            return
        error = errors.describe(exc)
        self._log_failure(job.item, error)
        conn.execute(_NACK, self._nack(job.item, error))

    def outage(self, jobs: list[Job[Item]], exc: BaseException) -> None:
        """Nack with backoff, in a transaction of its own (the batch's failed)."""
        error = errors.describe(exc)
        for job in jobs:
            self._log_failure(job.item, error)
        try:
            with db.write(self.engine) as conn:
                for job in jobs:
                    conn.execute(_NACK, self._nack(job.item, error))
        except Exception:  # noqa: BLE001 - the visibility timeout brings them back anyway
            pass

    def _nack(self, item: Item, error: str) -> dict[str, Any]:
        return {"b_id": item.id, "b_at": self.transport.clock() + backoff(item.attempts), "b_error": error}

    def _log_failure(self, item: Item, error: str) -> None:
        log_failure(log, item, error, self.transport.max_attempts)


class EmbeddedTransport(PollingTransport):
    name = "embedded"
    Consumer = EmbeddedConsumer
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
            for row in rows:
                item = Item(row.id, queue, row.payload, row.attempts + 1)
                reason = self.exhausted(item, row.last_error)
                if reason is None:
                    items.append(item)
                else:
                    dead.append((item, reason))
            if items:
                conn.execute(
                    outbox.update()
                    .where(outbox.c.id.in_([i.id for i in items]))
                    .values(available_at=now + self.visibility_timeout, attempts=outbox.c.attempts + 1)
                )
            for item, reason in dead:
                conn.execute(outbox.delete().where(outbox.c.id == item.id))
                bury(conn, item, reason, dead_handler)
        return items

    def _commit(self, items: list[Item], handler: Handler, spec: _Speculation | None) -> list[bool]:
        """The write transaction of `process_batch`: what `spec` collected, if still current, and the rest."""
        jobs = [Job(item) for item in items]
        if jobs:
            self.consumer(items[0].queue, handler).commit(jobs, spec)
        return [job.outcome == DONE for job in jobs]

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

    def ready(self) -> bool:
        try:
            with db.read(self.engine) as conn:
                conn.execute(sa.select(1))
            return True
        except Exception:  # noqa: BLE001
            return False
