"""Duplicate reports: the same report again -- under another message id, from a second system, with
its lines in another order -- is answered and not delivered twice; but two reports that only look
alike (another participant, the other direction, a test message and its production twin) are both
delivered. A duplicate that is not one is a lost message."""

from __future__ import annotations

import copy
import json

import sqlalchemy as sa

from hub.store import db
from hub.runtime import Hub
from hub.store.tables import deliveries, messages
from tests.conftest import JOBCENTER, OTHER_PROVIDER, PROVIDER, agency_sample, new_uuid, provider_sample, send

AENDERUNG = {"measure_number": "962-AGH-2026-0042", "change_kind": "verlaengerung", "effective_date": "2027-06-01", "new_period_end": "2027-08-31"}


def assign(hub: Hub, customer: str, provider: str = PROVIDER, given_name: str = "Jürgen", test: bool = True) -> str:
    """Assign a participant to `provider`; its pseudonymous case id for that provider."""
    data = agency_sample("zuweisung.anmeldung.1020", customer_number=customer)
    data["header"]["reader"] = {"id": provider}
    data["header"]["test"] = test
    data["body"]["participant"]["given_name"] = given_name
    message_id = send(hub, JOBCENTER, "agency-xml", data)
    with db.read(hub.engine) as conn:
        body = conn.execute(sa.select(deliveries.c.body).where(deliveries.c.message_id == message_id, deliveries.c.recipient == provider)).scalar_one()
    return json.loads(body)["body"]["caseId"]


def outcome(hub: Hub, message_id: str, recipient: str) -> tuple[str, int]:
    """(status, content deliveries to `recipient`) of a message."""
    with db.read(hub.engine) as conn:
        status = conn.execute(sa.select(messages.c.status).where(messages.c.id == message_id)).scalar_one()
        count = conn.execute(
            sa.select(sa.func.count()).select_from(deliveries).where(
                deliveries.c.message_id == message_id, deliveries.c.recipient == recipient, ~deliveries.c.message_type.like("administration.%")
            )
        ).scalar_one()
    return status, count


def resent_as_new(data: dict) -> dict:
    again = copy.deepcopy(data)
    again["header"]["message_uuid"] = new_uuid()
    return again


def test_identical_attendance_of_two_participants_is_two_reports(hub: Hub) -> None:
    first, second = assign(hub, "123D456789"), assign(hub, "123D456790", given_name="Lena")
    a = send(hub, PROVIDER, "provider-json", provider_sample("teilnahme.anwesenheit.2030", first))
    b = send(hub, PROVIDER, "provider-json", provider_sample("teilnahme.anwesenheit.2030", second))
    assert outcome(hub, a, JOBCENTER) == ("routed", 1) and outcome(hub, b, JOBCENTER) == ("routed", 1), "each participant's attendance must arrive"


def test_the_jobcenters_answer_with_the_same_content_as_the_providers_proposal_is_delivered(hub: Hub) -> None:
    case_id = assign(hub, "123D456789")
    proposal = provider_sample("teilnahme.aenderung.2020", case_id)
    proposal["header"].update(author={"id": PROVIDER}, reader={"id": JOBCENTER}, purpose="eingliederung")
    proposal["header"].pop("reference_uuid", None)
    proposal["body"] = {"case_id": case_id, **AENDERUNG}
    asked = send(hub, PROVIDER, "provider-json", proposal)
    answer = agency_sample("teilnahme.aenderung.2020")
    answer["body"] = {"customer_number": "123D456789", **AENDERUNG}
    answered = send(hub, JOBCENTER, "agency-xml", answer)
    assert outcome(hub, asked, JOBCENTER) == ("routed", 1)
    assert outcome(hub, answered, PROVIDER) == ("routed", 1), "the Jobcenter's decision was taken for a duplicate of the provider's proposal"


def test_a_test_message_does_not_make_its_production_twin_a_duplicate(hub: Hub) -> None:
    assign(hub, "123D456790", test=False)  # a production decision needs a production assignment (test chains never mix)
    trial = agency_sample("teilnahme.aenderung.2020", customer_number="123D456790")
    trial["header"]["test"] = True
    real = resent_as_new(trial)
    real["header"]["test"] = False
    send(hub, JOBCENTER, "agency-xml", trial)
    assert outcome(hub, send(hub, JOBCENTER, "agency-xml", real), PROVIDER) == ("routed", 1), "the production message was dropped as a duplicate of its test run"
    assert outcome(hub, send(hub, JOBCENTER, "agency-xml", resent_as_new(real)), PROVIDER) == ("duplicate", 0), "the same decision again is a duplicate"


def invoice(case_ids: list[str], sender: str = PROVIDER) -> dict:
    data = provider_sample("abrechnung.monat.4010", case_ids[0])
    for line, case_id in zip(data["body"]["lines"], case_ids):
        line["case_id"] = case_id
    data["header"]["author"] = {"id": sender}
    return data


