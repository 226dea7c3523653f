"""The deadline scheduler in the worker: nothing lost, nothing twice -- a worker killed with kill -9
mid-sweep leaves no deadline half-missed, and competing workers miss each deadline once. On both
backends (SQLite with the embedded queue; PostgreSQL with RabbitMQ)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import sqlalchemy as sa

from hub.chain import deadlines, membership
from hub.runtime import Hub
from hub.store import db
from hub.store.tables import chain_deadlines, chain_events, chain_tasks, deliveries
from tests.conftest import JOBCENTER, PROVIDER, wait_until
from tests.integration.conftest import WorkerProcess

N = 40
PAST = dt.date(2026, 11, 2)


def seed_passed_deadlines(hub: Hub, n: int = N) -> list[str]:
    """`n` cases, each with a start the provider owed on a day that has passed."""
    ids = []
    with db.write(hub.engine) as conn:
        for i in range(n):
            case = membership.open_case(conn, JOBCENTER, f"900D{i:06d}", None)
            deadlines.expect(conn, case_id=case.id, link_id=None, partner_id=PROVIDER, kind="start", message_type="teilnahme.eintritt.2010",
                             due_on=PAST, rule_id="start-message-due", rule_version="test", key=f"seed:{i}")
        ids = list(conn.execute(sa.select(chain_deadlines.c.id)).scalars())
    return ids


def missed(hub: Hub) -> int:
    with db.read(hub.engine) as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(chain_deadlines).where(chain_deadlines.c.status == "missed")).scalar_one()


def assert_each_deadline_missed_once(hub: Hub, ids: list[str]) -> None:
    with db.read(hub.engine) as conn:
        statuses = Counter(conn.execute(sa.select(chain_deadlines.c.status)).scalars())
        tasks_per_deadline = Counter(conn.execute(sa.select(chain_tasks.c.cause_deadline_id).where(chain_tasks.c.kind == "overdue_report")).scalars())
        breaches = Counter(e["deadline"] for e in conn.execute(sa.select(chain_events.c.detail).where(chain_events.c.kind == "breach")).scalars())
        task_ids = list(conn.execute(sa.select(chain_tasks.c.id)).scalars())
        pushed = Counter(conn.execute(sa.select(deliveries.c.message_id).where(deliveries.c.message_type == "steuerung.aufgabe.5010")).scalars())
    assert statuses == {"missed": len(ids)}, f"not every passed deadline was missed: {statuses}"
    assert set(tasks_per_deadline) == set(ids) and set(tasks_per_deadline.values()) == {1}, \
        f"each missed deadline opens exactly one task: {sorted(set(tasks_per_deadline.values()))}, {len(set(ids) - set(tasks_per_deadline))} without"
    assert set(breaches) == set(ids) and set(breaches.values()) == {1}, "each missed deadline is exactly one breach in the chain's record"
    assert set(pushed) == set(task_ids) and set(pushed.values()) == {1}, "each task reaches the owner's system exactly once"


def worker(hub_env: dict[str, str], tmp_path: Path, delay: str) -> WorkerProcess:
    env = {**hub_env, "HUB_TEST_LOG": str(tmp_path / "worker.log")}
    return WorkerProcess(env, role="pipeline", extra_env={"HUB_DEADLINE_INTERVAL": "0.2", "HUB_FAULT_SCHEDULER_DELAY": delay})


def test_a_worker_killed_mid_sweep_misses_every_deadline_once_after_its_restart(hub_env: dict[str, str], hub: Hub, tmp_path: Path) -> None:
    ids = seed_passed_deadlines(hub)
    slow = worker(hub_env, tmp_path, "0.1")  # each breach holds its transaction open: the kill lands inside one
    slow.start()
    try:
        wait_until(lambda: missed(hub) >= 5, 60, lambda: f"the worker to miss 5 deadlines ({missed(hub)} so far)")
        slow.kill9()
    finally:
        slow.stop()
    killed_at = missed(hub)
    assert killed_at < N, "the worker finished before the kill: nothing was tested"
    again = worker(hub_env, tmp_path, "0")
    again.start()
    try:
        wait_until(lambda: missed(hub) == N, 60, lambda: f"all {N} deadlines missed after the restart ({missed(hub)} are)")
    finally:
        again.stop()
    assert_each_deadline_missed_once(hub, ids)


def test_competing_workers_miss_each_deadline_once(hub_env: dict[str, str], hub: Hub, tmp_path: Path) -> None:
    ids = seed_passed_deadlines(hub)
    workers = [worker(hub_env, tmp_path, "0.02") for _ in range(3)]
    for w in workers:
        w.start()
    try:
        wait_until(lambda: missed(hub) == N, 90, lambda: f"all {N} deadlines missed ({missed(hub)} are)")
    finally:
        for w in workers:
            w.stop()
    assert_each_deadline_missed_once(hub, ids)
