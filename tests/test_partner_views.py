"""What a partner sees through the API: its message history shows what happened to its message,
never what the hub knows from other partners (domain.md: a partner sees only what is addressed to it;
surface.md: a partner never learns anything about another partner's data); its inbox hands out every
delivery addressed to it, whatever the format's encoding."""

from __future__ import annotations

from fastapi.testclient import TestClient

from hub.store import db
from hub.api.app import create_app
from hub.runtime import Hub
from tests.conftest import JOBCENTER, MUNICIPAL, OPERATOR, agency_sample, send
from tests.test_identity import master_data


def history(hub: Hub, token: str, message_id: str) -> list[dict]:
    client = TestClient(create_app(hub, role="api"), headers={"Authorization": f"Bearer {token}"})
    answer = client.get(f"/v1/messages/{message_id}")
    assert answer.status_code == 200, answer.text
    return answer.json()["history"]


def test_a_sender_cannot_probe_whether_another_partner_knows_a_person(hub: Hub, tokens: dict[str, str]) -> None:
    send(hub, JOBCENTER, "agency-xml", master_data(JOBCENTER, MUNICIPAL, "123D456789", given_name="Jürgen", family_name="Müller", birth_date="1978-03-09"))
    known = send(hub, MUNICIPAL, "agency-xml", master_data(MUNICIPAL, JOBCENTER, "777K000001", given_name="Jürgen", family_name="Müller", birth_date="1978-03-09"))
    unknown = send(hub, MUNICIPAL, "agency-xml", master_data(MUNICIPAL, JOBCENTER, "777K000002", given_name="Zoe", family_name="Zander", birth_date="2001-01-01"))

    def seen(message_id: str) -> list[tuple]:
        return [(e["stage"], e["event"], sorted((e.get("detail") or {}).items(), key=str)) for e in history(hub, tokens[MUNICIPAL], message_id)]

    leaked = [e for e in seen(known) if e[0] == "identity" or any(k in ("person", "weight", "review", "case") for k, _ in e[2])]
    assert not leaked, f"the sender's history says how the hub resolved the person: {leaked}"
    shapes = lambda events: [(stage, event) for stage, event, _ in events]  # noqa: E731
    assert shapes(seen(known)) == shapes(seen(unknown)), "a person the index knew and one it did not must look the same to the sender"
    operator = [e for e in history(hub, tokens[OPERATOR], known) if e["event"] == "resolved"]
    assert operator and operator[0]["detail"]["decision"] == "match", "operators keep the whole history"


def test_a_file_partner_reads_its_iso_8859_15_deliveries_over_http_too(hub: Hub) -> None:
    """A municipal CSV record is ISO-8859-15: the JSON inbox hands it out as text, umlauts intact
    (it used to answer 500 for the whole inbox at the first ü)."""
    from hub.partners import issue_token

    with db.write(hub.engine) as conn:
        token = issue_token(conn, "sozialamt-altstadt")
    data = agency_sample("person.stammdaten.0100")
    data["header"]["reader"] = {"id": "sozialamt-altstadt"}
    data["body"]["person"]["given_name"] = "Jürgen"
    send(hub, JOBCENTER, "agency-xml", data)
    client = TestClient(create_app(hub, role="api"), headers={"Authorization": f"Bearer {token}"})
    answer = client.get("/v1/inbox")
    assert answer.status_code == 200, answer.text
    (delivery,) = [d for d in answer.json()["deliveries"] if d["message_type"] == "person.stammdaten.0100"]
    assert "Jürgen" in delivery["body"], delivery["body"]
