"""Characters no recipient's format can carry are refused where they enter, with their location; and a
message that can never be passed on is answered with a rueckweisung at once, never buried after retries."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from hub import pipeline
from hub.store import db
from hub.runtime import Hub
from hub.store.tables import deliveries, message_events, messages
from tests.conftest import JOBCENTER, PROVIDER, agency_sample, drain, encode, provider_sample, send
from tests.test_adapter_edges import client, csv_file, post_as, stored  # noqa: F401 - client is a fixture
from tests.test_file_drop import PARTNER, record


def case_of_provider(hub: Hub) -> str:
    """Assign a client to the provider; returns the provider's case id."""
    send(hub, JOBCENTER, "agency-xml", agency_sample("zuweisung.anmeldung.1020"))
    with db.read(hub.engine) as conn:
        body = conn.execute(sa.select(deliveries.c.body).where(deliveries.c.recipient == PROVIDER, deliveries.c.message_type == "zuweisung.anmeldung.1020")).scalar_one()
    return json.loads(body)["body"]["caseId"]


@pytest.mark.parametrize("char", ["\u0001", "\u001b", "\u0000", "\ufffe", "\ud800"])
def test_a_json_report_with_a_character_xml_cannot_carry_is_refused_422_with_its_pointer(hub: Hub, client: TestClient, char: str) -> None:
    case_id = case_of_provider(hub)
    before = stored(hub)
    doc = json.loads(encode(hub, "provider-json", provider_sample("teilnahme.mitwirkung.2040", case_id)))
    doc["body"]["facts"] = f"Fehlte am Montag{char} ohne Nachricht."
    problem = post_as(hub, client, PROVIDER, json.dumps(doc).encode(), "application/json")  # \u escapes
    assert problem["status"] == 422, problem
    (finding,) = problem["findings"]
    assert finding["pointer"] == "/body/facts", finding
    assert f"U+{ord(char):04X}" in finding["message"] and "position 17" in finding["message"], finding
    assert stored(hub) == before, "a refused message is not stored"


def test_a_municipal_record_with_an_escape_byte_is_refused_422_at_its_line_and_column(hub: Hub, client: TestClient) -> None:
    body = csv_file(record("Anna\x1b", "Test"))
    problem = post_as(hub, client, PARTNER, body, "text/csv")
    assert problem["status"] == 422, problem
    (finding,) = problem["findings"]
    assert (finding["line"], finding["column"]) == (2, 9) and "U+001B (ESCAPE)" in finding["message"], finding
    assert stored(hub) == 0


def test_names_outside_din_91379_are_refused_where_the_contract_requires_it(hub: Hub, client: TestClient) -> None:
    data = agency_sample("person.stammdaten.0100")
    data["body"]["person"]["given_name"] = "Jürgen ☺"
    problem = post_as(hub, client, JOBCENTER, encode(hub, "agency-xml", data), "application/xml")
    assert problem["status"] == 422, problem
    (finding,) = problem["findings"]
    assert "U+263A" in finding["message"] and "DIN 91379 data type A" in finding["message"] and "given_name" in finding["message"], finding
    assert finding["line"], "an XML finding names its line"


def test_din_91379_names_with_diacritics_from_many_languages_are_taken(hub: Hub, client: TestClient) -> None:
    data = agency_sample("person.stammdaten.0100")
    data["body"]["person"].update(given_name="Łukasz Ōtake", family_name="Yılmaz-Nguyễn", birth_name="Groß")
    answer = post_as(hub, client, JOBCENTER, encode(hub, "agency-xml", data), "application/xml")
    assert answer["status"] == 202, answer


def test_a_message_that_can_never_be_passed_on_is_answered_at_once_not_retried(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure that is not the database's (here: an encoder that cannot write a value) would fail the
    same way on every attempt: the sender gets a rueckweisung naming the cause, on the first attempt."""
    case_id = case_of_provider(hub)

    def cannot_encode(hub: Hub, conn, ctx) -> None:  # noqa: ANN001
        raise ValueError("All strings must be XML compatible: Unicode or ASCII, no NULL bytes or control characters")

    monkeypatch.setattr(pipeline, "STAGES", [*pipeline.STAGES[:-1], cannot_encode])
    message_id = send(hub, PROVIDER, "provider-json", provider_sample("teilnahme.mitwirkung.2040", case_id))
    with db.read(hub.engine) as conn:
        status = conn.execute(sa.select(messages.c.status).where(messages.c.id == message_id)).scalar_one()
        answers = conn.execute(sa.select(deliveries.c.message_type, deliveries.c.body).where(deliveries.c.message_id == message_id)).all()
        rejected = conn.execute(sa.select(message_events.c.detail).where(message_events.c.message_id == message_id, message_events.c.event == "rejected")).scalar_one()
    assert status == "rejected"
    assert [a.message_type for a in answers] == ["administration.rueckweisung.0010"], "the sender is told, nothing else is delivered"
    assert "ValueError: All strings must be XML compatible" in json.dumps(rejected), rejected
    assert "ValueError" in answers[0].body.decode()
    drain(hub)  # nothing left to retry
