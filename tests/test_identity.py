"""Identity resolution in the pipeline: the same person from several systems is one person in the
master person index; look-alikes stay apart; uncertain matches wait for an operator; duplicate
reports are recognised and not delivered twice."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from hub import pipeline
from hub.store import db
from hub.api.app import create_app
from hub.runtime import Hub
from hub.store.tables import deliveries, message_events, messages, person_records, persons
from tests.conftest import JOBCENTER, MUNICIPAL, OPERATOR, PROVIDER, agency_sample, provider_sample, send


def master_data(sender: str, reader: str, customer: str, **person) -> dict:
    data = agency_sample("person.stammdaten.0100")
    data["header"].update(author={"id": sender}, reader={"id": reader})
    data["body"]["customer_number"] = customer
    data["body"].pop("bg_number", None)
    data["body"]["person"].update(person)
    return data


def resolution(hub: Hub, message_id: str) -> dict:
    with db.read(hub.engine) as conn:
        row = conn.execute(
            sa.select(message_events.c.detail).where(message_events.c.message_id == message_id, message_events.c.event == "resolved")
        ).first()
    assert row is not None, "the message history must say how the person was resolved"
    return row.detail


def person_count(hub: Hub) -> int:
    with db.read(hub.engine) as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(persons).where(persons.c.merged_into.is_(None))).scalar_one()


def test_the_same_person_from_two_systems_is_one_person_with_both_ids(hub: Hub) -> None:
    first = send(hub, JOBCENTER, "agency-xml", master_data(JOBCENTER, MUNICIPAL, "123D456789", given_name="Jürgen", family_name="Müller"))
    second = send(hub, MUNICIPAL, "agency-xml", master_data(MUNICIPAL, JOBCENTER, "777K000077", given_name="Juergen", family_name="Mueller"))
    a, b = resolution(hub, first), resolution(hub, second)
    assert a["decision"] == "new" and b["decision"] == "match", (a, b)
    assert a["person"] == b["person"], "Müller and Mueller with the same birth date and address are one person"
    with db.read(hub.engine) as conn:
        xref = {(r.partner_id, r.local_id) for r in conn.execute(sa.select(person_records).where(person_records.c.person_id == a["person"]))}
    issued = {(p, i) for p, i in xref if i.startswith("HUB")}
    assert xref - issued == {(JOBCENTER, "123D456789"), (MUNICIPAL, "777K000077")}
    assert [p for p, _ in issued] == [MUNICIPAL], "the municipal office was given a pseudonym with the first master data, and it is filed"


def delivered_id(hub: Hub, message_id: str, recipient: str) -> str:
    """The Kundennummer field of a person.stammdaten delivery, as the recipient reads it."""
    import re

    with db.read(hub.engine) as conn:
        body = conn.execute(
            sa.select(deliveries.c.body).where(deliveries.c.message_id == message_id, deliveries.c.recipient == recipient, deliveries.c.message_type == "person.stammdaten.0100")
        ).scalar_one()
    (value,) = re.findall(rb"<[^>]*[Kk]undennummer[^>]*>([^<]*)<", body)
    return value.decode()


def test_each_recipient_gets_the_person_under_its_own_id_never_the_senders(hub: Hub) -> None:
    person = dict(given_name="Lukas", family_name="Schneider", birth_date="2004-11-20")
    municipal = send(hub, MUNICIPAL, "agency-xml", master_data(MUNICIPAL, JOBCENTER, "777K000077", **person))
    issued = delivered_id(hub, municipal, JOBCENTER)
    assert issued.startswith("HUB") and issued != "777K000077", f"the Jobcenter did not know the person: it gets a pseudonym, not the municipal id ({issued})"
    jobcenter = send(hub, JOBCENTER, "agency-xml", master_data(JOBCENTER, MUNICIPAL, "123D000002", **person))
    assert delivered_id(hub, jobcenter, MUNICIPAL) == "777K000077", "the municipal office knows the person as 777K000077"
    update = send(hub, MUNICIPAL, "agency-xml", master_data(MUNICIPAL, JOBCENTER, "777K000077", **person))
    assert delivered_id(hub, update, JOBCENTER) == "123D000002", "the Jobcenter knows the person by its Kundennummer now"


def test_what_a_recipient_sends_back_under_its_pseudonym_is_the_same_person(hub: Hub) -> None:
    first = send(hub, JOBCENTER, "agency-xml", master_data(JOBCENTER, MUNICIPAL, "123D000003", given_name="Mia", family_name="Wolf", birth_date="1990-01-02"))
    pseudonym = delivered_id(hub, first, MUNICIPAL)
    back = send(hub, MUNICIPAL, "agency-xml", master_data(MUNICIPAL, JOBCENTER, pseudonym, given_name="Mia", family_name="Wolf-Berger", birth_date="1990-01-02"))
    assert resolution(hub, back)["decision"] == "known" and resolution(hub, back)["person"] == resolution(hub, first)["person"]
    assert delivered_id(hub, back, JOBCENTER) == "123D000003"


def test_a_resend_under_the_same_local_id_updates_the_record(hub: Hub) -> None:
    send(hub, JOBCENTER, "agency-xml", master_data(JOBCENTER, MUNICIPAL, "123D456789"))
    again = send(hub, JOBCENTER, "agency-xml", master_data(JOBCENTER, MUNICIPAL, "123D456789", family_name="Schmidt"))
    assert resolution(hub, again)["decision"] == "known"
    assert person_count(hub) == 1


def test_household_member_at_the_same_address_is_another_person(hub: Hub) -> None:
    send(hub, JOBCENTER, "agency-xml", master_data(JOBCENTER, MUNICIPAL, "123D456789", given_name="Jürgen", birth_date="1978-03-09"))
    child = send(hub, JOBCENTER, "agency-xml", master_data(JOBCENTER, MUNICIPAL, "123D456790", given_name="Lena", birth_date="2009-07-21"))
    assert resolution(hub, child)["decision"] in ("new", "review")
    assert person_count(hub) == 2, "a child at the same address with the same family name must not be linked"


def test_household_members_sharing_a_bg_nummer_stay_two_persons(hub: Hub) -> None:
    """The BG-Nummer names the Bedarfsgemeinschaft, not a person: a mother and her son under one
    BG-Nummer, with their own Kundennummern, are two persons -- and a municipal record of the son is
    the son, not the mother."""
    mother = master_data(JOBCENTER, MUNICIPAL, "123D000001", given_name="Anna", family_name="Schneider", birth_date="1980-03-04")
    son = master_data(JOBCENTER, MUNICIPAL, "123D000002", given_name="Lukas", family_name="Schneider", birth_date="2004-11-20")
    for data in (mother, son):
        data["body"]["bg_number"] = "12301BG0000001"
    first, second = send(hub, JOBCENTER, "agency-xml", mother), send(hub, JOBCENTER, "agency-xml", son)
    a, b = resolution(hub, first), resolution(hub, second)
    assert b["decision"] in ("new", "review") and a["person"] != b["person"], f"the son was linked to his mother by their BG-Nummer: {b}"
    again = master_data(MUNICIPAL, JOBCENTER, "777K000077", given_name="Lukas", family_name="Schneider", birth_date="2004-11-20")
    again["body"]["bg_number"] = "12301BG0000001"
    c = resolution(hub, send(hub, MUNICIPAL, "agency-xml", again))
    assert c["person"] == b["person"], f"the municipal record of the son must be the son ({c}), not his mother ({a['person']})"


def test_ids_that_conflict_in_one_scheme_are_evidence_against_whatever_another_scheme_says() -> None:
    """Comparison level of the ids concept: equal only if every scheme both carry agrees."""
    from hub.dedup.compare import LEVELS, compare_pairs
    from hub.dedup.records import PersonRecord, RecordTable, Vocabulary
    import numpy as np

    vocab = Vocabulary()
    a = RecordTable(vocab, [PersonRecord(record_id="a", family_name="X", ids={"kundennummer": "1", "other": "7"})])
    b = RecordTable(vocab, [PersonRecord(record_id="b", family_name="X", ids={"kundennummer": "2", "other": "7"})])
    level = compare_pairs(a, np.array([0]), b, np.array([0]))[0, 4]
    assert LEVELS["ids"][level] == "different"


def own_ids(person: dict) -> list[str]:
    """The partners' own ids of a person view, without the pseudonyms the hub issued to recipients."""
    return sorted(x["local_id"] for x in person["xref"] if not x["local_id"].startswith("HUB"))


