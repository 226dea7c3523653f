"""`/metrics` counts every message the hub refuses (hub_messages_refused_total), by problem kind,
authenticated partner and message type -- with label values only the hub chooses: a string an
unauthenticated caller or a partner's message makes up never becomes a label (one time series each
would let anyone grow the metrics without bound). A resend answered 200 is no refusal."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from hub.endpoints.file_drop import FileDrop
from hub.runtime import Hub
from tests.conftest import JOBCENTER, PROVIDER, agency_sample, encode, provider_sample
from tests.test_adapter_edges import client, post_as  # noqa: F401 - the client fixture
from tests.test_file_drop import PARTNER, put_file, record

REFUSED = "hub_messages_refused_total"


def refused(client: TestClient) -> dict[tuple[str, str, str], float]:  # noqa: F811
    """hub_messages_refused_total by (reason, partner, type), as /metrics shows it."""
    answer = client.get("/metrics")
    assert answer.status_code == 200, answer.text
    counts = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            if sample.name == REFUSED:
                assert set(sample.labels) == {"reason", "partner", "type"}, sample.labels
                counts[(sample.labels["reason"], sample.labels["partner"], sample.labels["type"])] = sample.value
    return counts


def increase(before: dict, after: dict) -> dict:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


def test_every_refused_message_is_counted_by_reason_partner_and_type(hub: Hub, client: TestClient) -> None:  # noqa: F811
    before = refused(client)
    anonymous = client.post("/v1/messages", content=b"<a/>", headers={"Content-Type": "application/xml"})
    forged = client.post("/v1/messages", content=b"<a/>", headers={"Content-Type": "application/xml", "Authorization": "Bearer evil-made-up-label"})
    assert (anonymous.status_code, forged.status_code) == (401, 401)
    assert post_as(hub, client, JOBCENTER, b"<a>", "application/xml")["status"] == 400
    too_large = b"<a>" + b"x" * hub.settings.max_message_bytes + b"</a>"
    assert post_as(hub, client, JOBCENTER, too_large, "application/xml")["status"] == 413
    invalid = encode(hub, "agency-xml", agency_sample("zuweisung.anmeldung.1020")).replace(b"<fk:wochenstunden>25.0<", b"<fk:wochenstunden>viele<")
    assert post_as(hub, client, JOBCENTER, invalid, "application/xml")["status"] == 422
    made_up = provider_sample("teilnahme.eintritt.2010", "T-1")
    made_up["header"]["messageType"] = "made.up.type-by-a-partner"
    assert post_as(hub, client, PROVIDER, json.dumps(made_up).encode(), "application/json")["status"] == 422

    assert increase(before, refused(client)) == {
        ("unauthenticated", "unknown", "unknown"): 2,
        ("malformed", JOBCENTER, "unknown"): 1,
        ("too-large", JOBCENTER, "unknown"): 1,
        ("schema-invalid", JOBCENTER, "zuweisung.anmeldung.1020"): 1,
        ("unknown-message-type", PROVIDER, "unknown"): 1,
    }, "each refusal once, under the labels the hub chose"


def test_a_message_taken_or_sent_again_is_no_refusal(hub: Hub, client: TestClient) -> None:  # noqa: F811
    """Duplicates are answered 200 with the first id: the partner did nothing wrong, and nothing is
    counted as refused (hub_messages_received_total counts the first)."""
    before = refused(client)
    body = encode(hub, "agency-xml", agency_sample("zuweisung.anmeldung.1020"))
    assert post_as(hub, client, JOBCENTER, body, "application/xml")["status"] == 202
    assert post_as(hub, client, JOBCENTER, body, "application/xml")["status"] == 200
    assert increase(before, refused(client)) == {}


def test_file_drop_rejections_are_counted_for_the_file_partner(hub: Hub, client: TestClient, tmp_path: Path) -> None:  # noqa: F811
    drop = FileDrop(hub, root=tmp_path / "drop", settle=0)
    before = refused(client)
    put_file(drop, hub, "batch.csv", [record("Anna", "Test"), record("Berta", "Test", postcode="1067"), "kaputt"])
    assert drop.scan() == 0 and drop.scan() == 1, "the file is taken at the second scan (its size kept)"
    assert increase(before, refused(client)) == {
        ("schema-invalid", PARTNER, "person.stammdaten.0100"): 1,
        ("malformed", PARTNER, "unknown"): 1,
    }, "each refused record once, for the partner whose directory it came from"
