"""Replay: an operator sends again what died -- a message the pipeline gave up on, or a delivery the
broker refused until the relay gave it up -- and nothing that arrived is sent twice."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from hub.store import db
from hub.store import message_store
from hub.findings import Refusal
from hub.runtime import Hub
from hub.store.tables import dead_letters, deliveries, message_events, outbox
from hub.transport.base import PARTNER
from tests.conftest import JOBCENTER, PROVIDER, agency_sample, send


def test_a_dead_delivery_of_a_processed_message_is_pushed_again(hub: Hub) -> None:
    message_id = send(hub, JOBCENTER, "agency-xml", agency_sample("zuweisung.anmeldung.1020"))
    with db.write(hub.engine) as conn:
        delivery_id = conn.execute(
            sa.select(deliveries.c.id).where(deliveries.c.message_id == message_id, deliveries.c.recipient == PROVIDER)
        ).scalar_one()
        # what the relay leaves after the broker refused the push until it gave up (hub/transport/relay.py)
        conn.execute(deliveries.update().where(deliveries.c.id == delivery_id).values(status="dead"))
        payload = {"delivery_id": delivery_id, "message_id": message_id}
        conn.execute(dead_letters.insert().values(queue=PARTNER, payload=payload, attempts=10, reason="refused", message_id=message_id, at=db.utcnow()))
        answer = message_store.replay(conn, message_id, "operator-1", hub.transport)
    assert answer["deliveries"] == [delivery_id]
    with db.read(hub.engine) as conn:
        status = conn.execute(sa.select(deliveries.c.status).where(deliveries.c.id == delivery_id)).scalar_one()
        queued = [r.payload for r in conn.execute(sa.select(outbox.c.payload).where(outbox.c.queue == PARTNER))]
        left = conn.execute(sa.select(sa.func.count()).select_from(dead_letters).where(dead_letters.c.replayed_at.is_(None))).scalar_one()
        events = [e.event for e in conn.execute(sa.select(message_events.c.event).where(message_events.c.message_id == message_id))]
    assert status == "pending" and queued == [payload], "the delivery must be pending and queued for its push again"
    assert left == 0 and "replayed" in events, "the dead letter is done with, and the history says who replayed it"
    with db.write(hub.engine) as conn, pytest.raises(Refusal, match="nothing to replay"):
        message_store.replay(conn, message_id, "operator-1", hub.transport)


def test_a_dead_quittung_of_a_rejected_message_is_pushed_again_not_the_message_rerun(hub: Hub) -> None:
    """The relay can give up any push, a rueckweisung too: replay sends that delivery again, and does
    not run the rejected message through the pipeline (which would mark the dead letter done and
    leave the delivery dead)."""
    bad = agency_sample("zuweisung.anmeldung.1020", customer_number="123D456789")
    bad["header"]["reader"] = None  # an assignment for nobody: the pipeline rejects it
    message_id = send(hub, JOBCENTER, "agency-xml", bad)
    with db.write(hub.engine) as conn:
        delivery_id = conn.execute(sa.select(deliveries.c.id).where(deliveries.c.message_id == message_id, deliveries.c.recipient == JOBCENTER)).scalar_one()
        conn.execute(deliveries.update().where(deliveries.c.id == delivery_id).values(status="dead"))
        payload = {"delivery_id": delivery_id, "message_id": message_id}
        conn.execute(dead_letters.insert().values(queue=PARTNER, payload=payload, attempts=10, reason="refused", message_id=message_id, at=db.utcnow()))
        answer = message_store.replay(conn, message_id, "operator-1", hub.transport)
    with db.read(hub.engine) as conn:
        status = conn.execute(sa.select(deliveries.c.status).where(deliveries.c.id == delivery_id)).scalar_one()
    assert answer["deliveries"] == [delivery_id] and status == "pending", "the dead rueckweisung must be pushed again"
