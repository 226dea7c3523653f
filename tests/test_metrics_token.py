"""/metrics: behind a bearer token where HUB_METRICS_TOKEN is set (401 problem+json otherwise); the
store's gauges measured at the scrape (queue depth and oldest item, the oldest message waiting for
the pipeline, dead letters, outstanding SLA breaches, the alerts the workers found firing); each pipeline stage timed on
a sample of the messages; rejections counted by sender and type; /readyz asks database and broker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from hub.api.app import create_app
from hub.metrics import STAGE_SAMPLE
from hub.runtime import Hub
from hub.store import db
from hub.store.tables import outbox
from tests.conftest import JOBCENTER, PROVIDER, hub_for, provider_sample, send
from hub.alerts import firing
from tests.test_alerts import add_dead_letter, missed_deadline

TOKEN = "scrape-me-0123456789"


@pytest.fixture
def guarded(hub_env: dict[str, str]) -> Iterator[tuple[Hub, TestClient]]:
    hub = hub_for(hub_env, metrics_token=TOKEN)
    with TestClient(create_app(hub, role="api"), raise_server_exceptions=False) as client:
        yield hub, client
    hub.close()


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_want_the_token_where_one_is_set(guarded: tuple[Hub, TestClient]) -> None:
    _, client = guarded
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        answer = client.get("/metrics", headers=headers)
        assert answer.status_code == 401, f"/metrics answered {answer.status_code} to {headers}"
        assert answer.headers["content-type"] == "application/problem+json" and answer.json()["status"] == 401, answer.text
        assert TOKEN not in answer.text, "the refusal tells the token"
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200, "the right token is refused"


def test_metrics_are_open_where_no_token_is_set(hub: Hub) -> None:
    with TestClient(create_app(hub, role="api")) as client:
        assert client.get("/metrics").status_code == 200, "/metrics wants a token though none is set"


def test_the_gauges_describe_the_store_at_the_scrape(guarded: tuple[Hub, TestClient]) -> None:
    hub, client = guarded
    add_dead_letter(hub)
    missed_deadline(hub)
    with db.write(hub.engine) as conn:
        conn.execute(outbox.insert().values(queue="pipeline", payload={"message_id": "x"}, available_at=0.0, attempts=0, created_at=db.utcnow()))
    firing.record(hub)  # the workers' evaluation: the active alerts are what it left open
    found = samples(client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text)
    assert found[("hub_dead_letters", ())] == 1, "dead letters"
    assert found[("hub_queue_depth", (("queue", "pipeline"),))] == 1, "queue depth"
    assert ("hub_queue_oldest_seconds", (("queue", "pipeline"),)) in found, "oldest queue item"
    assert found[("hub_pipeline_oldest_waiting_seconds", ())] == 0, "no message waits for the pipeline"
    assert found[("hub_sla_breaches_outstanding", (("partner", PROVIDER),))] == 1, "outstanding breaches"
    assert found[("hub_alerts_active", (("alert", "dead-letters"), ("severity", "critical")))] == 1, "active alerts"
    assert found[("hub_alerts_active", (("alert", "deadline-missed"), ("severity", "warning")))] == 1, "active alerts"
    assert found[("hub_alerts_active", (("alert", "pipeline-backlog"), ("severity", "critical")))] == 0, "an alert that does not fire"
    assert found[("hub_alert_notifications_unsent", (("status", "pending"),))] == 3, "notifications not sent (no mail server, no webhook set)"


def test_stages_are_timed_on_a_sample_and_rejections_counted_by_sender_and_type(hub: Hub) -> None:
    with TestClient(create_app(hub, role="api")) as client:
        before = samples(client.get("/metrics").text)
        for _ in range(STAGE_SAMPLE):  # a report for a case the provider does not belong to: rejected
            send(hub, PROVIDER, "provider-json", provider_sample("teilnahme.anwesenheit.2030", "F-NOSUCHCASE00"))
        after = samples(client.get("/metrics").text)
    timed = {dict(labels)["stage"] for (name, labels), value in after.items() if name == "hub_stage_seconds_count" and value > before.get((name, labels), 0)}
    assert {"decode", "identities", "case_chain"} <= timed, f"the stages run for a sampled message were not timed: {timed}"
    rejected = {labels: value - before.get((name, labels), 0) for (name, labels), value in after.items() if name == "hub_messages_rejected_total"}
    assert sum(v for labels, v in rejected.items() if ("sender", PROVIDER) in labels and ("type", "teilnahme.anwesenheit.2030") in labels) == STAGE_SAMPLE, rejected


def test_readiness_asks_the_database_and_the_broker(hub: Hub) -> None:
    with TestClient(create_app(hub, role="api")) as client:
        answer = client.get("/readyz")
    assert answer.status_code == 200 and answer.json()["checks"] == {"database": True, "broker": True}, answer.text
    assert JOBCENTER  # the partners are loaded
