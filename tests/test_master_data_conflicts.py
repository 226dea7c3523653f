"""Master data entered once reaches the other system, and two systems changing one person at the same
time never lose an update: changes of different fields merge, a field both changed to different values
waits for an operator with both values, and the operator's pick reaches the side that lost.

Through the pipeline on SQLite and on PostgreSQL (embedded queue), the partners' inbox and the
operators' endpoints over the HTTP app, and `hub dedup ...` for the operators' command line. The
Jobcenter speaks person.stammdaten 1.0, which cannot name the revision it last saw (the hub infers
it); the municipal office speaks 2.1 and names it (basisVersion) -- or, sending 2.0, does not.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from hub.api.app import create_app
from hub.endpoints import ingress
from hub.runtime import Hub
from hub.store import db
from hub.store.tables import audit_log, data_conflicts, deliveries, master_data_fields
from tests.conftest import JOBCENTER, MUNICIPAL, OPERATOR, agency_sample, drain, encode, send

STREET, PHONE = "person.address.street", "person.contact.phone"


# hub_env: the embedded queue on SQLite, then on PostgreSQL (tests/conftest.py BOTH_DATABASES)


@pytest.fixture
def api(hub: Hub) -> TestClient:
    return TestClient(create_app(hub, role="api"))


def master_data(sender: str, reader: str, customer: str, *, street: str = "Hauptstraße", phone: str = "+49 351 100100", version: str = "1.0", base: int | None = None) -> dict:
    """A production (not test) person.stammdaten record of one client, as `sender` keeps it."""
    data = agency_sample("person.stammdaten.0100")
    data["header"].update(author={"id": sender}, reader={"id": reader}, version=version, test=False)
    data["body"]["customer_number"] = customer
    data["body"]["person"]["address"]["street"] = street
    data["body"]["person"]["contact"]["phone"] = phone
    if base is not None:
        data["body"]["base_version"] = base
    return data


def inbox(hub: Hub, api: TestClient, tokens: dict[str, str], partner: str) -> list[dict[str, Any]]:
    """The partner's waiting master data deliveries, oldest first, read into the canonical model."""
    r = api.get("/v1/inbox", params={"limit": 100}, headers={"Authorization": f"Bearer {tokens[partner]}"})
    assert r.status_code == 200, r.text
    adapter = hub.adapter("agency-xml")
    return [
        {"id": d["id"], "version": d["version"], **adapter.decode(d["body"].encode("utf-8")).model_dump(mode="json", exclude_none=True)}
        for d in r.json()["deliveries"] if d["message_type"] == "person.stammdaten.0100"
    ]


def take(hub: Hub, api: TestClient, tokens: dict[str, str], partner: str) -> list[dict[str, Any]]:
    """Read and acknowledge everything waiting for the partner (it has taken it in)."""
    waiting = inbox(hub, api, tokens, partner)
    for d in waiting:
        assert api.post(f"/v1/inbox/{d['id']}/ack", headers={"Authorization": f"Bearer {tokens[partner]}"}).status_code == 200
    return waiting


def person(delivery: dict[str, Any]) -> dict[str, Any]:
    return delivery["body"]["person"]


def versions(hub: Hub, name: str) -> list[tuple[int, Any, str]]:
    with db.read(hub.engine) as conn:
        rows = conn.execute(sa.select(master_data_fields).where(master_data_fields.c.field == name).order_by(master_data_fields.c.version))
        return [(r.version, r.value, r.set_by) for r in rows]


def state(hub: Hub) -> tuple[int, int, list]:
    """What a refused or repeated input must leave as it was: deliveries, field versions, conflicts."""
    with db.read(hub.engine) as conn:
        count = lambda t: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()  # noqa: E731
        conflicts = conn.execute(sa.select(data_conflicts.c.id, data_conflicts.c.status, data_conflicts.c.chosen).order_by(data_conflicts.c.id)).all()
        return count(deliveries), count(master_data_fields), [tuple(c) for c in conflicts]


def operator(tokens: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens[OPERATOR]}"}


def known_to_both(hub: Hub, api: TestClient, tokens: dict[str, str]) -> str:
    """The Jobcenter enters a client; the municipal office takes the record in. Returns the id the
    municipal office knows the client by (the hub issued it a pseudonym)."""
    send(hub, JOBCENTER, "agency-xml", master_data(JOBCENTER, MUNICIPAL, "123D456789"))
    (first,) = take(hub, api, tokens, MUNICIPAL)
    assert first["version"] == "2.1" and first["body"]["base_version"] == 1, "the municipal office is told the revision it holds"
    return first["body"]["customer_number"]