@pytest.fixture
def operator_client(hub: Hub, tokens: dict[str, str]) -> TestClient:
    client = TestClient(create_app(hub, role="api"))
    client.headers["Authorization"] = f"Bearer {tokens[OPERATOR]}"
    return client


def test_uncertain_match_waits_for_review_and_merge_unmerge_keep_every_link(hub: Hub, tokens: dict[str, str], operator_client: TestClient) -> None:
    send(hub, JOBCENTER, "agency-xml", master_data(JOBCENTER, MUNICIPAL, "123D456789", given_name="Jürgen", family_name="Müller", birth_date="1978-03-09"))
    # (the municipal office's own client number is no Kundennummer: no id evidence either way)
    moved = master_data(MUNICIPAL, JOBCENTER, "999X000001", given_name="Jürgen", family_name="Möller", birth_date="1988-03-19")
    moved["body"]["person"]["address"] = {"street": "Am Markt", "house_number": "1", "postcode": "04109", "city": "Leipzig"}
    moved["body"]["person"].pop("birth_name")
    uncertain = send(hub, MUNICIPAL, "agency-xml", moved)
    decision = resolution(hub, uncertain)
    assert decision["decision"] == "review", f"similar name, another birth date and address: a human decides ({decision})"

    provider = TestClient(create_app(hub, role="api"))
    r = provider.get("/v1/persons/reviews", headers={"Authorization": f"Bearer {tokens[PROVIDER]}"})
    assert r.status_code == 403, "providers may not query the person index"

    (review,) = operator_client.get("/v1/persons/reviews").json()["reviews"]
    assert review["record"]["birth_date"] == "1988-03-19" and review["comparison"]["birth_date"]["level"] == "different"
    assert operator_client.post(f"/v1/persons/reviews/{review['id']}/confirm").status_code == 200
    assert operator_client.post(f"/v1/persons/reviews/{review['id']}/confirm").status_code == 409, "a decision is final"
    target = review["candidate"]["person_id"]
    merged = operator_client.get(f"/v1/persons/{target}").json()
    assert own_ids(merged) == ["123D456789", "999X000001"] and any(e["action"] == "merged" for e in merged["history"])

    source = decision["person"]
    restored = operator_client.post(f"/v1/persons/{source}/unmerge").json()
    assert own_ids(restored) == ["999X000001"], "unmerge must give the record back"
    after = operator_client.get(f"/v1/persons/{target}").json()
    assert own_ids(after) == ["123D456789"]
    assert [e["action"] for e in after["history"]].count("merged") == 1 and any(e["action"] == "unmerged" for e in after["history"]), "history must keep both"


