"""End to end through a live `hub serve`: the walking skeleton's promise, as a partner sees it."""

from __future__ import annotations

import json

from tests.conftest import (
    JOBCENTER,
    OTHER_PROVIDER,
    PROVIDER,
    LiveHub,
    agency_sample,
    encode,
    outbox_rows,
    post,
    provider_sample,
    wait_for,
    wait_until,
)


def assign_case(live: LiveHub) -> str:
    """The Jobcenter assigns its client to the provider; returns the provider's case id."""
    with live.client(JOBCENTER) as jc, live.client(PROVIDER) as pr:
        r = post(jc, encode(live.hub, "agency-xml", agency_sample("zuweisung.anmeldung.1020")), "agency-xml")
        assert r.status_code == 202, f"the assignment was not accepted: {r.status_code} {r.text}"
        (delivery,) = wait_for(pr, "zuweisung.anmeldung.1020")
        assert pr.post(f"/v1/inbox/{delivery['id']}/ack").status_code == 200
        return delivery["body"]["body"]["caseId"]


def test_provider_report_reaches_jobcenter_as_agency_xml_and_ack_marks_it_delivered(live_hub: LiveHub) -> None:
    case_id = assign_case(live_hub)
    report = provider_sample("teilnahme.mitwirkung.2040", case_id)
    with live_hub.client(PROVIDER) as pr, live_hub.client(JOBCENTER) as jc:
        r = post(pr, encode(live_hub.hub, "provider-json", report), "provider-json")
        assert r.status_code == 202, f"the provider's report was not accepted: {r.text}"
        message_id = r.json()["id"]
        assert r.json()["status_url"] == f"/v1/messages/{message_id}"

        (delivery,) = wait_for(jc, "teilnahme.mitwirkung.2040")
        assert delivery["content_type"] == "application/xml", "the Jobcenter must receive agency XML"
        assert delivery["body"].lstrip().startswith("<?xml"), "the body must be the XML document itself"
        assert "<fk:kundennummer>123D456789</fk:kundennummer>" in delivery["body"], "the case id was not translated back to the Kundennummer"
        assert case_id not in delivery["body"], "the provider's pseudonym leaked to the Jobcenter"
        assert report["body"]["facts"] in delivery["body"], "the report's facts did not arrive"

        assert pr.get(f"/v1/messages/{message_id}").json()["status"] == "routed"
        ack = jc.post(f"/v1/inbox/{delivery['id']}/ack")
        assert ack.status_code == 200 and ack.json()["status"] == "acknowledged"
        assert jc.post(f"/v1/inbox/{delivery['id']}/ack").status_code == 200, "ack must be idempotent"

        status = pr.get(f"/v1/messages/{message_id}").json()
        assert status["status"] == "delivered", f"after the ack the message must be delivered, is {status['status']}"
        events = [f"{e['stage']}.{e['event']}" for e in status["history"]]
        for expected in ("ingress.received", "ingress.validated", "routing.routed", "delivery.acknowledged", "delivery.delivered"):
            assert expected in events, f"history lacks {expected}: {events}"

        (receipt,) = wait_for(pr, "administration.quittung.0020")
        assert receipt["body"]["header"]["referenceUuid"] == report["header"]["message_uuid"], "the quittung must reference the report"
        assert jc.get("/v1/inbox").json()["count"] == 0 or all(
            d["message_type"] != "teilnahme.mitwirkung.2040" for d in jc.get("/v1/inbox").json()["deliveries"]
        ), "an acknowledged delivery must leave the inbox"


def test_resend_returns_first_id_and_is_not_processed_twice(live_hub: LiveHub) -> None:
    case_id = assign_case(live_hub)
    body = encode(live_hub.hub, "provider-json", provider_sample("teilnahme.anwesenheit.2030", case_id))
    with live_hub.client(PROVIDER) as pr, live_hub.client(JOBCENTER) as jc:
        first = post(pr, body, "provider-json")
        second = post(pr, body, "provider-json")
        assert first.status_code == 202 and second.status_code == 200, (first.status_code, second.status_code)
        assert first.json()["id"] == second.json()["id"], "a resend must answer with the first message's id"
        wait_for(jc, "teilnahme.anwesenheit.2030")
        # proof that the hub has finished with the resend, before counting: a sentinel sent after it has
        # come through (one pipeline consumer takes the queue in order), and nothing is left in the outbox
        sentinel = post(pr, encode(live_hub.hub, "provider-json", provider_sample("teilnahme.mitwirkung.2040", case_id)), "provider-json")
        assert sentinel.status_code == 202, f"the sentinel report was not accepted: {sentinel.text}"
        wait_for(jc, "teilnahme.mitwirkung.2040")
        wait_until(lambda: outbox_rows(live_hub.hub) == 0, 20, lambda: f"the outbox to drain ({outbox_rows(live_hub.hub)} items left)")
        deliveries = [d for d in jc.get("/v1/inbox").json()["deliveries"] if d["message_type"] == "teilnahme.anwesenheit.2030"]
        assert len(deliveries) == 1, f"the resend was delivered again: {len(deliveries)} deliveries"


def test_provider_never_receives_agency_ids_nor_other_providers_data(live_hub: LiveHub) -> None:
    case_id = assign_case(live_hub)
    with live_hub.client(PROVIDER) as pr, live_hub.client(OTHER_PROVIDER) as other:
        assert other.get("/v1/inbox").json()["count"] == 0, "another provider saw a delivery not addressed to it"
        report = post(pr, encode(live_hub.hub, "provider-json", provider_sample("teilnahme.mitwirkung.2040", case_id)), "provider-json")
        message_id = report.json()["id"]
        r = other.get(f"/v1/messages/{message_id}")
        assert r.status_code == 404, "another provider must not learn that the message exists"
        assert "mitwirkung" not in r.text and case_id not in r.text

        # the other provider cannot report on a case it was not assigned
        forged = provider_sample("teilnahme.mitwirkung.2040", case_id)
        forged["header"]["author"] = {"id": OTHER_PROVIDER}
        r = post(other, encode(live_hub.hub, "provider-json", forged), "provider-json")
        assert r.status_code == 202, r.text
        (rejection,) = wait_for(other, "administration.rueckweisung.0010")
        assert rejection["body"]["body"]["reason"] == "business-rule"
        assert "123D456789" not in json.dumps(rejection), "a rejection leaked the Kundennummer"