# -- changes of different fields merge -------------------------------------------------------------------
@pytest.mark.parametrize("names_base", [True, False], ids=["municipal-names-its-base", "municipal-base-inferred"])
def test_concurrent_changes_of_different_fields_merge_and_each_side_gets_the_others(hub: Hub, api: TestClient, tokens: dict[str, str], names_base: bool) -> None:
    own_id = known_to_both(hub, api, tokens)
    # at the same time: the Jobcenter records a move, the municipal office a new telephone number --
    # and sends its whole record, with the street it still holds
    send(hub, JOBCENTER, "agency-xml", master_data(JOBCENTER, MUNICIPAL, "123D456789", street="Lindenallee"))
    municipal = master_data(MUNICIPAL, JOBCENTER, own_id, phone="+49 351 200200", **({"version": "2.1", "base": 1} if names_base else {"version": "2.0"}))
    send(hub, MUNICIPAL, "agency-xml", municipal)

    (to_jobcenter,) = inbox(hub, api, tokens, JOBCENTER)
    assert person(to_jobcenter)["contact"]["phone"] == "+49 351 200200", "the Jobcenter gets the municipal office's new number"
    assert person(to_jobcenter)["address"]["street"] == "Lindenallee", "the municipal office's old street must not undo the Jobcenter's move"
    assert to_jobcenter["body"]["customer_number"] == "123D456789", "under the Jobcenter's own Kundennummer"
    (to_municipal,) = inbox(hub, api, tokens, MUNICIPAL)
    assert person(to_municipal)["address"]["street"] == "Lindenallee" and to_municipal["body"]["customer_number"] == own_id
    assert [v[1:] for v in versions(hub, STREET)] == [("Hauptstraße", JOBCENTER), ("Lindenallee", JOBCENTER)]
    assert [v[1:] for v in versions(hub, PHONE)] == [("+49 351 100100", JOBCENTER), ("+49 351 200200", MUNICIPAL)]
    assert state(hub)[2] == [], "changes of different fields are no conflict"


def test_a_stale_record_sent_again_undoes_nothing_and_a_change_after_taking_the_other_is_accepted(hub: Hub, api: TestClient, tokens: dict[str, str]) -> None:
    """Without a revision in its messages, what the Jobcenter holds is what it sent and what it acknowledged."""
    own_id = known_to_both(hub, api, tokens)
    send(hub, MUNICIPAL, "agency-xml", master_data(MUNICIPAL, JOBCENTER, own_id, street="Birkenweg", version="2.1", base=1))
    send(hub, JOBCENTER, "agency-xml", master_data(JOBCENTER, MUNICIPAL, "123D456789", phone="+49 351 300300"))  # not read its inbox yet
    assert versions(hub, STREET)[-1][1] == "Birkenweg", "the Jobcenter's record still holds the old street: no change of it"
    take(hub, api, tokens, JOBCENTER)
    send(hub, JOBCENTER, "agency-xml", master_data(JOBCENTER, MUNICIPAL, "123D456789", street="Ahornring", phone="+49 351 300300"))
    assert versions(hub, STREET)[-1][1:] == ("Ahornring", JOBCENTER), "a change made after taking the other's is a change, not a conflict"
    assert state(hub)[2] == []


def test_a_senders_own_earlier_change_is_its_base_though_no_delivery_named_its_revision(hub: Hub, api: TestClient, tokens: dict[str, str]) -> None:
    own_id = known_to_both(hub, api, tokens)
    for street in ("Birkenweg", "Birkenweg 2a", "Hauptstraße"):  # the last one back to where it started
        send(hub, MUNICIPAL, "agency-xml", master_data(MUNICIPAL, JOBCENTER, own_id, street=street, version="2.1", base=1))
        assert versions(hub, STREET)[-1][1:] == (street, MUNICIPAL), f"{street}: a change on top of its own change"
    assert state(hub)[2] == []


# -- the same field changed twice: a conflict for an operator -----------------------------------------------
def both_change_the_street(hub: Hub, api: TestClient, tokens: dict[str, str]) -> dict[str, Any]:
    own_id = known_to_both(hub, api, tokens)
    send(hub, JOBCENTER, "agency-xml", master_data(JOBCENTER, MUNICIPAL, "123D456789", street="Lindenallee"))
    send(hub, MUNICIPAL, "agency-xml", master_data(MUNICIPAL, JOBCENTER, own_id, street="Birkenweg", version="2.1", base=1))
    r = api.get("/v1/persons/conflicts", headers=operator(tokens))
    assert r.status_code == 200, r.text
    (conflict,) = r.json()["conflicts"]
    return conflict