def test_duplicate_report_is_recognised_and_not_delivered_twice(hub: Hub) -> None:
    send(hub, JOBCENTER, "agency-xml", agency_sample("zuweisung.anmeldung.1020"))
    with db.read(hub.engine) as conn:
        body = conn.execute(sa.select(deliveries.c.body).where(deliveries.c.recipient == PROVIDER, deliveries.c.message_type == "zuweisung.anmeldung.1020")).scalar_one()
    import json

    case_id = json.loads(body)["body"]["caseId"]
    report = provider_sample("teilnahme.mitwirkung.2040", case_id)
    first = send(hub, PROVIDER, "provider-json", report)
    report["header"]["message_uuid"] = provider_sample("teilnahme.mitwirkung.2040", case_id)["header"]["message_uuid"]
    second = send(hub, PROVIDER, "provider-json", report)
    with db.read(hub.engine) as conn:
        statuses = dict(conn.execute(sa.select(messages.c.id, messages.c.status).where(messages.c.id.in_([first, second]))).all())
        to_jobcenter = conn.execute(
            sa.select(sa.func.count()).select_from(deliveries).where(deliveries.c.recipient == JOBCENTER, deliveries.c.message_type == "teilnahme.mitwirkung.2040")
        ).scalar_one()
        why = conn.execute(sa.select(message_events.c.detail).where(message_events.c.message_id == second, message_events.c.event == "duplicate")).scalar_one()
    assert statuses == {first: "routed", second: "duplicate"}
    assert to_jobcenter == 1, "the Jobcenter must get the report once"
    assert why["of"] == first, "the history must name the first message"


def test_operators_work_the_review_queue_from_the_cli(hub: Hub, hub_env: dict[str, str]) -> None:
    import json
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    send(hub, JOBCENTER, "agency-xml", master_data(JOBCENTER, MUNICIPAL, "123D456789", given_name="Jürgen", family_name="Müller", birth_date="1978-03-09"))
    similar = master_data(MUNICIPAL, JOBCENTER, "999X000001", given_name="Jürgen", family_name="Möller", birth_date="1988-03-19")
    similar["body"]["person"]["address"] = {"street": "Am Markt", "house_number": "1", "postcode": "04109", "city": "Leipzig"}
    similar["body"]["person"].pop("birth_name")
    send(hub, MUNICIPAL, "agency-xml", similar)
    env = {**os.environ, **hub_env}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "hub.cli", "dedup", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)

    listed = cli("reviews", "--json")
    assert listed.returncode == 0, listed.stderr
    (review,) = json.loads(listed.stdout)
    rejected = cli("reject", review["id"])
    assert rejected.returncode == 0 and "kept apart" in rejected.stdout, rejected.stderr
    again = cli("reject", review["id"])
    assert again.returncode == 1 and again.stderr.startswith("error: ") and len(again.stderr.splitlines()) == 1, again.stderr
    assert cli("reviews", "--json").stdout.strip() == "[]"


