"""Routing by case membership respects the measure: a provider learns about the measure it runs for a
client, never about another provider's measure for the same client."""

from __future__ import annotations

import json

import sqlalchemy as sa
from fastapi.testclient import TestClient

from hub.store import db
from hub.runtime import Hub
from hub.store.tables import deliveries
from hub.endpoints.file_drop import FileDrop
from tests.conftest import JOBCENTER, OTHER_PROVIDER, PROVIDER, agency_sample, encode, provider_sample, send
from tests.test_adapter_edges import client, post_as, stored  # noqa: F401 - client is a fixture
from tests.test_file_drop import PARTNER, count, drop, put_file, record  # noqa: F401 - drop is a fixture

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


# -- the reader a sender names must be one the routes let it address ------------------------------
def test_a_provider_report_naming_a_municipal_office_as_reader_is_refused_403_naming_the_field(hub: Hub, client: TestClient) -> None:
    """A provider's report goes to the case owner (a Jobcenter): naming a municipal office as reader
    used to be ignored and the report routed to the Jobcenter all the same."""
    report = json.loads(encode(hub, "provider-json", provider_sample("bericht.beurteilung.3010", "F-AAAABBBBCCCC")))
    report["header"]["reader"] = {"id": "kreis-musterland"}
    problem = post_as(hub, client, PROVIDER, json.dumps(report).encode(), "application/json")
    assert problem["status"] == 403 and problem["type"].endswith(":forbidden"), problem
    assert [f["pointer"] for f in problem["findings"]] == ["/header/reader/id"], problem
    assert "kreis-musterland" in problem["findings"][0]["message"] and "jobcenter" in problem["findings"][0]["message"], problem
    assert stored(hub) == 0, "a message with a reader the routes do not allow was stored"


def test_an_agency_message_naming_a_reader_of_the_wrong_kind_is_refused_naming_the_element(hub: Hub, client: TestClient) -> None:
    """An assignment goes to a provider: a municipal office as its reader is refused, not withheld later."""
    data = agency_sample("zuweisung.anmeldung.1020")
    data["header"]["reader"] = {"id": "kreis-musterland"}
    xml = encode(hub, "agency-xml", data)
    problem = post_as(hub, client, JOBCENTER, xml, "application/xml")
    assert problem["status"] == 403 and problem["type"].endswith(":forbidden"), problem
    (finding,) = problem["findings"]
    leser_line = next(i + 1 for i, line in enumerate(xml.decode().splitlines()) if "<fk:leser>" in line)
    assert finding["message"].startswith("nachrichtenkopf/leser/kennung: ") and finding["line"] >= leser_line, finding
    assert stored(hub) == 0


def test_a_reader_that_is_no_registered_partner_is_refused(hub: Hub, client: TestClient) -> None:
    report = json.loads(encode(hub, "provider-json", provider_sample("bericht.beurteilung.3010", "F-AAAABBBBCCCC")))
    report["header"]["reader"] = {"id": "jobcenter-vertippt"}
    problem = post_as(hub, client, PROVIDER, json.dumps(report).encode(), "application/json")
    assert problem["status"] == 403 and [f["pointer"] for f in problem["findings"]] == ["/header/reader/id"], problem
    assert stored(hub) == 0


def test_a_batch_record_naming_a_reader_the_routes_do_not_allow_is_answered_and_not_stored(hub: Hub, drop: FileDrop) -> None:
    """Master data of a municipal office goes to a Jobcenter; a provider as empfaenger is refused."""
    wrong = record("Anna", "Test").replace(f";{JOBCENTER};", f";{PROVIDER};")
    put_file(drop, hub, "leser.csv", [wrong, record("Eva", "Klein")])
    drop.scan(), drop.scan()
    assert count(hub) == 1, "only the record with an allowed reader may be stored"
    (answer,) = list(drop.outbox(hub.partners[PARTNER]).glob("rueckweisung_*.csv"))
    text = answer.read_bytes().decode("iso-8859-15")
    assert "forbidden" in text and "leser.csv line 2" in text and "empfaenger" in text, text
