"""The AMQP transport when things go wrong: poison items, failing burials, restarts, refusing brokers.

Each test states one promise of the production path (RabbitMQ + PostgreSQL, both real, own vhost and
database) and breaks it on purpose: a bad item must cost only itself, a message is dead-lettered only
with a record an operator can see, a restart is not a failure, and nothing waits forever -- neither
the relay behind one broken partner queue nor an operator's command or a health probe behind a
broker that does not answer.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pika
import pika.exceptions
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub import pipeline
from hub.store import db
from hub.store.history import record
from hub.store.dead_letters import DeadLetterFilter, page as dead_page
from hub.runtime import Hub
from hub.store.tables import dead_letters, deliveries, message_events, outbox
from hub.transport.amqp import AmqpTransport
from hub.transport.base import PARTNER, Item
from hub.transport.relay import ConfirmWindow, OutboxRelay
from hub.workers import handle_pipeline
from tests.conftest import CONTRACTS, PROVIDER, ROOT, free_port, hub_for, wait_until
from tests.integration.services import RABBITMQ_API

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]

GUEST = ("guest", "guest")


# -- helpers ------------------------------------------------------------------------------------------
def vhost_of(amqp_url: str) -> str:
    return amqp_url.rsplit("/", 1)[1]


def publish_raw(amqp_url: str, bodies: list[bytes], headers: dict[str, Any] | None = None) -> None:
    """Put messages on the pipeline queue as another publisher would: straight to the work exchange."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        ch = connection.channel()
        ch.confirm_delivery()
        for n, body in enumerate(bodies):
            ch.basic_publish("hub.work", "pipeline", body, pika.BasicProperties(delivery_mode=2, message_id=str(n), headers=headers), mandatory=True)
    finally:
        connection.close()


def numbered(count: int) -> list[bytes]:
    return [json.dumps({"n": n, "message_id": f"M{n:025d}"}).encode() for n in range(count)]


def return_unacked(amqp_url: str, expect: int, times: int) -> None:
    """Take every message of the pipeline queue without acking, then close: what a worker's graceful
    stop (SIGTERM, deploy) or a dropped connection does to the messages it prefetched."""
    for _ in range(times):
        connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        ch = connection.channel()
        got, deadline = 0, time.time() + 10
        while got < expect and time.time() < deadline:
            method, _props, _body = ch.basic_get("hub.pipeline", auto_ack=False)
            if method is None:
                connection.sleep(0.05)
                continue
            got += 1
        connection.close()
        assert got == expect, f"the test needs all {expect} messages in hand, got {got}"


def consume_until(transport: AmqpTransport, handler: Callable, dead_handler: Callable, done: Callable[[], bool], timeout: float = 15.0) -> None:
    """Run one pipeline consumer until `done()` or `timeout`, then stop it (gracefully).

    A graceful stop lets the consumer finish and settle (ack) the batch in hand; what it had not taken
    yet goes back to the queue. So once `done()`, the queue must be empty after the stop: a message
    left there would be handled again -- the proof that nothing more was coming, instead of waiting
    a while to see. A timeout leaves the verdict to the caller's assertions.
    """
    stop = threading.Event()
    thread = threading.Thread(target=transport.consume, args=("pipeline", handler, dead_handler, stop), daemon=True)
    thread.start()
    try:
        finished = wait_until(done, timeout, "the consumer to finish")
    except AssertionError:
        finished = False
    finally:
        stop.set()
        thread.join(15)
    queue = transport.topology.queue("pipeline")
    if finished:
        left = queue_depth(transport.url, queue)
        assert left == 0, f"{left} message(s) still in {queue} after the consumer finished: they would be handled again"