def test_an_invoice_again_with_its_lines_reordered_is_a_duplicate(hub: Hub) -> None:
    ours = [assign(hub, "123D456789"), assign(hub, "123D456790", given_name="Lena")]
    first = invoice(ours)
    assert len(first["body"]["lines"]) == 2, "the sample invoice must have two lines for this specification"
    assert outcome(hub, send(hub, PROVIDER, "provider-json", first), JOBCENTER) == ("routed", 1)
    reordered = resent_as_new(first)
    reordered["body"]["lines"].reverse()
    assert outcome(hub, send(hub, PROVIDER, "provider-json", reordered), JOBCENTER) == ("duplicate", 0), "the same invoice with its lines in another order"


def test_another_providers_report_is_never_compared_with_ones_own(hub: Hub) -> None:
    """Else a provider sharing a client could guess another provider's report and learn from its own
    message's status `duplicate` that it guessed right."""
    ours, theirs = [assign(hub, "123D456789"), assign(hub, "123D456790", given_name="Lena")], [
        assign(hub, "123D456789", OTHER_PROVIDER), assign(hub, "123D456790", OTHER_PROVIDER, given_name="Lena")
    ]
    first = invoice(ours)
    assert outcome(hub, send(hub, PROVIDER, "provider-json", first), JOBCENTER) == ("routed", 1)
    look_alike = invoice(theirs, OTHER_PROVIDER)
    look_alike["body"] = copy.deepcopy(first["body"])
    for line, case_id in zip(look_alike["body"]["lines"], theirs):
        line["case_id"] = case_id
    assert outcome(hub, send(hub, OTHER_PROVIDER, "provider-json", look_alike), JOBCENTER) == ("routed", 1), (
        "the other provider's invoice was compared with this provider's"
    )


def test_an_invoice_for_other_cases_is_another_invoice(hub: Hub) -> None:
    ours = [assign(hub, "123D456789"), assign(hub, "123D456790", given_name="Lena"), assign(hub, "123D456791", given_name="Mia")]
    assert outcome(hub, send(hub, PROVIDER, "provider-json", invoice(ours[:2])), JOBCENTER) == ("routed", 1)
    other = invoice([ours[0], ours[2]])
    assert outcome(hub, send(hub, PROVIDER, "provider-json", other), JOBCENTER) == ("routed", 1), "an invoice naming another case was taken for a duplicate"


def test_a_sender_learns_from_its_history_that_a_report_was_a_duplicate_but_not_of_whose(hub: Hub, tokens: dict[str, str]) -> None:
    from fastapi.testclient import TestClient

    from hub.api.app import create_app

    ours = assign(hub, "123D456789")
    report = provider_sample("teilnahme.mitwirkung.2040", ours)
    first = send(hub, PROVIDER, "provider-json", report)
    again = send(hub, PROVIDER, "provider-json", resent_as_new(report))
    client = TestClient(create_app(hub, role="api"), headers={"Authorization": f"Bearer {tokens[PROVIDER]}"})
    history = client.get(f"/v1/messages/{again}").json()["history"]
    (event,) = [e for e in history if e["event"] == "duplicate"]
    assert event["detail"]["of"] == first, "a sender may see which of its own messages came first"


def test_a_provider_reports_only_on_the_measures_it_runs(hub: Hub) -> None:
    """Both providers take part in the client's case, each with its own measure: one may not report
    starts (or absences, exits) for the other's measure."""
    assign(hub, "123D456789")  # the sample's measure, run by PROVIDER
    ours = agency_sample("zuweisung.anmeldung.1020")["body"]["measure_number"]
    other_measure = "962-BVB-2026-0007"
    data = agency_sample("zuweisung.anmeldung.1020", measure_number=other_measure)
    data["header"]["reader"] = {"id": OTHER_PROVIDER}
    message_id = send(hub, JOBCENTER, "agency-xml", data)
    with db.read(hub.engine) as conn:
        body = conn.execute(sa.select(deliveries.c.body).where(deliveries.c.message_id == message_id, deliveries.c.recipient == OTHER_PROVIDER)).scalar_one()
    theirs = json.loads(body)["body"]["caseId"]
    start = provider_sample("teilnahme.eintritt.2010", theirs, measure_number=ours, started=True, start_date="2026-12-03")
    start["header"]["author"] = {"id": OTHER_PROVIDER}
    start["body"].pop("non_start_reason", None)
    refused = send(hub, OTHER_PROVIDER, "provider-json", start)
    assert outcome(hub, refused, JOBCENTER) == ("rejected", 0), "a start for another provider's measure reached the Jobcenter"
    own = copy.deepcopy(start)
    own["header"]["message_uuid"] = new_uuid()
    own["body"]["measure_number"] = other_measure
    assert outcome(hub, send(hub, OTHER_PROVIDER, "provider-json", own), JOBCENTER) == ("routed", 1), "its own measure's start must arrive"