def test_the_same_field_changed_concurrently_waits_for_an_operator_with_both_values(hub: Hub, api: TestClient, tokens: dict[str, str]) -> None:
    conflict = both_change_the_street(hub, api, tokens)
    assert conflict["field"] == STREET and conflict["base"] == "Hauptstraße"
    assert (conflict["a"]["partner"], conflict["a"]["value"]) == (JOBCENTER, "Lindenallee")
    assert (conflict["b"]["partner"], conflict["b"]["value"]) == (MUNICIPAL, "Birkenweg")
    assert versions(hub, STREET)[-1][1] == "Lindenallee", "nothing is overwritten: the field keeps its value until the decision"
    (to_jobcenter,) = inbox(hub, api, tokens, JOBCENTER)
    assert person(to_jobcenter)["address"]["street"] == "Lindenallee", "the concurrent street is held back, not forwarded"
    assert api.get("/v1/persons/conflicts", headers={"Authorization": f"Bearer {tokens[JOBCENTER]}"}).status_code == 403, "operators only"
    own_id = inbox(hub, api, tokens, MUNICIPAL)[0]["body"]["customer_number"]
    send(hub, MUNICIPAL, "agency-xml", master_data(MUNICIPAL, JOBCENTER, own_id, street="Birkenweg 7", version="2.1", base=1))
    (again,) = api.get("/v1/persons/conflicts", headers=operator(tokens)).json()["conflicts"]
    assert again["id"] == conflict["id"] and again["b"]["value"] == "Birkenweg 7", "a side's new value replaces its side"
    assert versions(hub, STREET)[-1][1] == "Lindenallee"


def test_a_test_message_passes_as_sent_and_changes_no_version(hub: Hub, api: TestClient, tokens: dict[str, str]) -> None:
    known_to_both(hub, api, tokens)
    before = versions(hub, STREET)
    data = master_data(JOBCENTER, MUNICIPAL, "123D456789", street="Teststraße")
    data["header"]["test"] = True
    send(hub, JOBCENTER, "agency-xml", data)
    assert versions(hub, STREET) == before
    (delivered,) = inbox(hub, api, tokens, MUNICIPAL)
    assert person(delivered)["address"]["street"] == "Teststraße" and delivered["header"]["test"] is True


@pytest.mark.parametrize("pick, loser, chosen", [("b", JOBCENTER, "Birkenweg"), ("a", MUNICIPAL, "Lindenallee")])
def test_the_operators_pick_reaches_the_side_that_lost(hub: Hub, api: TestClient, tokens: dict[str, str], pick: str, loser: str, chosen: str) -> None:
    conflict = both_change_the_street(hub, api, tokens)
    take(hub, api, tokens, JOBCENTER)
    waiting = {p: len(inbox(hub, api, tokens, p)) for p in (JOBCENTER, MUNICIPAL)}
    r = api.post(f"/v1/persons/conflicts/{conflict['id']}/resolve", json={"pick": pick}, headers=operator(tokens))
    assert r.status_code == 200, r.text
    assert r.json()["forwarded_to"] == [loser] and r.json()["value"] == chosen
    decision = inbox(hub, api, tokens, loser)[-1]
    assert len(inbox(hub, api, tokens, loser)) == waiting[loser] + 1, "the side that lost gets the decision"
    assert person(decision)["address"]["street"] == chosen and decision["header"]["author"]["id"] == "hub"
    assert decision["body"]["customer_number"] == ("123D456789" if loser == JOBCENTER else inbox(hub, api, tokens, MUNICIPAL)[0]["body"]["customer_number"])
    winner = MUNICIPAL if loser == JOBCENTER else JOBCENTER
    assert len(inbox(hub, api, tokens, winner)) == waiting[winner], "the side that won holds the value already"
    assert versions(hub, STREET)[-1][1:] == (chosen, OPERATOR)
    with db.read(hub.engine) as conn:
        entry = conn.execute(sa.select(audit_log).where(audit_log.c.action == "conflict-resolved")).one()
    assert entry.actor == OPERATOR and entry.detail["conflict"] == conflict["id"] and entry.detail["chosen"] == pick
    assert api.get("/v1/persons/conflicts", headers=operator(tokens)).json()["count"] == 0
    (resolved,) = api.get("/v1/persons/conflicts", params={"status": "resolved"}, headers=operator(tokens)).json()["conflicts"]
    assert resolved["chosen"] == pick and resolved["decided_by"] == OPERATOR