def queue_depth(amqp_url: str, queue: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        return connection.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        connection.close()


def get_one(amqp_url: str, queue: str) -> tuple[Any, bytes] | None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        method, props, body = connection.channel().basic_get(queue, auto_ack=True)
        return None if method is None else (props, body)
    finally:
        connection.close()


def events(hub: Hub, stage: str, event: str) -> Counter:
    """How many committed history events of (stage, event) each message has."""
    with db.read(hub.engine) as conn:
        rows = conn.execute(sa.select(message_events.c.message_id).where(message_events.c.stage == stage, message_events.c.event == event))
        return Counter(r.message_id for r in rows)


def dead_letter_rows(hub: Hub) -> list[Any]:
    with db.read(hub.engine) as conn:
        return conn.execute(sa.select(dead_letters)).all()


@pytest.fixture
def amqp_hub(amqp_pg_env: dict[str, str]) -> Iterator[Hub]:
    """A hub on RabbitMQ + PostgreSQL that gives a message up after its first failed attempt."""
    hub = hub_for(amqp_pg_env, max_attempts=1)
    assert isinstance(hub.transport, AmqpTransport)
    hub.transport.declare_all()
    yield hub
    hub.close()


# -- one bad item costs only itself -------------------------------------------------------------------
def test_a_payload_that_is_not_a_json_object_is_parked_alone_and_the_batch_beside_it_is_processed(amqp_hub: Hub, amqp_pg_env: dict[str, str]) -> None:
    """`[]` is valid JSON but no hub message: the real pipeline's batch hook cannot read it. It must be
    refused on its own (dead-lettered with a reason), not fail the ten good messages it arrived with."""
    url = amqp_pg_env["HUB_BROKER_URL"]
    good = numbered(10)
    publish_raw(url, good[:5] + [b"[]"] + good[5:])
    handled: Counter = Counter()
    buried: list[Any] = []

    def handler(conn: Connection, item: Item) -> None:
        handled[item.payload["n"]] += 1
        handle_pipeline(amqp_hub, conn, item)

    handler.prefetch = lambda conn, items: pipeline.prefetch(amqp_hub, conn, items)  # type: ignore[attr-defined]
    consume_until(amqp_hub.transport, handler, lambda conn, item, reason: buried.append(item.payload), lambda: len(handled) == 10 or bool(buried))

    assert not buried, f"good messages were dead-lettered because of the bad one beside them: {buried}"
    assert handled == Counter(range(10)), f"every good message is handled exactly once: {dict(handled)}"
    parked = get_one(url, "hub.dead.pipeline")
    assert parked is not None and parked[1] == b"[]", "the bad message is parked in the dead-letter queue"
    reason = (parked[0].headers or {}).get("x-hub-dead-reason", "")
    assert "object" in reason, f"the parked message says why it was refused: {reason!r}"


def _cannot_read_item_3(conn: Connection, items: list[Item]) -> None:
    """A batch hook (`handler.prefetch`) that cannot read ahead for item 3: the batch's read fails."""
    if any(item.payload["n"] == 3 for item in items):
        raise ValueError("cannot read ahead for item 3")


@pytest.mark.parametrize("where", ["prefetch", "flush"])
def test_a_batch_that_fails_as_a_whole_is_processed_one_item_per_transaction(amqp_hub: Hub, amqp_pg_env: dict[str, str], where: str) -> None:
    """A failure that belongs to no single item's savepoint (the batch's read-ahead, or writing the
    collected rows before the commit) must not redeliver and finally bury the innocent items: they
    are processed again one per transaction, on the same channel, and only the bad one fails."""
    publish_raw(amqp_pg_env["HUB_BROKER_URL"], numbered(10))
    buried: list[int] = []

    def handler(conn: Connection, item: Item) -> None:
        # in "flush", item 3 collects a history row without a message id: the one COPY of all rows fails
        bad_row = where == "flush" and item.payload["n"] == 3
        record(conn, None if bad_row else item.payload["message_id"], "test", "done")  # type: ignore[arg-type]

    if where == "prefetch":
        handler.prefetch = _cannot_read_item_3  # type: ignore[attr-defined]
    done = lambda: len(events(amqp_hub, "test", "done")) >= 9 and bool(buried)  # noqa: E731
    consume_until(amqp_hub.transport, handler, lambda conn, item, reason: buried.append(item.payload["n"]), done)

    assert buried == [3], f"only the bad item may be dead-lettered (after its own failed attempt), not {buried}"
    committed = events(amqp_hub, "test", "done")
    assert committed == Counter(f"M{n:025d}" for n in range(10) if n != 3), f"each good item's work is committed exactly once: {dict(committed)}"


@pytest.mark.parametrize("bad, writes", [(5, "collected"), (9, "at once")], ids=["middle-collected-writes", "last-at-once-writes"])
def test_on_postgresql_a_failing_select_in_one_item_does_not_poison_the_items_after_it(amqp_hub: Hub, amqp_pg_env: dict[str, str], bad: int, writes: str) -> None:
    """PostgreSQL aborts the transaction at a failed statement, and the lazy savepoint is only issued
    before a statement that writes: a failing SELECT in one item must cost that item alone -- the
    others are not failed with InFailedSqlTransaction, and their writes are not silently lost with
    a COMMIT that PostgreSQL turns into a ROLLBACK."""
    publish_raw(amqp_pg_env["HUB_BROKER_URL"], numbered(10))
    errors: Counter = Counter()
    buried: list[int] = []

    def handler(conn: Connection, item: Item) -> None:
        n = item.payload["n"]
        try:
            conn.exec_driver_sql("SELECT 1/0" if n == bad else "SELECT 1")
        except Exception as exc:
            errors[(n, type(getattr(exc, "orig", exc)).__name__)] += 1
            raise
        if writes == "collected":
            record(conn, item.payload["message_id"], "test", "done")
        else:
            conn.execute(message_events.insert().values(message_id=item.payload["message_id"], at=db.utcnow(), stage="test", event="done"))

    done = lambda: len(events(amqp_hub, "test", "done")) >= 9 and bool(buried)  # noqa: E731
    consume_until(amqp_hub.transport, handler, lambda conn, item, reason: buried.append(item.payload["n"]), done)

    assert {n for n, _ in errors} == {bad}, f"only item {bad} may fail, but these failed: {dict(errors)}"
    assert buried == [bad], f"only item {bad} may be dead-lettered, not {buried}"
    committed = events(amqp_hub, "test", "done")
    assert committed == Counter(f"M{n:025d}" for n in range(10) if n != bad), f"every good item's write is committed exactly once: {dict(committed)}"


# -- a dead letter always has its record ----------------------------------------------------------------
def test_a_message_whose_burial_fails_is_not_parked_without_a_record_and_is_buried_on_its_next_delivery(amqp_hub: Hub, amqp_pg_env: dict[str, str]) -> None:
    """Parking a message in the broker's DLQ without its dead_letters row, status and history hides
    it from `hub messages dead`: a failed burial must leave the message to come back and be buried then."""
    url = amqp_pg_env["HUB_BROKER_URL"]
    publish_raw(url, numbered(1), headers={"x-hub-attempts": 1})  # its one allowed attempt already failed
    burials: list[str] = []

    def dead_handler(conn: Connection, item: Item, reason: str) -> None:
        burials.append(reason)
        if len(burials) == 1:
            raise RuntimeError("the status update failed")

    consume_until(amqp_hub.transport, lambda conn, item: None, dead_handler, lambda: len(dead_letter_rows(amqp_hub)) == 1, timeout=10)

    rows = dead_letter_rows(amqp_hub)
    assert len(burials) == 2, f"the failed burial is tried again on the next delivery: {burials}"
    assert [r.message_id for r in rows] == [f"M{0:025d}"], f"the message ends with exactly one dead_letters row: {rows}"
    assert queue_depth(url, "hub.dead.pipeline") == 1, "and exactly once in the broker's dead-letter queue"


# -- a restart is no failure; a message that never finishes still ends --------------------------------------
def test_messages_returned_by_closed_connections_do_not_count_as_failed_attempts(amqp_hub: Hub, amqp_pg_env: dict[str, str]) -> None:
    """A graceful stop (SIGTERM, deploy) or a dropped connection returns the prefetched messages to the
    queue; the quorum queue counts that in x-delivery-count. Their handlers never failed, so with
    HUB_MAX_ATTEMPTS=1 they must still be processed, not dead-lettered."""
    url = amqp_pg_env["HUB_BROKER_URL"]
    publish_raw(url, numbered(20))
    return_unacked(url, expect=20, times=2)
    handled: Counter = Counter()
    buried: list[int] = []

    def handler(conn: Connection, item: Item) -> None:
        handled[item.payload["n"]] += 1

    consume_until(amqp_hub.transport, handler, lambda conn, item, reason: buried.append(item.payload["n"]), lambda: len(handled) == 20 or bool(buried))

    assert not buried, f"messages that never failed were dead-lettered after two restarts: {sorted(buried)}"
    assert handled == Counter(range(20)), f"every message is handled once: {dict(handled)}"


def test_a_message_that_keeps_coming_back_unsettled_is_buried_after_the_redelivery_limit(amqp_hub: Hub, amqp_pg_env: dict[str, str]) -> None:
    """Crash detection: a message that kills its consumer every time never reaches the handler's
    failure count, so the quorum queue's delivery count has its own, higher limit."""
    url = amqp_pg_env["HUB_BROKER_URL"]
    transport = amqp_hub.transport
    assert isinstance(transport, AmqpTransport)
    transport.max_redeliveries = 2
    publish_raw(url, numbered(1))
    return_unacked(url, expect=1, times=3)
    handled: list[int] = []
    buried: list[str] = []

    consume_until(transport, lambda conn, item: handled.append(1), lambda conn, item, reason: buried.append(reason), lambda: bool(buried) or bool(handled), timeout=10)

    assert not handled, "a message past the redelivery limit is not handed to the handler once more"
    assert len(buried) == 1 and "deliver" in buried[0], f"it is buried with a reason that names the redeliveries: {buried}"
    assert [r.message_id for r in dead_letter_rows(amqp_hub)] == [f"M{0:025d}"], "with a dead_letters row for the operator"


# -- the relay: one broken partner queue holds back nothing else, and refusals end ---------------------------
def add_delivery(hub: Hub, conn: Connection, n: int, recipient: str) -> str:
    """A pending delivery for `recipient` and its outbox row, as the pipeline writes them."""
    delivery_id, message_id = f"D{n:025d}", f"M{n:025d}"
    conn.execute(
        deliveries.insert().values(
            id=delivery_id, message_id=message_id, recipient=recipient, message_type="t", version="1", format="json",
            content_type="application/json", purpose="p", status="pending", body=b"{}", created_at=db.utcnow(),
        )
    )
    hub.transport.publish(conn, PARTNER, {"delivery_id": delivery_id, "message_id": message_id})
    return delivery_id


def delivery_status(hub: Hub, delivery_id: str) -> str:
    with db.read(hub.engine) as conn:
        return conn.execute(sa.select(deliveries.c.status).where(deliveries.c.id == delivery_id)).scalar_one()


def outbox_rows(hub: Hub) -> list[Any]:
    with db.read(hub.engine) as conn:
        return conn.execute(sa.select(outbox.c.id, outbox.c.queue, outbox.c.attempts).order_by(outbox.c.id)).all()


def make_due(hub: Hub) -> None:
    """Skip the backoff of rows kept in the outbox (the test does not wait for it)."""
    with db.write(hub.engine) as conn:
        conn.execute(outbox.update().values(available_at=0))


def declare_classic_queue(amqp_url: str, name: str) -> None:
    """A queue someone declared by hand, without the quorum argument the hub declares it with."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    connection.channel().queue_declare(name, durable=True)
    connection.close()


@pytest.fixture
def window(amqp_hub: Hub) -> Iterator[ConfirmWindow]:
    """The relay's confirm window on a real connection, as `OutboxRelay.run` sets it up."""
    transport = amqp_hub.transport
    connection = transport.connect(purpose="test relay")
    channel = connection.channel()
    transport.topology.declare(channel)
    yield ConfirmWindow(connection, channel)
    if connection.is_open:
        connection.close()


def test_relay_declares_a_partner_queue_again_after_it_was_deleted(amqp_hub: Hub, amqp_pg_env: dict[str, str], window: ConfirmWindow) -> None:
    """The relay remembers which partner queues it declared; a push that comes back unroutable (the
    queue was deleted) must make it forget that, or the push is refused forever."""
    url = amqp_pg_env["HUB_BROKER_URL"]
    relay = OutboxRelay(amqp_hub.transport, batch=100)
    with db.write(amqp_hub.engine) as conn:
        first = add_delivery(amqp_hub, conn, 1, PROVIDER)
    relay.relay_once(window)
    assert delivery_status(amqp_hub, first) == "published"
    httpx.delete(f"{RABBITMQ_API}/api/queues/{vhost_of(url)}/hub.partner.{PROVIDER}", auth=GUEST, timeout=10).raise_for_status()

    with db.write(amqp_hub.engine) as conn:
        second = add_delivery(amqp_hub, conn, 2, PROVIDER)
    relay.relay_once(window)  # returned unroutable: kept for later
    make_due(amqp_hub)
    relay.relay_once(window)

    assert delivery_status(amqp_hub, second) == "published", "the deleted partner queue is declared again and the push goes through"
    assert queue_depth(url, f"hub.partner.{PROVIDER}") == 1 and not outbox_rows(amqp_hub)


def test_a_partner_queue_with_conflicting_arguments_holds_back_only_its_own_deliveries(amqp_hub: Hub, amqp_pg_env: dict[str, str], window: ConfirmWindow) -> None:
    """queue_declare with other arguments closes the channel it runs on: done on the relay's publishing
    channel, it stalled every outbox row behind that partner (the pipeline's included), forever."""
    url = amqp_pg_env["HUB_BROKER_URL"]
    declare_classic_queue(url, "hub.partner.gamma")
    relay = OutboxRelay(amqp_hub.transport, batch=100)
    with db.write(amqp_hub.engine) as conn:
        stuck = add_delivery(amqp_hub, conn, 1, "gamma")
        amqp_hub.transport.publish(conn, "pipeline", {"message_id": f"M{2:025d}"})
        fine = add_delivery(amqp_hub, conn, 3, PROVIDER)

    try:
        relay.relay_once(window)
    except pika.exceptions.AMQPError as exc:
        pytest.fail(f"one partner's conflicting queue stopped the relay: {exc!r}")

    assert window.channel.is_open, "the relay's publishing channel survives"
    assert queue_depth(url, "hub.pipeline") == 1, "the pipeline row behind the broken partner is published"
    assert delivery_status(amqp_hub, fine) == "published", "another partner's delivery is pushed"
    assert delivery_status(amqp_hub, stuck) == "pending"
    assert [(r.queue, r.attempts) for r in outbox_rows(amqp_hub)] == [(PARTNER, 1)], "the broken partner's row waits, with backoff"


def test_a_delivery_the_broker_keeps_refusing_becomes_a_dead_letter_an_operator_sees(amqp_hub: Hub, amqp_pg_env: dict[str, str], window: ConfirmWindow) -> None:
    """A partner queue that refuses every publish (here: full, overflow reject-publish) nacks the push
    each time. Retrying forever and only logging hides it: after the relay's refusal limit the delivery
    is dead, its history says why, and `hub messages dead` lists it."""
    url = amqp_pg_env["HUB_BROKER_URL"]
    policy = {"pattern": "^hub\\.partner\\.full$", "definition": {"max-length": 0, "overflow": "reject-publish"}, "apply-to": "queues"}
    httpx.put(f"{RABBITMQ_API}/api/policies/{vhost_of(url)}/full", json=policy, auth=GUEST, timeout=10).raise_for_status()
    transport = amqp_hub.transport
    channel = window.connection.channel()
    transport.topology.declare_partner(channel, "full")
    channel.confirm_delivery()
    channel.basic_publish("hub.partners", "full", b"filler", mandatory=True)  # the queue is full from now on
    relay = OutboxRelay(transport, batch=100)
    relay.max_refusals = 2
    with db.write(amqp_hub.engine) as conn:
        refused = add_delivery(amqp_hub, conn, 1, "full")

    relay.relay_once(window)
    assert delivery_status(amqp_hub, refused) == "pending", "one refusal is retried"
    make_due(amqp_hub)
    relay.relay_once(window)

    assert delivery_status(amqp_hub, refused) == "dead", "after max_refusals the delivery is dead"
    assert not outbox_rows(amqp_hub), "and no longer retried"
    with db.read(amqp_hub.engine) as conn:
        listed = dead_page(conn, DeadLetterFilter()).items
    assert [d.message_id for d in listed] == [f"M{1:025d}"], f"`hub messages dead` lists it: {listed}"
    assert events(amqp_hub, "delivery", "dead") == Counter({f"M{1:025d}": 1}), "the message's history records it"


def test_a_conflicting_partner_queue_does_not_stop_the_pipeline_consumer(amqp_hub: Hub, amqp_pg_env: dict[str, str]) -> None:
    """Consumers declare the queues of `delivery: amqp` partners when they connect; a partner queue the
    broker refuses to declare must not keep the pipeline from consuming."""
    url = amqp_pg_env["HUB_BROKER_URL"]
    declare_classic_queue(url, "hub.partner.gamma")
    transport = amqp_hub.transport
    assert isinstance(transport, AmqpTransport)
    transport.partner_ids = ["gamma"]
    publish_raw(url, numbered(3))
    handled: list[int] = []

    consume_until(transport, lambda conn, item: handled.append(item.payload["n"]), lambda conn, item, reason: None, lambda: len(handled) == 3, timeout=10)

    assert sorted(handled) == [0, 1, 2], f"the pipeline is consumed despite the broken partner queue: {handled}"


# -- nothing waits forever for a broker that does not answer ---------------------------------------------
def test_amqp_setup_gives_up_on_an_unreachable_broker_with_one_sentence(pg_url: str) -> None:
    """An operator's command must end: a few seconds of retries (logged), then one sentence saying what
    is wrong, and exit code 1 -- not a retry loop that never returns."""
    env = {
        **os.environ,
        "HUB_DATABASE_URL": pg_url,
        "HUB_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{free_port()}/",
        "HUB_CONTRACTS_DIR": str(CONTRACTS),
    }
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "hub.cli", "partners", "amqp-setup", PROVIDER], env=env, cwd=ROOT, capture_output=True, text=True, timeout=40
        )
    except subprocess.TimeoutExpired:
        pytest.fail("`hub partners amqp-setup` was still retrying after 40 s against a broker that is not there")
    took = time.monotonic() - started
    assert done.returncode == 1, f"exit code 1, not {done.returncode}: {done.stderr}"
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and "RabbitMQ" in last and "Traceback" not in done.stderr, f"it ends with one sentence, no traceback: {done.stderr!r}"
    assert "guest:guest" not in done.stderr, "the sentence does not show the broker's password"
    assert took < 25, f"it gave up after {took:.0f} s"


@contextmanager
def silent_broker() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word (a hung broker, a half-open firewall)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[Any] = []

    def accept() -> None:
        try:
            while True:
                held.append(listener.accept())
        except OSError:  # closed: the test is over
            pass

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        for conn, _ in held:
            conn.close()


def test_readiness_probe_answers_within_the_healthcheck_timeout_against_a_silent_broker() -> None:
    """The compose healthcheck gives /readyz 3 s: a broker that accepts TCP but never speaks AMQP must
    make `ready()` say False within that, not after pika's default 15 s stack timeout."""
    with silent_broker() as port:
        transport = AmqpTransport(None, f"amqp://guest:guest@127.0.0.1:{port}/", visibility_timeout=1, max_attempts=1, poll_interval=1)  # type: ignore[arg-type]
        started = time.monotonic()
        ok = transport.ready()
        took = time.monotonic() - started
    assert ok is False
    assert took < 3, f"ready() took {took:.1f} s against a silent broker; the healthcheck gives up after 3 s"
