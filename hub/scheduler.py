"""The deadline scheduler: a passed deadline becomes an SLA breach of its partner, and fires the rules.

Runs in every pipeline worker (`hub serve`, `hub worker`), every `HUB_DEADLINE_INTERVAL` seconds.
Each passed deadline is handled in a transaction of its own: claimed with a conditional UPDATE that
exactly one worker wins (hub.chain.deadlines.claim_missed), then the breach is recorded, the rules'
tasks opened and delivered, all in that transaction. So with any number of workers, on SQLite or
PostgreSQL, a deadline is missed once; and a worker killed midway leaves its claim uncommitted,
for the next sweep to take -- nothing lost, nothing twice.
"""

from __future__ import annotations

import datetime as dt
import threading
import time

import structlog

from hub.chain import calendar, deadlines, membership
from hub.metrics import SLA_BREACHES, TASKS_OPENED
from hub.pipeline.deliver import push_deliveries
from hub.pipeline.task_messages import deliver_tasks
from hub.runtime import Hub
from hub.store import db

log = structlog.get_logger("hub.scheduler")


class DeadlineScheduler:
    def __init__(self, hub: Hub, batch: int = 100) -> None:
        self.hub = hub
        self.batch = batch

    def sweep(self, now: dt.datetime | None = None) -> int:
        """Handle every deadline that passed by `now` (default: the current time); how many this
        worker handled (the others' are not counted)."""
        day = calendar.today(now)
        handled = 0
        while True:
            with db.read(self.hub.engine) as conn:
                due = deadlines.passed(conn, day, self.batch)
            taken = sum(self._miss(d, day) for d in due)
            handled += taken
            if len(due) < self.batch or not taken:
                return handled

    def _miss(self, deadline: deadlines.Deadline, day: dt.date) -> bool:
        hub = self.hub
        with db.write(hub.engine) as conn:
            if not deadlines.claim_missed(conn, deadline.id):
                return False  # another worker took it
            case = membership.case_by_id(conn, deadline.case_id)
            effects = hub.chain.on_deadline_missed(conn, case, deadline, day)
            written = deliver_tasks(hub, conn, effects.tasks, case, effects.link)
            push_deliveries(hub, conn, written, deadline.id)
            if hub.settings.fault_scheduler_delay > 0:
                time.sleep(hub.settings.fault_scheduler_delay)  # crash tests: a kill -9 lands before the commit
        SLA_BREACHES.labels(deadline.partner_id, deadline.kind).inc()
        for task in effects.tasks:
            TASKS_OPENED.labels(task.owner, task.kind).inc()
        log.info("deadline.missed", deadline=deadline.id, kind=deadline.kind, partner=deadline.partner_id, due_on=deadline.due_on.isoformat())
        return True

    def run(self, stop: threading.Event) -> None:
        """Sweep every `deadline_interval` seconds until `stop`; a failed sweep is logged and retried."""
        interval = self.hub.settings.deadline_interval
        while not stop.is_set():
            try:
                self.sweep()
            except Exception as exc:  # noqa: BLE001 - an outage must not end the worker thread
                log.warning("deadline.sweep_failed", error=str(exc))
            stop.wait(interval)
