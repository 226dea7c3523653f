"""Queue depths on RabbitMQ: the outbox rows the relay has not yet published, then the hub's own
queues as the management API counts them; a broker that does not answer is one entry saying so."""

from __future__ import annotations

import pytest

from hub.runtime import Hub
from hub.store import db
from hub.transport.amqp import AmqpTransport

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]


def test_depths_name_the_outbox_and_every_queue_of_the_hub(hub: Hub) -> None:
    transport = hub.transport
    assert isinstance(transport, AmqpTransport), "the integration hub runs on RabbitMQ"
    transport.declare_all()
    with db.write(hub.engine) as conn:
        transport.publish(conn, "pipeline", {"message_id": "M1"})
    depths = transport.queue_depths()
    outbox = [d for d in depths if d.where == "outbox"]
    broker = {d.queue: d for d in depths if d.where == "broker"}
    assert [(d.queue, d.depth) for d in outbox] == [("pipeline", 1)], f"the row the relay has not published: {outbox}"
    assert transport.topology.queue("pipeline") in broker, f"the work queue is listed: {sorted(broker)}"
    assert all(isinstance(d.depth, int) and d.queue.startswith(transport.topology.prefix) for d in broker.values()), "only the hub's queues, counted"


def test_a_management_api_that_does_not_answer_is_one_entry_saying_so(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(AmqpTransport, "management_url", lambda self: "http://127.0.0.1:9")
    broker = [d for d in hub.transport.queue_depths() if d.where == "broker"]
    assert len(broker) == 1 and broker[0].depth is None and "did not answer" in (broker[0].note or ""), f"one entry with the reason: {broker}"
