"""Routing by case membership respects the measure: a provider learns about the measure it runs for a
client, never about another provider's measure for the same client."""

from __future__ import annotations

import sqlalchemy as sa

from hub.store import db
from hub.runtime import Hub
from hub.store.tables import deliveries
from tests.conftest import JOBCENTER, OTHER_PROVIDER, PROVIDER, agency_sample, send

MEASURE_A, MEASURE_B = "962-AGH-2026-0042", "962-BVB-2026-0007"


def assign(hub: Hub, provider: str, measure: str) -> None:
    data = agency_sample("zuweisung.anmeldung.1020", measure_number=measure)
    data["header"]["reader"] = {"id": provider}
    send(hub, JOBCENTER, "agency-xml", data)


def recipients(hub: Hub, message_id: str) -> set[str]:
    with db.read(hub.engine) as conn:
        rows = conn.execute(
            sa.select(deliveries.c.recipient).where(deliveries.c.message_id == message_id, deliveries.c.message_type == "teilnahme.aenderung.2020")
        )
        return {r.recipient for r in rows}


def test_a_change_reaches_only_the_provider_that_runs_the_measure(hub: Hub) -> None:
    assign(hub, PROVIDER, MEASURE_A)
    assign(hub, OTHER_PROVIDER, MEASURE_B)
    for measure, provider in ((MEASURE_A, PROVIDER), (MEASURE_B, OTHER_PROVIDER)):
        change = agency_sample("teilnahme.aenderung.2020", measure_number=measure)
        message_id = send(hub, JOBCENTER, "agency-xml", change)
        assert recipients(hub, message_id) == {provider}, f"the change to {measure} must reach {provider} only"