# -- repeated and bad input change nothing ------------------------------------------------------------------
def test_a_resend_of_the_same_message_changes_nothing(hub: Hub, api: TestClient, tokens: dict[str, str]) -> None:
    own_id = known_to_both(hub, api, tokens)
    data = master_data(MUNICIPAL, JOBCENTER, own_id, street="Birkenweg", version="2.1", base=1)
    body = encode(hub, "agency-xml", data)
    first = ingress.accept(hub, hub.partners[MUNICIPAL], body, "application/xml")
    drain(hub)
    before = state(hub)
    again = ingress.accept(hub, hub.partners[MUNICIPAL], body, "application/xml")
    drain(hub)
    assert again.id == first.id and state(hub) == before, "the same message UUID again is the first message"
    data["header"]["message_uuid"] = "6f1c8a52-93b4-4d5e-8f0a-2b7c9d1e3f40"
    send(hub, MUNICIPAL, "agency-xml", data)
    assert versions(hub, STREET)[-1][1] == "Birkenweg" and len(versions(hub, STREET)) == 2, "the same record under a new UUID changes no version"
    assert state(hub)[2] == []


def test_resolving_an_unknown_conflict_or_one_twice_is_refused_and_changes_nothing(hub: Hub, api: TestClient, tokens: dict[str, str]) -> None:
    conflict = both_change_the_street(hub, api, tokens)
    before = state(hub)
    unknown = api.post("/v1/persons/conflicts/01JUNKNOWNCONFLICT00000000/resolve", json={"pick": "a"}, headers=operator(tokens))
    assert unknown.status_code == 404 and unknown.headers["content-type"].startswith("application/problem+json")
    assert "No data conflict" in unknown.json()["detail"]
    bad = api.post(f"/v1/persons/conflicts/{conflict['id']}/resolve", json={"pick": "c"}, headers=operator(tokens))
    assert bad.status_code == 400 and bad.headers["content-type"].startswith("application/problem+json")
    assert state(hub) == before, "refused decisions change nothing"
    assert api.post(f"/v1/persons/conflicts/{conflict['id']}/resolve", json={"pick": "b"}, headers=operator(tokens)).status_code == 200
    decided = state(hub)
    twice = api.post(f"/v1/persons/conflicts/{conflict['id']}/resolve", json={"pick": "a"}, headers=operator(tokens))
    assert twice.status_code == 409 and twice.headers["content-type"].startswith("application/problem+json")
    assert "already resolved" in twice.json()["detail"]
    assert state(hub) == decided, "the second decision changes nothing"


def test_the_command_line_lists_and_resolves_conflicts_and_refuses_in_one_line(hub: Hub, hub_env: dict[str, str], api: TestClient, tokens: dict[str, str]) -> None:
    from hub.cli import app

    conflict = both_change_the_street(hub, api, tokens)
    runner, env = CliRunner(), {**hub_env, "HUB_LOG_LEVEL": "error"}
    listed = runner.invoke(app, ["dedup", "conflicts"], env=env)
    assert listed.exit_code == 0 and conflict["id"] in listed.output and "'Birkenweg' (kreis-musterland)" in listed.output, listed.output
    unknown = runner.invoke(app, ["dedup", "resolve", "01JUNKNOWNCONFLICT00000000", "--pick", "a"], env=env)
    assert unknown.exit_code == 1 and unknown.output.strip() == "error: No data conflict 01JUNKNOWNCONFLICT00000000", unknown.output
    before = state(hub)
    assert runner.invoke(app, ["dedup", "resolve", conflict["id"], "--pick", "x"], env=env).exit_code == 2
    assert state(hub) == before
    done = runner.invoke(app, ["dedup", "resolve", conflict["id"], "--pick", "b"], env=env)
    assert done.exit_code == 0 and f"forwarded to {JOBCENTER}" in done.output, done.output
    decided = state(hub)
    twice = runner.invoke(app, ["dedup", "resolve", conflict["id"], "--pick", "a"], env=env)
    assert twice.exit_code == 1 and "already resolved" in twice.output and "Traceback" not in twice.output
    assert state(hub) == decided
