"""A test message stays a test message on its way back: the quittung and the rueckweisung the hub
sends in answer to a message with `"test": true` carry `"test": true` too, in every format."""

from __future__ import annotations

import json

import sqlalchemy as sa

from hub.store import db
from hub.runtime import Hub
from hub.store.tables import deliveries, messages
from tests.conftest import JOBCENTER, PROVIDER, agency_sample, provider_sample, send


def answers(hub: Hub, message_id: str) -> list[sa.Row]:
    with db.read(hub.engine) as conn:
        return conn.execute(
            sa.select(deliveries.c.message_type, deliveries.c.body).where(deliveries.c.message_id == message_id, deliveries.c.recipient.in_([JOBCENTER, PROVIDER]))
        ).all()


def test_the_quittung_of_a_test_message_is_a_test_message_and_a_real_ones_is_not(hub: Hub) -> None:
    for flag in (True, False):
        data = agency_sample("zuweisung.anmeldung.1020")
        data["header"]["test"] = flag
        message_id = send(hub, JOBCENTER, "agency-xml", data)
        with db.read(hub.engine) as conn:
            assert conn.execute(sa.select(messages.c.test).where(messages.c.id == message_id)).scalar_one() is flag, "the store keeps the flag"
        (quittung,) = [a for a in answers(hub, message_id) if a.message_type == "administration.quittung.0020"]
        assert f'test="{"true" if flag else "false"}"'.encode() in quittung.body, quittung.body[:300]


def test_the_rueckweisung_of_a_test_message_is_a_test_message(hub: Hub) -> None:
    data = provider_sample("teilnahme.mitwirkung.2040", "F-UNKNOWN1234")  # a case the provider does not have
    assert data["header"]["test"] is True
    message_id = send(hub, PROVIDER, "provider-json", data)
    (answer,) = answers(hub, message_id)
    assert answer.message_type == "administration.rueckweisung.0010"
    assert json.loads(answer.body)["header"]["test"] is True
