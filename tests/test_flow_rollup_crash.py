"""The flow roll-up, the console's scheduler, survives kill -9 and competing workers on both
databases: a roll-up killed before its commit leaves nothing half-counted, and two workers rolling
up at once count every hour once -- the counters then agree with a live count.

Each roll-up runs in a process of its own, the way the workers run it (hub.store.flows.roll_up in one
transaction); the crashing one SIGKILLs itself after counting, before the commit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import sqlalchemy as sa

from hub.runtime import Hub
from hub.store import db, flows
from hub.store.tables import flow_counts, flow_rollup
from tests.conftest import ROOT
from tests.test_flows import NOW, seed, table

# hub_env: SQLite, then PostgreSQL (tests/conftest.py BOTH_DATABASES)

ROLL = textwrap.dedent("""
    import datetime as dt, os, signal, sys
    from hub.store import db, flows
    engine = db.create(sys.argv[1])
    now = dt.datetime.fromisoformat(sys.argv[2])
    if sys.argv[3] == "crash":
        with db.write(engine) as conn:
            counted = flows.roll_up(conn, now, max_hours=24 * 40)
            assert counted, "nothing to roll up: the crash would prove nothing"
            os.kill(os.getpid(), signal.SIGKILL)  # after counting, before the commit
    while True:
        with db.write(engine) as conn:
            if not flows.roll_up(conn, now, max_hours=6):
                break
""")


def roll(url: str, mode: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", ROLL, url, NOW.isoformat(), mode], cwd=ROOT, env={**os.environ}, stderr=subprocess.PIPE, text=True)


def test_a_roll_up_killed_before_its_commit_leaves_nothing_and_competing_ones_count_each_hour_once(hub: Hub, hub_env: dict[str, str]) -> None:
    seed(hub)
    url = hub_env["HUB_DATABASE_URL"]
    live = table(hub)  # no counters yet: everything counted live
    crashed = roll(url, "crash")
    _, err = crashed.communicate(timeout=60)
    assert crashed.returncode == -signal.SIGKILL, f"the roll-up was to die by SIGKILL: {crashed.returncode} {err}"
    with db.read(hub.engine) as conn:
        left = conn.execute(sa.select(sa.func.count()).select_from(flow_counts)).scalar_one()
        until = conn.execute(sa.select(flow_rollup.c.until)).scalar()
    assert left == 0 and until is None, f"a killed roll-up left {left} counters and progress {until}"

    workers = [roll(url, "run"), roll(url, "run")]
    for w in workers:
        _, err = w.communicate(timeout=120)
        assert w.returncode == 0, f"a competing roll-up failed: {err}"
    with db.read(hub.engine) as conn:
        until = db.aware(conn.execute(sa.select(flow_rollup.c.until)).scalar_one())
    assert until == flows.floor_hour(NOW - flows.GRACE), f"the roll-ups did not catch up: until {until}"
    assert table(hub) == live, "every hour is counted once: the counters agree with the live count"
