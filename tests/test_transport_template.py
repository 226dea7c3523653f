"""A new transport gets the whole batch behaviour from the template by supplying only its queue.

`ListTransport` below keeps its queue in a Python list: `claim` takes what waits, and its consumer's
`settle` puts back what must come again, counting an attempt only for the item's own failure. All the
rest -- the batch in one transaction, a savepoint per item, the batch done again one by one when it
fails as a whole, the burial after the last attempt, an outage that counts for nobody -- it inherits
(`hub.transport.base.PollingTransport` and `Consumer` over `hub.store.batch.Batch`), on SQLite and on
PostgreSQL alike.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from hub.runtime import Hub
from hub.store import db
from hub.store.history import record
from hub.store.tables import dead_letters, message_events
from hub.transport.base import BURIED, DONE, FAILED, OUTAGE, UNBURIED, Consumer, DeadHandler, Item, Job, PollingTransport
from tests.conftest import embedded_env, hub_for, wait_until


class ListTransport(PollingTransport):
    """A queue in a Python list: the throw-away transport of these tests."""

    name = "list"

    def __init__(self, engine: sa.Engine, max_attempts: int = 3) -> None:
        super().__init__(engine, visibility_timeout=60, max_attempts=max_attempts, poll_interval=0.01)
        self.waiting: list[Item] = []
        self.last_errors: dict[Any, str | None] = {}
        self._ids = itertools.count(1)

    def put(self, *payloads: dict[str, Any]) -> None:
        self.waiting += [Item(next(self._ids), "q", payload, 1) for payload in payloads]

    def claim(self, queue: str, dead_handler: DeadHandler) -> list[Item]:
        taken, self.waiting = self.waiting, []
        return taken

    def ready(self) -> bool:
        return True

    class Consumer(Consumer):
        transport: ListTransport

        def last_error(self, job: Job[Item]) -> str | None:
            return self.transport.last_errors.get(job.item.id)

        def settle(self, jobs: list[Job[Item]]) -> None:
            for job in jobs:
                if job.outcome in (DONE, BURIED):
                    continue  # acked
                counted = job.outcome == FAILED  # the item's own failure; not UNBURIED, not OUTAGE
                if counted:
                    self.transport.last_errors[job.item.id] = job.error
                item = job.item
                self.transport.waiting.append(Item(item.id, item.queue, item.payload, item.attempts + counted))


# -- helpers ------------------------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def hub(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Hub]:
    env = embedded_env(tmp_path)
    if request.param == "sqlite":
        h = hub_for(env)
        yield h
        h.close()
        db.dispose_all()
        return
    from tests.integration.services import postgres_database

    with postgres_database() as url:
        h = hub_for({**env, "HUB_DATABASE_URL": url})
        yield h
        h.close()
        db.dispose_all()


@pytest.fixture
def transport(hub: Hub) -> ListTransport:
    return ListTransport(hub.engine)


def numbered(count: int) -> list[dict[str, Any]]:
    return [{"n": n, "message_id": f"M{n}"} for n in range(count)]


def handled(hub: Hub) -> list[str]:
    """The messages whose handler's history row was committed."""
    with db.read(hub.engine) as conn:
        return sorted(conn.execute(sa.select(message_events.c.message_id).where(message_events.c.stage == "test")).scalars())


def commits(hub: Hub) -> list[int]:
    """A counter of the commits on the hub's engine from now on (the list grows by one per commit)."""
    seen: list[int] = []
    sa.event.listen(hub.engine, "commit", lambda conn: seen.append(1))
    return seen


def work(conn: Connection, item: Item) -> None:
    """The handler's work: one history row collected in the unit of work, one written at once."""
    record(conn, item.payload["message_id"], "test", "handled")
    conn.execute(message_events.insert().values(message_id=f"{item.payload['message_id']}-at-once", at=db.utcnow(), stage="at-once", event="x"))


def lost_connection() -> OperationalError:
    """What SQLAlchemy raises when the database went away under a statement (a dropped connection)."""
    return OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"), connection_invalidated=True)


def round_of(transport: ListTransport, handler: Any, dead_handler: DeadHandler | None = None) -> list[str | None]:
    """Claim what waits and process it as one batch, as the consume loop does; the outcomes."""
    consumer = transport.consumer("q", handler, dead_handler or (lambda conn, item, reason: None))
    return [job.outcome for job in consumer.process(transport.claim("q", consumer.dead_handler))]


# -- the behaviour a transport inherits ---------------------------------------------------------------
def test_a_batch_is_processed_in_one_transaction(hub: Hub, transport: ListTransport) -> None:
    transport.put(*numbered(5))
    counted = commits(hub)
    assert round_of(transport, work) == [DONE] * 5
    assert len(counted) == 1, f"five items took {len(counted)} commits, not one"
    assert handled(hub) == [f"M{n}" for n in range(5)]
    assert transport.waiting == [], "every item done is acked"


