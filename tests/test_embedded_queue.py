"""The embedded broker keeps the promises the AMQP transport keeps: outbox atomicity, ack,
redelivery after the visibility timeout, backoff after a failure, dead letter after N attempts."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from hub.store import db
from hub.runtime import Hub
from hub.store.tables import dead_letters, outbox
from hub.transport.embedded import EmbeddedTransport
from tests.conftest import FakeClock, wait_until


@pytest.fixture
def transport(hub: Hub) -> EmbeddedTransport:
    return EmbeddedTransport(hub.engine, visibility_timeout=0.5, max_attempts=3, poll_interval=0.01)


def queued(hub: Hub, queue: str = "q") -> int:
    with db.read(hub.engine) as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(outbox).where(outbox.c.queue == queue)).scalar_one()


def test_publish_is_part_of_the_callers_transaction(hub: Hub, transport: EmbeddedTransport) -> None:
    with pytest.raises(RuntimeError):
        with db.write(hub.engine) as conn:
            transport.publish(conn, "q", {"n": 1})
            raise RuntimeError("the business write failed")
    assert queued(hub) == 0, "a rolled-back transaction left a queued message behind"
    with db.write(hub.engine) as conn:
        transport.publish(conn, "q", {"n": 2})
    assert queued(hub) == 1


def test_handled_item_is_acked_with_the_handlers_transaction(hub: Hub, transport: EmbeddedTransport) -> None:
    with db.write(hub.engine) as conn:
        transport.publish(conn, "q", {"n": 1})
    (item,) = transport.claim("q", lambda *a: None)
    assert transport.process(item, lambda conn, item: None)
    assert queued(hub) == 0


def test_claimed_item_comes_back_after_visibility_timeout(hub: Hub, transport: EmbeddedTransport) -> None:
    """A consumer that dies after claiming must not lose the item. The transport's clock is injected:
    the visibility timeout (0.5 s) passes when the test says, not by waiting for it."""
    with db.write(hub.engine) as conn:
        transport.publish(conn, "q", {"n": 1})
    clock = transport.clock = FakeClock()  # from now on: the item is available
    assert len(transport.claim("q", lambda *a: None)) == 1
    assert transport.claim("q", lambda *a: None) == [], "a claimed item must be invisible to other consumers"
    clock.advance(0.4)
    assert transport.claim("q", lambda *a: None) == [], "a claimed item stays invisible until its visibility timeout passes"
    clock.advance(0.2)
    (again,) = transport.claim("q", lambda *a: None)
    assert again.payload == {"n": 1} and again.attempts == 2


def test_failing_handler_rolls_back_its_work_and_item_is_retried(hub: Hub, transport: EmbeddedTransport) -> None:
    with db.write(hub.engine) as conn:
        transport.publish(conn, "q", {"n": 1})
    (item,) = transport.claim("q", lambda *a: None)

    def handler(conn, item) -> None:  # noqa: ANN001
        transport.publish(conn, "side-effect", {"from": item.payload})
        raise ValueError("boom")

    assert not transport.process(item, handler)
    assert queued(hub, "side-effect") == 0, "the failed handler's writes were committed"
    assert queued(hub) == 1, "the failed item was lost"


def test_item_goes_to_dead_letters_after_max_attempts(hub: Hub, transport: EmbeddedTransport) -> None:
    with db.write(hub.engine) as conn:
        transport.publish(conn, "q", {"message_id": "M1"})
    dead_calls = []
    for _ in range(3):
        (item,) = transport.claim("q", lambda *a: dead_calls.append(a))
        assert not transport.process(item, lambda conn, item: (_ for _ in ()).throw(ValueError("always")))
        with db.write(hub.engine) as conn:  # skip the backoff wait
            conn.execute(outbox.update().values(available_at=0))
    assert transport.claim("q", lambda conn, item, reason: dead_calls.append(reason)) == []
    assert dead_calls and "3 attempts" in dead_calls[0]
    with db.read(hub.engine) as conn:
        rows = conn.execute(sa.select(dead_letters)).all()
    assert [(r.queue, r.message_id, r.attempts) for r in rows] == [("q", "M1", 3)]
    assert queued(hub) == 0


def test_competing_consumers_process_each_item_once(hub: Hub) -> None:
    # a visibility timeout longer than any batch takes: with a too-short one, at-least-once legitimately
    # hands a slow consumer's items to another (the pipeline's receiver is idempotent; this handler is not)
    transport = EmbeddedTransport(hub.engine, visibility_timeout=60, max_attempts=3, poll_interval=0.01)
    with db.write(hub.engine) as conn:
        for n in range(200):
            transport.publish(conn, "q", {"n": n})
    seen: list[int] = []
    lock = threading.Lock()

    def handler(conn, item) -> None:  # noqa: ANN001
        with lock:
            seen.append(item.payload["n"])

    stop = threading.Event()
    consumers = [threading.Thread(target=transport.consume, args=("q", handler, lambda *a: None, stop)) for _ in range(3)]
    for c in consumers:
        c.start()
    try:
        wait_until(lambda: queued(hub) == 0, 30, lambda: f"the consumers to drain the queue ({queued(hub)} items left)")
    finally:
        stop.set()
        transport.notify()
        for c in consumers:
            c.join(5)
    assert sorted(seen) == list(range(200)), "an item was lost or handled twice"


def test_a_failing_item_in_a_batch_leaves_nothing_and_the_others_commit(hub: Hub, transport: EmbeddedTransport) -> None:
    """Items of a claimed batch share one transaction; the one that fails is rolled back to its
    savepoint -- its immediate AND its collected (unit of work) writes -- and the rest commit."""
    from hub.store.history import record
    from hub.store.tables import message_events

    with db.write(hub.engine) as conn:
        for n in range(5):
            transport.publish(conn, "q", {"n": n})
    items = transport.claim("q", lambda *a: None)

    def handler(conn: sa.Connection, item) -> None:  # noqa: ANN001
        record(conn, f"m{item.payload['n']}", "test", "handled")  # collected, written at the end
        transport.publish(conn, "side", {"from": item.payload["n"]})  # collected too
        conn.execute(dead_letters.insert().values(queue="immediate", payload=item.payload, attempts=0, at=db.utcnow()))
        if item.payload["n"] == 2:
            raise RuntimeError("this one fails")

    assert transport.process_batch(items, handler) == [True, True, False, True, True]
    with db.read(hub.engine) as conn:
        events = sorted(r[0] for r in conn.execute(sa.select(message_events.c.message_id).where(message_events.c.stage == "test")))
        side = sorted(r[0]["from"] for r in conn.execute(sa.select(outbox.c.payload).where(outbox.c.queue == "side")))
        immediate = sorted(r[0]["n"] for r in conn.execute(sa.select(dead_letters.c.payload).where(dead_letters.c.queue == "immediate")))
    assert events == ["m0", "m1", "m3", "m4"], f"the failed item's history must be gone, the others' kept: {events}"
    assert side == [0, 1, 3, 4] and immediate == [0, 1, 3, 4], f"collected {side} / immediate {immediate} writes of the failed item survived"
    assert queued(hub) == 1, "only the failed item stays queued (nacked), the others are acked"


@pytest.mark.parametrize("statement", ["claim", "still-current check"])
def test_claiming_and_checking_look_up_their_items_without_walking_the_backlog(hub: Hub, statement: str) -> None:
    """A worker claims and (under the write lock) re-checks a batch many times a second while
    thousands of items wait: neither may read or sort the whole backlog. SQLite's plan shows it --
    a temporary B-tree for ORDER BY, or a search by status alone, means every waiting row is read."""
    from hub.pipeline import read_ahead
    from hub.transport import embedded

    if statement == "claim":
        stmt, params = embedded._CLAIM, {"queue": "pipeline", "now": time.time(), "batch": 32}
        wanted = "USING INDEX ix_outbox_queue_id (queue=?)"
    else:
        stmt, params = read_ahead._RECEIVED, {"ids": ["01A", "01B", "01C"]}
        wanted = "USING COVERING INDEX ix_messages_status_id (status=? AND id=?)"
    with db.read(hub.engine) as conn:
        state = stmt.compile(conn).construct_expanded_state(params)
        args = tuple(state.parameters[k] for k in state.positiontup)
        plan = " | ".join(row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {state.statement}", args))
    assert "TEMP B-TREE" not in plan and wanted in plan, f"the {statement} reads the backlog: {plan}"
