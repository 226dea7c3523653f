"""Contract versions: partners on different versions keep talking, and what a version cannot carry
is dropped by a documented policy that the message history shows."""

from __future__ import annotations

import copy

from lxml import etree

from hub.schemas.translator import VersionMap, from_canonical, to_canonical
from tests.conftest import JOBCENTER, MUNICIPAL, OTHER_PROVIDER, LiveHub, agency_sample, encode, post, provider_sample, wait_for

NS = {"fk": "urn:xoev-de:casechain:standard:fallkette"}


def test_translator_moves_round_trip_and_report_drops() -> None:
    vmap = VersionMap(moves={"ids.a": "a", "where": "person.address"}, fill={"where.country": "DE"})
    canonical = {"a": "1", "person": {"name": "X", "address": {"street": "S"}}, "extra": 5}
    versioned, dropped = from_canonical(copy.deepcopy(canonical), vmap, {"ids", "ids.a", "person", "person.name", "where", "where.street", "where.country"})
    assert versioned == {"ids": {"a": "1"}, "person": {"name": "X"}, "where": {"street": "S", "country": "DE"}}
    assert dropped == ["extra"], "a field the version cannot carry must be reported"
    back = to_canonical(versioned, vmap)
    assert back == {"a": "1", "person": {"name": "X", "address": {"street": "S", "country": "DE"}}}


def assign_to(live: LiveHub, provider: str) -> str:
    data = agency_sample("zuweisung.anmeldung.1020")
    data["header"]["reader"] = {"id": provider}
    with live.client(JOBCENTER) as jc, live.client(provider) as pr:
        assert post(jc, encode(live.hub, "agency-xml", data), "agency-xml").status_code == 202
        (delivery,) = wait_for(pr, "zuweisung.anmeldung.1020")
        pr.post(f"/v1/inbox/{delivery['id']}/ack")
        return delivery["body"]["body"]["caseId"]


def test_provider_on_1_1_reaches_jobcenter_on_1_0_and_history_shows_the_drop(live_hub: LiveHub) -> None:
    case_id = assign_to(live_hub, OTHER_PROVIDER)  # traeger-lernwerkstatt speaks 1.1
    report = provider_sample("teilnahme.mitwirkung.2040", case_id)
    report["header"]["author"] = {"id": OTHER_PROVIDER}
    report["header"]["version"] = "1.1"
    body = encode(live_hub.hub, "provider-json", report)
    assert b'"contactAttempts"' in body and b'"version": "1.1"' in body
    with live_hub.client(OTHER_PROVIDER) as pr, live_hub.client(JOBCENTER) as jc:
        r = post(pr, body, "provider-json")
        assert r.status_code == 202, r.text
        (delivery,) = wait_for(jc, "teilnahme.mitwirkung.2040")
        assert delivery["version"] == "1.0"
        root = etree.fromstring(delivery["body"].encode())
        assert root.get("version") == "1.0", "the Jobcenter must receive its own version"
        assert root.find("fk:kontaktversuch", NS) is None, "1.0 cannot carry contact attempts"
        assert root.findtext("fk:sachverhalt", namespaces=NS) == report["body"]["facts"]
        history = pr.get(f"/v1/messages/{r.json()['id']}").json()["history"]
    translated = [e for e in history if e["event"] == "translated"]
    assert translated and translated[0]["detail"]["dropped"] == ["contact_attempts"], f"the drop must be in the history: {history}"


def test_hub_accepts_1_0_input_from_a_partner_on_1_1(live_hub: LiveHub) -> None:
    case_id = assign_to(live_hub, OTHER_PROVIDER)
    report = provider_sample("teilnahme.anwesenheit.2030", case_id)
    report["header"]["author"] = {"id": OTHER_PROVIDER}
    report["body"].pop("week_absences")
    with live_hub.client(OTHER_PROVIDER) as pr, live_hub.client(JOBCENTER) as jc:
        r = post(pr, encode(live_hub.hub, "provider-json", report), "provider-json")
        assert r.status_code == 202, r.text
        wait_for(jc, "teilnahme.anwesenheit.2030")


def test_master_data_1_0_reaches_municipal_office_on_2_x_restructured(live_hub: LiveHub) -> None:
    data = agency_sample("person.stammdaten.0100")
    with live_hub.client(JOBCENTER) as jc, live_hub.client(MUNICIPAL) as kr:
        r = post(jc, encode(live_hub.hub, "agency-xml", data), "agency-xml")
        assert r.status_code == 202, r.text
        (delivery,) = wait_for(kr, "person.stammdaten.0100")
    root = etree.fromstring(delivery["body"].encode())
    assert root.get("version") == "2.1", "the municipal office's profile pins 2.1"
    # the municipal office does not know the person yet: it gets the hub's pseudonym for it, never the
    # Jobcenter's Kundennummer (tests/test_identity.py), in 2.0's identifikation group
    assert (root.findtext("fk:identifikation/fk:kundennummer", namespaces=NS) or "").startswith("HUB")
    assert root.find("fk:person/fk:anschrift", NS) is None, "2.0 moved the address out of person"
    assert root.findtext("fk:wohnanschrift/fk:postleitzahl", namespaces=NS) == "01067"
    assert root.findtext("fk:wohnanschrift/fk:staat", namespaces=NS) == "DE", "the documented default for 1.0 input"


def test_master_data_2_0_reaches_jobcenter_on_1_0(live_hub: LiveHub) -> None:
    data = agency_sample("person.stammdaten.0100")
    data["header"].update(author={"id": MUNICIPAL}, reader={"id": JOBCENTER}, version="2.0")
    data["body"]["person"]["address"]["country"] = "AT"
    body = encode(live_hub.hub, "agency-xml", data)
    assert b"<fk:wohnanschrift>" in body
    with live_hub.client(MUNICIPAL) as kr, live_hub.client(JOBCENTER) as jc:
        r = post(kr, body, "agency-xml")
        assert r.status_code == 202, r.text
        (delivery,) = wait_for(jc, "person.stammdaten.0100")
        history = kr.get(f"/v1/messages/{r.json()['id']}").json()["history"]
    root = etree.fromstring(delivery["body"].encode())
    assert root.get("version") == "1.0"
    assert root.findtext("fk:person/fk:anschrift/fk:ort", namespaces=NS) == "Dresden"
    assert root.find("fk:person/fk:anschrift/fk:staat", NS) is None
    assert any(e["event"] == "translated" and e["detail"]["dropped"] == ["person.address.country"] for e in history), history