def test_a_bad_item_is_rolled_back_alone_and_the_rest_commit(hub: Hub, transport: ListTransport) -> None:
    transport.put(*numbered(5))

    def handler(conn: Connection, item: Item) -> None:
        work(conn, item)  # a collected and an immediate write, both to be undone for the bad one
        if item.payload["n"] == 2:
            raise ValueError("item 2 is bad")

    counted = commits(hub)
    assert round_of(transport, handler) == [DONE, DONE, FAILED, DONE, DONE]
    assert len(counted) == 1, "the bad item must not cost the others their shared transaction"
    assert handled(hub) == ["M0", "M1", "M3", "M4"], "the bad item's collected row survived, or a good one's was lost"
    with db.read(hub.engine) as conn:
        at_once = sorted(conn.execute(sa.select(message_events.c.message_id).where(message_events.c.stage == "at-once")).scalars())
    assert at_once == ["M0-at-once", "M1-at-once", "M3-at-once", "M4-at-once"], f"the bad item's immediate write survived: {at_once}"
    (again,) = transport.waiting
    assert (again.payload["n"], again.attempts) == (2, 2), "the bad item comes back with its failure counted"
    assert transport.last_errors[again.id] == "ValueError: item 2 is bad"


def test_a_batch_that_fails_as_a_whole_is_processed_one_item_per_transaction(hub: Hub, transport: ListTransport) -> None:
    """A failure no item's savepoint holds (here the batch's read-ahead) must not fail the innocent."""
    transport.put(*numbered(5))

    def handler(conn: Connection, item: Item) -> None:
        work(conn, item)

    def prefetch(conn: Connection, items: list[Item]) -> None:
        if any(item.payload["n"] == 3 for item in items):
            raise ValueError("cannot read ahead for item 3")

    handler.prefetch = prefetch  # type: ignore[attr-defined]
    counted = commits(hub)
    assert round_of(transport, handler) == [DONE, DONE, DONE, FAILED, DONE]
    assert len(counted) == 4, f"the four good items are committed one per transaction, not in {len(counted)}"
    assert handled(hub) == ["M0", "M1", "M2", "M4"]
    assert [(i.payload["n"], i.attempts) for i in transport.waiting] == [(3, 2)]


def test_an_item_failing_on_every_attempt_is_buried_after_the_last(hub: Hub, transport: ListTransport) -> None:
    transport.put({"n": 0, "message_id": "M0"})
    attempts: list[int] = []
    buried: list[str] = []

    def handler(conn: Connection, item: Item) -> None:
        attempts.append(item.attempts)
        raise LookupError("no route")

    outcomes = [round_of(transport, handler, lambda conn, item, reason: buried.append(reason)) for _ in range(4)]
    assert outcomes == [[FAILED], [FAILED], [FAILED], [BURIED]]
    assert attempts == [1, 2, 3], "the handler runs max_attempts times, then no more"
    assert buried == ["gave up after 3 attempts; last error: LookupError: no route"], "the dead handler records why"
    with db.read(hub.engine) as conn:
        rows = conn.execute(sa.select(dead_letters.c.queue, dead_letters.c.message_id, dead_letters.c.attempts, dead_letters.c.reason)).all()
    assert [tuple(r) for r in rows] == [("q", "M0", 3, buried[0])], "a buried item has its dead letter"
    assert transport.waiting == [], "a buried item is acked"


def test_an_item_whose_burial_fails_comes_back_to_be_buried_without_a_further_attempt(hub: Hub) -> None:
    transport = ListTransport(hub.engine, max_attempts=1)
    transport.put({"n": 0, "message_id": "M0"})
    burials: list[str] = []

    def dead_handler(conn: Connection, item: Item, reason: str) -> None:
        burials.append(reason)
        if len(burials) == 1:
            raise RuntimeError("the status update failed")

    def failing(conn: Connection, item: Item) -> None:
        raise LookupError("no route")

    assert round_of(transport, failing, dead_handler) == [FAILED]
    assert round_of(transport, failing, dead_handler) == [UNBURIED]
    with db.read(hub.engine) as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(dead_letters)).scalar_one() == 0, "a failed burial left its dead letter"
    assert [i.attempts for i in transport.waiting] == [2], "a failed burial is no attempt of the item's"
    assert round_of(transport, failing, dead_handler) == [BURIED]
    with db.read(hub.engine) as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(dead_letters)).scalar_one() == 1


def test_an_outage_counts_as_nobodys_attempt_and_nothing_is_decided(hub: Hub, transport: ListTransport) -> None:
    """While the database is away every item comes back as it was, however often: none is failed,
    none buried, none of their work kept; once it answers, the batch is processed as if nothing happened."""
    transport.put(*numbered(3))
    away = True

    def handler(conn: Connection, item: Item) -> None:
        work(conn, item)
        if away and item.payload["n"] == 1:
            raise lost_connection()

    for _ in range(transport.max_attempts + 2):
        assert round_of(transport, handler) == [OUTAGE] * 3, "an outage decides nothing about any item of the batch"
    assert handled(hub) == [], "work done before the outage was kept"
    assert [(i.payload["n"], i.attempts) for i in transport.waiting] == [(0, 1), (1, 1), (2, 1)], "an outage was counted as an attempt"
    away = False
    assert round_of(transport, handler) == [DONE] * 3
    assert handled(hub) == ["M0", "M1", "M2"]


def test_the_consume_loop_comes_with_the_template(hub: Hub, transport: ListTransport) -> None:
    transport.commit_every = 4
    transport.put(*numbered(10))
    stop = threading.Event()
    consumer = threading.Thread(target=transport.consume, args=("q", work, lambda conn, item, reason: None, stop))
    consumer.start()
    try:
        wait_until(lambda: len(handled(hub)) == 10, 10, lambda: f"the consumer to handle all ten items ({len(handled(hub))} so far)")
    finally:
        stop.set()
        transport.notify()
        consumer.join(5)
    assert handled(hub) == sorted(f"M{n}" for n in range(10)) and transport.waiting == []
