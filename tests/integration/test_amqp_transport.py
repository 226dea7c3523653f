"""The AMQP transport on the real RabbitMQ (own vhost) and PostgreSQL (own database)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pika
import pika.exceptions
import pytest
import sqlalchemy as sa

from hub.store import db
from hub.store.tables import dead_letters, deliveries, outbox
from hub.transport.amqp import AmqpTransport
from hub.transport.relay import OutboxRelay
from tests.conftest import JOBCENTER, OTHER_PROVIDER, PROVIDER, ROOT, LiveHub, agency_sample, encode, hub_for, issue_tokens, outbox_rows, post, wait_until
from tests.integration.conftest import contracts_with
from tests.integration.services import RABBITMQ_API

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]


def queue_info(amqp_url: str, queue: str) -> dict:
    vhost = amqp_url.rsplit("/", 1)[1]
    r = httpx.get(f"{RABBITMQ_API}/api/queues/{vhost}/{queue}", auth=("guest", "guest"), timeout=10)
    r.raise_for_status()
    return r.json()


def message_count(amqp_url: str, queue: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        return connection.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        connection.close()


def drain(amqp_url: str, queue: str, expect: int, timeout: float = 30.0, credentials: tuple[str, str] | None = None) -> list[tuple]:
    params = pika.URLParameters(amqp_url)
    if credentials:
        params.credentials = pika.PlainCredentials(*credentials)
    connection = pika.BlockingConnection(params)
    got: list[tuple] = []
    try:
        ch = connection.channel()
        deadline = time.time() + timeout
        while len(got) < expect and time.time() < deadline:
            try:
                method, props, body = ch.basic_get(queue, auto_ack=False)
            except pika.exceptions.ChannelClosedByBroker as exc:
                if exc.reply_code != 404:  # the queue is declared by a worker that may still be starting
                    raise
                connection.sleep(0.1)
                ch = connection.channel()
                continue
            if method is None:
                connection.sleep(0.05)
                continue
            got.append((props, body))
            ch.basic_ack(method.delivery_tag)
    finally:
        connection.close()
    return got


def test_topology_is_declared_with_quorum_work_queues_retry_and_dead_letter_queues(amqp_pg_env: dict[str, str]) -> None:
    hub = hub_for(amqp_pg_env)
    assert isinstance(hub.transport, AmqpTransport)
    hub.transport.declare_all([PROVIDER])
    url = amqp_pg_env["HUB_BROKER_URL"]
    for name in ("hub.pipeline", "hub.dead.pipeline", f"hub.partner.{PROVIDER}"):
        info = queue_info(url, name)
        assert info["durable"] and info["arguments"].get("x-queue-type") == "quorum", (name, info["arguments"])
    assert queue_info(url, "hub.pipeline")["arguments"]["x-dead-letter-exchange"] == "hub.dead"
    retry = queue_info(url, "hub.retry.pipeline.1000ms")
    assert retry["arguments"]["x-message-ttl"] == 1000 and retry["arguments"]["x-dead-letter-exchange"] == "hub.work"


def test_several_relays_share_the_outbox_and_publish_each_row_once(amqp_pg_env: dict[str, str]) -> None:
    """FOR UPDATE SKIP LOCKED: three relays, 3,000 committed rows, each published exactly once, outbox empty."""
    hub = hub_for(amqp_pg_env)
    transport = hub.transport
    transport.declare_all()
    n = 3000
    with db.write(hub.engine) as conn:
        for i in range(n):
            transport.publish(conn, "pipeline", {"n": i})
    stop = threading.Event()
    relays = [threading.Thread(target=OutboxRelay(transport, batch=100).run, args=(stop,)) for _ in range(3)]
    for t in relays:
        t.start()
    try:
        got = drain(amqp_pg_env["HUB_BROKER_URL"], "hub.pipeline", n)
    finally:
        stop.set()
        transport.notify()
        for t in relays:
            t.join(10)
    counts = Counter(int(props.message_id) for props, _ in got)
    assert len(counts) == n and set(counts.values()) == {1}, f"{len(counts)} distinct of {n}, duplicates: {[k for k, v in counts.items() if v > 1][:5]}"
    assert all(props.delivery_mode == 2 for props, _ in got), "messages must be persistent"
    with db.read(hub.engine) as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(outbox)).scalar_one() == 0, "confirmed rows must leave the outbox"


def test_failing_handler_is_retried_with_delay_then_dead_lettered(amqp_pg_env: dict[str, str]) -> None:
    hub = hub_for(amqp_pg_env, max_attempts=2)
    transport = hub.transport
    calls: Counter = Counter()
    dead: list = []

    def handler(conn, item) -> None:  # type: ignore[no-untyped-def]
        calls[item.payload["n"]] += 1
        if item.payload["n"] == 0:
            raise RuntimeError("poison")

    stop = threading.Event()
    threads = [
        threading.Thread(target=OutboxRelay(transport).run, args=(stop,)),
        threading.Thread(target=transport.consume, args=("pipeline", handler, lambda conn, item, reason: dead.append((item.payload, reason)), stop)),
    ]
    for t in threads:
        t.start()
    try:
        # an unreadable message (not JSON) is parked at once instead of looping
        transport.declare_all()
        connection = pika.BlockingConnection(pika.URLParameters(amqp_pg_env["HUB_BROKER_URL"]))
        connection.channel().basic_publish("hub.work", "pipeline", b"\x00not json", pika.BasicProperties(delivery_mode=2))
        connection.close()
        with db.write(hub.engine) as conn:
            for i in range(20):
                transport.publish(conn, "pipeline", {"n": i, "message_id": None})
        transport.notify()
        wait_until(
            lambda: dead and all(calls[i] for i in range(1, 20)) and outbox_rows(hub) == 0,
            30,
            lambda: f"the poison message to die and the good ones to be handled (dead: {dead}, handled: {dict(calls)}, outbox: {outbox_rows(hub)})",
            interval=0.1,
        )
    finally:
        stop.set()
        transport.notify()
        for t in threads:
            t.join(10)
    # stopped gracefully, the consumer settled what it had taken and returned the rest: an empty queue
    # proves that nothing was left to be handled again, so "handled once" can be counted now
    assert message_count(amqp_pg_env["HUB_BROKER_URL"], "hub.pipeline") == 0, "messages were left in the pipeline queue, to be handled again"
    assert [d[0]["n"] for d in dead] == [0], f"only the poison message dies: {dead}"
    assert calls["garbage"] == 0
    assert calls[0] == 2, f"the poison message must be tried max_attempts=2 times, was {calls[0]}"
    assert all(calls[i] == 1 for i in range(1, 20)), f"good messages are handled once: {calls}"
    with db.read(hub.engine) as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(dead_letters)).scalar_one() == 1
        reason = conn.execute(sa.select(dead_letters.c.reason)).scalar_one()
    assert reason == dead[0][1] == "gave up after 2 attempts; last error: RuntimeError: poison", f"the dead letter says why: {reason}"
    assert message_count(amqp_pg_env["HUB_BROKER_URL"], "hub.dead.pipeline") == 2, "the dead and the unreadable message are parked"


def test_partner_with_amqp_delivery_gets_its_deliveries_in_its_own_queue_and_only_there(amqp_pg_env: dict[str, str], tmp_path: Path) -> None:
    env = {**amqp_pg_env, "HUB_CONTRACTS_DIR": str(contracts_with(tmp_path, **{PROVIDER: "amqp"}))}
    hub = hub_for(env)
    live = LiveHub(env, hub, issue_tokens(hub))
    live.start()
    try:
        with live.client(JOBCENTER) as jc, live.client(PROVIDER) as pr:
            r = post(jc, encode(hub, "agency-xml", agency_sample("zuweisung.anmeldung.1020")), "agency-xml")
            assert r.status_code == 202, r.text
            message_id = r.json()["id"]
            (msg,) = drain(env["HUB_BROKER_URL"], f"hub.partner.{PROVIDER}", 1)
            props, body = msg
            assert props.content_type == "application/json" and props.type == "zuweisung.anmeldung.1020"
            assert props.delivery_mode == 2 and props.headers["hub-message-id"] == message_id
            assert b'"caseId"' in body and b"123D456789" not in body, "the provider gets its own format, without agency ids"
            # the relay marks the delivery published once the broker confirmed it -- which may be just
            # after the partner could already read it from its queue
            def delivery() -> sa.Row:
                with db.read(hub.engine) as conn:
                    return conn.execute(sa.select(deliveries).where(deliveries.c.id == props.message_id)).one()

            wait_until(lambda: delivery().status == "published", 10, lambda: f"the delivery confirmed by the broker to be marked published (is {delivery().status})")
            assert delivery().recipient == PROVIDER
            assert pr.get("/v1/inbox").json()["count"] == 0, "a pushed delivery must not also wait in the HTTP inbox"
            events = [f"{e['stage']}.{e['event']}" for e in jc.get(f"/v1/messages/{message_id}").json()["history"]]
            assert "delivery.published" in events, events
    finally:
        live.stop()
        hub.close()


def _setup(env: dict[str, str], partner: str, user: str, password: str) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-m", "hub.cli", "partners", "amqp-setup", partner, "--user", user, "--password", password],
        env={**os.environ, **env}, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )


def test_partner_user_reads_only_its_own_queue(amqp_pg_env: dict[str, str]) -> None:
    import uuid

    from tests.integration.services import _credentials  # noqa: F401 - same broker credentials

    users = {p: f"hub_test_{uuid.uuid4().hex[:8]}" for p in (PROVIDER, OTHER_PROVIDER)}
    try:
        for partner, user in users.items():
            done = _setup(amqp_pg_env, partner, user, "secret-" + user)
            assert done.returncode == 0, done.stderr
            assert f"hub.partner.{partner}" in done.stdout
        hub = hub_for(amqp_pg_env)
        url = amqp_pg_env["HUB_BROKER_URL"]
        # put one message in each partner queue (as the outbox relay would)
        connection = pika.BlockingConnection(pika.URLParameters(url))
        ch = connection.channel()
        ch.confirm_delivery()
        for partner in users:
            ch.basic_publish("hub.partners", partner, f"for {partner}".encode(), pika.BasicProperties(delivery_mode=2), mandatory=True)
        connection.close()

        own = drain(url, f"hub.partner.{PROVIDER}", 1, timeout=5, credentials=(users[PROVIDER], "secret-" + users[PROVIDER]))
        assert [body for _, body in own] == [f"for {PROVIDER}".encode()], "a partner reads its own queue"

        params = pika.URLParameters(url)
        params.credentials = pika.PlainCredentials(users[PROVIDER], "secret-" + users[PROVIDER])
        connection = pika.BlockingConnection(params)
        try:
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
                connection.channel().basic_get(f"hub.partner.{OTHER_PROVIDER}", auto_ack=False)
            assert refused.value.reply_code == 403, "another partner's queue must be refused"
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
                connection.channel().basic_consume(f"hub.partner.{OTHER_PROVIDER}", lambda *a: None)
            assert refused.value.reply_code == 403
            for queue in ("hub.pipeline", "hub.dead.pipeline"):
                with pytest.raises(pika.exceptions.ChannelClosedByBroker):
                    connection.channel().basic_get(queue, auto_ack=False)
            ch = connection.channel()
            ch.confirm_delivery()
            with pytest.raises((pika.exceptions.ChannelClosedByBroker, pika.exceptions.UnroutableError, pika.exceptions.NackError)):
                ch.basic_publish("hub.work", "pipeline", b'{"message_id": "forged"}', pika.BasicProperties(delivery_mode=2))
            with pytest.raises(pika.exceptions.ChannelClosedByBroker):
                connection.channel().queue_declare("sneaky", durable=True)
        finally:
            if connection.is_open:
                connection.close()
        assert message_count(url, f"hub.partner.{OTHER_PROVIDER}") == 1, "the other partner's message is untouched"
        assert message_count(url, "hub.pipeline") == 0, "a partner cannot inject into the pipeline"
        hub.close()
    finally:
        for user in users.values():
            httpx.delete(f"{RABBITMQ_API}/api/users/{user}", auth=("guest", "guest"), timeout=10)