def test_a_refused_message_leaves_no_partial_deliveries(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    """A refusal in a late stage must undo what earlier stages already wrote for the message."""
    from hub.findings import Refusal

    def refuse_after_delivering(hub_, conn, ctx) -> None:  # noqa: ANN001
        raise Refusal("business-rule", "refused after the deliveries were written")

    monkeypatch.setattr(pipeline, "STAGES", [*pipeline.STAGES, refuse_after_delivering])
    message_id = send(hub, JOBCENTER, "agency-xml", agency_sample("zuweisung.anmeldung.1020"))
    with db.read(hub.engine) as conn:
        kinds = [r.message_type for r in conn.execute(sa.select(deliveries.c.message_type).where(deliveries.c.message_id == message_id))]
        status = conn.execute(sa.select(messages.c.status).where(messages.c.id == message_id)).scalar_one()
    assert status == "rejected"
    assert kinds == ["administration.rueckweisung.0010"], f"only the rejection may remain, found {kinds}"


def test_hub_dedup_batch_is_on_the_public_cli(tmp_path) -> None:  # noqa: ANN001
    import subprocess
    import sys

    from tests.conftest import ROOT

    src = tmp_path / "personen.csv"
    src.write_bytes("id;vorname;nachname;geburtsdatum;plz\n1;Jürgen;Müller;09.03.1978;01067\n2;Juergen;Mueller;09.03.1978;01067\n3;Anna;Schmidt;01.01.1990;04109\n".encode("iso-8859-15"))
    out = tmp_path / "paare.csv"
    r = subprocess.run(
        [sys.executable, "-m", "hub.cli", "dedup", "batch", str(src), "--columns", "record_id=id,given_name=vorname,family_name=nachname,birth_date=geburtsdatum,postcode=plz", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, r.stderr
    rows = out.read_text().splitlines()
    assert rows[0] == "id_a,id_b,score,decision" and rows[1].startswith("1,2,") and rows[1].endswith(",match"), rows


def test_a_municipal_client_number_is_not_compared_with_a_kundennummer(hub: Hub) -> None:
    """The customer_number of a Jobcenter is the BA Kundennummer; a municipal office's is its own
    client number. Compared as one id scheme they would count every true match as 'ids different'."""
    index = hub.person_index
    body = master_data(MUNICIPAL, JOBCENTER, "777K000077")["body"]
    assert "kundennummer" not in index.subject("person.stammdaten.0100", body, "municipal")[1].get("ids", {})
    assert index.subject("person.stammdaten.0100", body, "jobcenter")[1]["ids"] == {"kundennummer": "777K000077"}
    person = dict(given_name="Lukas", family_name="Schneider", birth_date="2004-11-20")
    send(hub, JOBCENTER, "agency-xml", master_data(JOBCENTER, MUNICIPAL, "123D000002", **person))
    same = resolution(hub, send(hub, MUNICIPAL, "agency-xml", master_data(MUNICIPAL, JOBCENTER, "777K000077", **person)))
    assert same["decision"] == "match" and same["weight"] > 40, f"the same person from the municipal office lost its id evidence: {same}"


def test_a_pseudonym_the_hub_issued_is_no_evidence_about_the_person(hub: Hub) -> None:
    """The hub's pseudonym record for a recipient is a copy of what it was given: a correction by the
    sender is not scored against that stale copy of itself (it would split the person off), and a
    re-filing of the index gives the copy no blocking keys."""
    from hub.store.tables import person_keys

    first = send(hub, MUNICIPAL, "agency-xml", master_data(MUNICIPAL, JOBCENTER, "777K000077", given_name="Lukas", family_name="Schneider", birth_date="2004-11-20"))
    issued = delivered_id(hub, first, JOBCENTER)
    corrected = master_data(MUNICIPAL, JOBCENTER, "777K000077", given_name="Lukas", family_name="Schneider", birth_date="2004-02-11")
    corrected["body"]["person"]["address"] = {"street": "Am Markt", "house_number": "1", "postcode": "04109", "city": "Leipzig"}
    again = send(hub, MUNICIPAL, "agency-xml", corrected)
    assert resolution(hub, again)["decision"] == "known", "the sender's correction was split off against the hub's own copy"
    assert delivered_id(hub, again, JOBCENTER) == issued, "the Jobcenter keeps the one pseudonym it was given"
    hub.person_index.refresh(hub.engine)
    with db.read(hub.engine) as conn:
        record_id = conn.execute(sa.select(person_records.c.id).where(person_records.c.local_id == issued)).scalar_one()
        keys = conn.execute(sa.select(sa.func.count()).select_from(person_keys).where(person_keys.c.record_id == record_id)).scalar_one()
    assert keys == 0, "refresh gave the issued pseudonym blocking keys: it would be matched as a candidate"
