"""Flows for the console: outcomes per partner and message type over the last hour, day and 30 days,
and as series -- the same figures whether counted live from the history or read from the rolled-up
counters; queue depths with the age of the oldest item."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from hub.runtime import Hub
from hub.store import db, flows
from hub.store.tables import flow_counts
from tests.conftest import JOBCENTER, agency_sample, embedded_env, hub_for, send
from tests.store_rows import UTC, message

# hub_env: SQLite, then PostgreSQL (tests/conftest.py BOTH_DATABASES)

NOW = dt.datetime(2026, 12, 4, 14, 30, tzinfo=UTC)
P1, P2, A, B = "traeger-eins", "traeger-zwei", "teilnahme.anwesenheit.2030", "teilnahme.austritt.2050"
ago = lambda **kw: NOW - dt.timedelta(**kw)  # noqa: E731


def counts(**given: int) -> dict[str, int]:
    return {**flows.outcome_counts(), **given}


def seed(hub: Hub) -> None:
    """Messages whose outcomes fall into and out of each window (see EXPECTED)."""
    with db.write(hub.engine) as conn:
        message(conn, P1, A, ago(minutes=10), outcomes=[("routed", ago(minutes=10))])
        message(conn, P1, A, ago(hours=3), "rejected", outcomes=[("rejected", ago(hours=3))])
        message(conn, P1, A, ago(days=2), "delivered", outcomes=[("routed", ago(days=2)), ("delivered", ago(days=2) + dt.timedelta(hours=1))])
        message(conn, P1, A, ago(days=40), "dead", outcomes=[("dead", ago(days=40))])
        # received before the day, delivered within it
        message(conn, P1, A, ago(hours=25), "delivered", outcomes=[("routed", ago(hours=25)), ("delivered", ago(hours=23))])
        # in the ragged first hour of the 30 days
        message(conn, P1, A, ago(days=30) + dt.timedelta(minutes=20), "duplicate", outcomes=[("duplicate", ago(days=30) + dt.timedelta(minutes=20))])
        message(conn, P2, B, ago(minutes=59), "dead", outcomes=[("dead", ago(minutes=5))])


EXPECTED = {
    (P1, A): (
        counts(received=1, routed=1),
        counts(received=2, routed=1, rejected=1, delivered=1),
        counts(received=5, routed=3, rejected=1, delivered=2, duplicate=1),
    ),
    (P2, B): (counts(received=1, dead=1), counts(received=1, dead=1), counts(received=1, dead=1)),
}


def table(hub: Hub, **kw: str) -> dict[tuple[str, str], tuple[dict[str, int], ...]]:
    with db.read(hub.engine) as conn:
        return {(f.partner, f.message_type): (f.last_hour, f.last_day, f.last_30_days) for f in flows.flows(conn, NOW, **kw)}


def roll_all(hub: Hub, max_hours: int = 24) -> int:
    hours = 0
    while True:
        with db.write(hub.engine) as conn:
            done = flows.roll_up(conn, NOW, max_hours=max_hours)
        if not done:
            return hours
        hours += done


def test_the_windows_count_each_outcome_when_it_happened(hub: Hub) -> None:
    seed(hub)
    assert table(hub) == EXPECTED, "counted live from the history, before any roll-up"
    assert table(hub, partner=P2) == {(P2, B): EXPECTED[(P2, B)]}, "narrowed to one partner"


def test_rolled_up_counters_give_the_same_figures_and_a_second_roll_up_adds_nothing(hub: Hub) -> None:
    seed(hub)
    hours = roll_all(hub)
    assert hours == (flows.floor_hour(NOW - flows.GRACE) - flows.floor_day(NOW - flows.LOOK_BACK)) // flows.HOUR, "every closed hour of the look-back"
    with db.read(hub.engine) as conn:
        assert flows.rolled_until(conn) == dt.datetime(2026, 12, 4, 14, tzinfo=UTC), "up to the last closed hour"
        spans = dict(conn.execute(sa.select(flow_counts.c.span, sa.func.count()).group_by(flow_counts.c.span)).all())
    assert spans.get("hour") and spans.get("day"), f"hourly and daily counters are written: {spans}"
    assert table(hub) == EXPECTED, "the counters and the live rest add up to the live figures"
    assert roll_all(hub) == 0 and table(hub) == EXPECTED, "nothing is counted twice"


def test_a_roll_up_in_small_steps_ends_where_one_long_one_does(hub: Hub) -> None:
    seed(hub)
    roll_all(hub, max_hours=7)
    assert table(hub) == EXPECTED, "seven hours per transaction count the same"


def test_the_series_have_one_bucket_per_hour_or_day_and_agree_before_and_after_the_roll_up(hub: Hub) -> None:
    seed(hub)
    with db.read(hub.engine) as conn:
        live = flows.series(conn, "hour", NOW), flows.series(conn, "day", NOW), flows.series(conn, "day", NOW, partner=P2)
    hours, days, p2 = live
    assert [p.start for p in hours] == [dt.datetime(2026, 12, 3, 15, tzinfo=UTC) + i * flows.HOUR for i in range(24)], "24 hours, this one last"
    assert [p.start for p in days] == [dt.datetime(2026, 11, 5, tzinfo=UTC) + i * flows.DAY for i in range(30)], "30 days, today last"
    assert sum(p.counts["received"] for p in hours) == 3 and hours[-1].counts == counts(received=1, routed=1, dead=1), "the hours hold what they received"
    assert sum(p.counts["received"] for p in days) == 5 and days[-1].counts["rejected"] == 1, "the days too (the 30th day before today is out)"
    assert sum(p.counts["dead"] for p in p2) == 1 and sum(p.counts["received"] for p in p2) == 1, "one partner's series has only its messages"
    roll_all(hub)
    with db.read(hub.engine) as conn:
        rolled = flows.series(conn, "hour", NOW), flows.series(conn, "day", NOW), flows.series(conn, "day", NOW, partner=P2)
    assert rolled == live, "the series read from the counters are the live ones"
    with pytest.raises(ValueError, match="span"):
        flows.series(conn, "week", NOW)  # type: ignore[arg-type]


def test_the_live_count_reads_the_partial_index_of_outcome_events(tmp_path: Path) -> None:
    """On SQLite (PostgreSQL's planner prefers a scan of a table this small, so its plan says nothing)."""
    hub = hub_for(embedded_env(tmp_path))
    statement = flows._live_statement(NOW - flows.HOUR, NOW)
    with db.read(hub.engine) as conn:
        compiled = statement.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
        plan = " | ".join(r[-1] for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}"))
    hub.close()
    assert "ix_message_events_outcomes" in plan, f"the live count must walk the outcome index, not the history: {plan}"


def test_a_message_through_the_pipeline_counts_as_received_and_routed_for_its_sender(hub: Hub) -> None:
    data = agency_sample("zuweisung.anmeldung.1020", customer_number="123D456789")
    data["header"]["reader"] = {"id": "traeger-bildungswerk"}
    send(hub, JOBCENTER, "agency-xml", data)
    with db.read(hub.engine) as conn:
        found = {(f.partner, f.message_type): f.last_hour for f in flows.flows(conn)}
    assert found[(JOBCENTER, "zuweisung.anmeldung.1020")] == counts(received=1, routed=1), f"the assignment's outcomes: {found}"


def test_queue_depths_count_the_waiting_items_and_the_age_of_the_oldest(hub: Hub) -> None:
    with db.write(hub.engine) as conn:
        hub.transport.publish(conn, "pipeline", {"message_id": "A"})
        hub.transport.publish(conn, "pipeline", {"message_id": "B"})
        hub.transport.publish(conn, "partner", {"delivery_id": "D"})
    depths = {d.queue: d for d in hub.transport.queue_depths()}
    assert {q: d.depth for q, d in depths.items()} == {"pipeline": 2, "partner": 1}, f"items per queue: {depths}"
    age = depths["pipeline"].oldest_age_seconds
    assert age is not None and 0 <= age < 60, f"the oldest item's age in seconds: {age}"
    json.dumps([vars(d) for d in depths.values()], default=str)  # the console can render it as it is


def test_the_pipeline_workers_roll_the_counters_up(hub_env: dict[str, str]) -> None:
    from hub.workers import Workers
    from tests.conftest import hub_for, wait_until

    hub = hub_for(hub_env, flow_rollup_seconds=0.05)
    workers = Workers(hub, role="pipeline")
    workers.start()
    try:
        target = flows.floor_hour(flows.utcnow() - flows.GRACE)

        def caught_up() -> bool:
            with db.read(hub.engine) as conn:
                until = flows.rolled_until(conn)
            return until is not None and until >= target

        wait_until(caught_up, 20, f"the worker's roll-up of the 31 days up to {target}, a day per transaction")
    finally:
        workers.stop(5)
        hub.close()
