"""The full message catalogue of the case chain (domain.md): every type in 1.0, its code lists as data,
and one client's whole chain through the pipeline, from the contact request to the monthly invoice."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from lxml import etree
from pydantic import ValidationError

from hub.store import db
from hub.endpoints import ingress
from hub.adapters import get_adapter
from hub.canonical import BODY_TYPES, Message
from hub.findings import Refusal
from hub.runtime import Hub
from hub.samples import samples
from hub.interface.generate import fields_of
from hub.schemas.registry import Registry
from hub.store.tables import deliveries, messages
from tests.conftest import CONTRACTS, JOBCENTER, OTHER_PROVIDER, PROVIDER, agency_sample, drain, encode, provider_sample, send

REGISTRY = Registry(CONTRACTS)
CATALOGUE = [
    "person.stammdaten.0100",
    "zuweisung.kontakt.1010",
    "zuweisung.anmeldung.1020",
    "zuweisung.rueckmeldung.1030",
    "teilnahme.eintritt.2010",
    "teilnahme.aenderung.2020",
    "teilnahme.anwesenheit.2030",
    "teilnahme.mitwirkung.2040",
    "teilnahme.austritt.2050",
    "bericht.beurteilung.3010",
    "abrechnung.monat.4010",
    "administration.quittung.0020",
    "administration.rueckweisung.0010",
    "steuerung.aufgabe.5010",  # the hub's own: tasks of the case chain to the owner's system
]
#: person master data carries the agency identifiers: agency and municipal partners only
FORMATS = [(t, f) for t in CATALOGUE for f in ("agency-xml", "provider-json") if not (t.startswith("person.") and f == "provider-json")]
AGENCY_IDS = ("customerNumber", "bgNumber", "customer_number", "bg_number", "123D456789", "123D456790", "12345BG0000001")


# -- the catalogue as data ------------------------------------------------------------------------
def test_the_catalogue_has_the_13_types_of_the_domain_and_the_hubs_task_message() -> None:
    assert sorted(BODY_TYPES) == sorted(CATALOGUE)
    assert sorted(REGISTRY.types) == sorted(CATALOGUE)
    codes = yaml.safe_load((CONTRACTS / "codelists" / "nachrichtentyp.yaml").read_text(encoding="utf-8"))["codes"]
    assert sorted(codes) == sorted(CATALOGUE), "the code list nachrichtentyp must name every type"


@pytest.mark.parametrize(("message_type", "fmt"), FORMATS, ids=[f"{t}-{f}" for t, f in FORMATS])
def test_every_type_exists_in_1_0_with_an_example_that_validates_and_round_trips(message_type: str, fmt: str) -> None:
    contract = REGISTRY.contracts.get((message_type, "1.0", fmt))
    assert contract is not None, f"{message_type} 1.0 {fmt} missing"
    assert contract.examples, f"{message_type} 1.0 {fmt} has no example"
    adapter = get_adapter(CONTRACTS, fmt)
    for path in contract.examples:
        data = path.read_bytes()
        assert not REGISTRY.validate(contract, adapter.parse(data)), f"{path} does not validate"
        assert adapter.encode(adapter.decode(data)) == data, f"{path}: decode -> encode changed the bytes"


@pytest.mark.parametrize("message_type", CATALOGUE)
def test_every_contract_yaml_declares_title_direction_compatibility_and_a_change_note(message_type: str) -> None:
    meta = yaml.safe_load((CONTRACTS / "messages" / message_type / "contract.yaml").read_text(encoding="utf-8"))
    assert meta["message_type"] == message_type
    assert meta["title"] and meta["direction"] and meta["description"]
    assert meta["compatibility"] == "BACKWARD"
    assert meta["versions"]["1.0"]["changes"]


def _codelists_used() -> set[str]:
    seen: set[str] = set()

    def walk(model: Any) -> None:
        for spec in fields_of(model):
            if spec.codelist:
                seen.add(spec.codelist)
            if spec.model is not None:
                walk(spec.model)

    for body in BODY_TYPES.values():
        walk(body)
    return seen


@pytest.mark.parametrize("name", sorted(_codelists_used()))
def test_every_code_field_is_bound_to_a_code_list_kept_as_data(name: str) -> None:
    path = CONTRACTS / "codelists" / f"{name}.yaml"
    assert path.exists(), f"code list {name} missing"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert data["listURI"] == f"urn:casechain:codeliste:{name}"
    assert str(data["listVersionID"]) == "1"
    assert data["codes"] and all(isinstance(v, str) and v for v in data["codes"].values()), "every code needs its meaning"


def test_the_decline_reasons_are_those_of_the_agency_exchange() -> None:
    codes = yaml.safe_load((CONTRACTS / "codelists" / "absagegrund.yaml").read_text(encoding="utf-8"))["codes"]
    assert len(codes) == 6, "not appeared, participant refuses, provider refuses, work, training, contact attempts failed"


def test_a_change_of_participation_cannot_even_carry_a_sanction() -> None:
    fields = {s.name for s in fields_of(BODY_TYPES["teilnahme.aenderung.2020"])}
    assert not {f for f in fields if any(w in f for w in ("sanction", "minderung", "reduction", "benefit"))}, fields
    schema = json.loads(REGISTRY.contracts[("teilnahme.aenderung.2020", "1.0", "provider-json")].schema_path.read_text(encoding="utf-8"))
    assert not [p for p in schema["properties"]["body"]["properties"] if any(w in p.lower() for w in ("sanction", "reduction", "benefit"))]
    xsd = etree.parse(str(REGISTRY.contracts[("teilnahme.aenderung.2020", "1.0", "agency-xml")].schema_path))
    names = [e.get("name").lower() for e in xsd.iter("{http://www.w3.org/2001/XMLSchema}element")]
    assert not [n for n in names if "minderung" in n or "sanktion" in n], names


def test_provider_contracts_of_the_new_types_never_carry_agency_ids() -> None:
    for message_type in CATALOGUE:
        contract = REGISTRY.contracts.get((message_type, "1.0", "provider-json"))
        if contract is not None:
            text = contract.schema_path.read_text(encoding="utf-8")
            assert "customerNumber" not in text and "bgNumber" not in text, message_type


# -- the canonical model's own rules ---------------------------------------------------------------
def _build(message_type: str, **body: Any) -> Message:
    data = samples("provider-json")[message_type]
    data["body"].update(body)
    return Message.build(data["header"], {k: v for k, v in data["body"].items() if v is not None})


@pytest.mark.parametrize(
    ("message_type", "body"),
    [
        ("zuweisung.rueckmeldung.1030", {"answer": "absage"}),
        ("zuweisung.rueckmeldung.1030", {"answer": "zusage", "decline_reason": "nicht_erschienen"}),
        ("teilnahme.eintritt.2010", {"started": False}),
        ("teilnahme.eintritt.2010", {"started": True, "start_date": None}),
        ("teilnahme.aenderung.2020", {"change_kind": "verlaengerung"}),
        ("teilnahme.aenderung.2020", {"change_kind": "stornierung"}),  # a feedback_uuid belongs to a decision
        ("teilnahme.austritt.2050", {"exit_kind": "regulaer"}),  # a dropout reason belongs to a drop-out
        ("bericht.beurteilung.3010", {"assessment": [{"criterion": "puenktlichkeit"}]}),
        ("bericht.beurteilung.3010", {"period_end": "2026-11-30"}),
        ("bericht.beurteilung.3010", {"attachment": {"media_type": "application/pdf", "file_name": "a.pdf", "content": "aGFsbG8="}}),
        ("abrechnung.monat.4010", {"total_amount": "1.00"}),
        ("abrechnung.monat.4010", {"participant_days_total": 1}),
    ],
)
def test_the_model_refuses_what_contradicts_itself(message_type: str, body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _build(message_type, **body)


def test_a_report_without_the_date_it_was_shown_to_the_participant_is_not_a_report() -> None:
    data = samples("provider-json")["bericht.beurteilung.3010"]
    data["body"].pop("shown_to_participant_on")
    with pytest.raises(ValidationError, match="shownToParticipantOn"):
        Message.build(data["header"], data["body"])


# -- one client's whole chain ----------------------------------------------------------------------
def delivered(hub: Hub, message_id: str) -> dict[str, dict[str, Any]]:
    """The deliveries a message caused, by recipient (quittung and rueckweisung left out)."""
    with db.read(hub.engine) as conn:
        rows = conn.execute(
            sa.select(deliveries).where(deliveries.c.message_id == message_id, ~deliveries.c.message_type.like("administration.%"))
        ).all()
        status = conn.execute(sa.select(messages.c.status).where(messages.c.id == message_id)).scalar_one()
    assert status == "routed", f"message {message_id} is {status}"
    out = {}
    for row in rows:
        body = row.body.decode("utf-8") if isinstance(row.body, bytes) else row.body
        out[row.recipient] = {"type": row.message_type, "format": row.format, "purpose": row.purpose, "text": body,
                              "json": json.loads(body) if row.format == "provider-json" else None}
    return out


def rueckweisung(hub: Hub, message_id: str, sender: str) -> dict[str, Any]:
    with db.read(hub.engine) as conn:
        status = conn.execute(sa.select(messages.c.status).where(messages.c.id == message_id)).scalar_one()
        body = conn.execute(
            sa.select(deliveries.c.body).where(
                deliveries.c.message_id == message_id, deliveries.c.recipient == sender,
                deliveries.c.message_type == "administration.rueckweisung.0010",
            )
        ).scalar_one()
    assert status == "rejected"
    return json.loads(body)["body"]


def to_jobcenter(hub: Hub, message_id: str, message_type: str) -> str:
    got = delivered(hub, message_id)
    assert set(got) == {JOBCENTER}, f"{message_type} must reach the Jobcenter only, reached {sorted(got)}"
    d = got[JOBCENTER]
    assert d["type"] == message_type and d["format"] == "agency-xml" and d["text"].lstrip().startswith("<?xml")
    return d["text"]


def to_provider(hub: Hub, message_id: str, message_type: str) -> dict[str, Any]:
    got = delivered(hub, message_id)
    assert set(got) == {PROVIDER}, f"{message_type} must reach the assigned provider only, reached {sorted(got)}"
    d = got[PROVIDER]
    assert d["type"] == message_type and d["format"] == "provider-json" and d["purpose"] == "massnahmedurchfuehrung"
    for secret in AGENCY_IDS:
        assert secret not in d["text"], f"{message_type}: the provider received {secret}"
    return d["json"]["body"]


def test_one_clients_whole_chain_from_contact_request_to_invoice(hub: Hub) -> None:
    # 1010: the Jobcenter asks the provider to contact its client; the case chain opens
    kontakt = agency_sample("zuweisung.kontakt.1010")
    body = to_provider(hub, send(hub, JOBCENTER, "agency-xml", kontakt), "zuweisung.kontakt.1010")
    case_id = body["caseId"]
    assert body["participant"]["familyName"] == "Müller-Lüdenscheidt" and body["answerBy"] == "2026-11-16"

    # 1030: the provider accepts; the Jobcenter reads it under its Kundennummer
    zusage = provider_sample("zuweisung.rueckmeldung.1030", case_id)
    zusage["header"]["reference_uuid"] = kontakt["header"]["message_uuid"]
    xml = to_jobcenter(hub, send(hub, PROVIDER, "provider-json", zusage), "zuweisung.rueckmeldung.1030")
    assert "<fk:kundennummer>123D456789</fk:kundennummer>" in xml and case_id not in xml
    assert "<fk:code>zusage</fk:code>" in xml and kontakt["header"]["message_uuid"] in xml

    # 1020: the assignment joins the same case, under the same pseudonym
    body = to_provider(hub, send(hub, JOBCENTER, "agency-xml", agency_sample("zuweisung.anmeldung.1020")), "zuweisung.anmeldung.1020")
    assert body["caseId"] == case_id, "the assignment must concern the case the contact request opened"

    # 2010, 2030, 2040: start, attendance, cooperation feedback
    xml = to_jobcenter(hub, send(hub, PROVIDER, "provider-json", provider_sample("teilnahme.eintritt.2010", case_id)), "teilnahme.eintritt.2010")
    assert "<fk:eingetreten>true</fk:eingetreten>" in xml and "<fk:kundennummer>123D456789</fk:kundennummer>" in xml
    to_jobcenter(hub, send(hub, PROVIDER, "provider-json", provider_sample("teilnahme.anwesenheit.2030", case_id)), "teilnahme.anwesenheit.2030")
    feedback = provider_sample("teilnahme.mitwirkung.2040", case_id)
    to_jobcenter(hub, send(hub, PROVIDER, "provider-json", feedback), "teilnahme.mitwirkung.2040")

    # 2020: the case manager's decision goes back to the provider: the decision, nothing about its
    # benefit consequence (not in the model), and not the agency's free text either
    decision = agency_sample(
        "teilnahme.aenderung.2020",
        change_kind="entscheidung_fortsetzung",
        feedback_uuid=feedback["header"]["message_uuid"],
        remark="Intern: Leistungsminderung um 10 Prozent geprüft.",
    )
    decision["header"]["reference_uuid"] = feedback["header"]["message_uuid"]
    body = to_provider(hub, send(hub, JOBCENTER, "agency-xml", decision), "teilnahme.aenderung.2020")
    assert body["caseId"] == case_id and body["changeKind"] == "entscheidung_fortsetzung"
    assert body["feedbackUuid"] == feedback["header"]["message_uuid"]
    assert "remark" not in body, "the agency's remark must stay inside the agency"

    # 3010: a report not shown to the participant is refused at its location; shown, it is forwarded
    unshown = json.loads(encode(hub, "provider-json", provider_sample("bericht.beurteilung.3010", case_id)))
    del unshown["body"]["shownToParticipantOn"]  # as a provider's own software would write it
    with pytest.raises(Refusal) as refused:
        ingress.accept(hub, hub.partners[PROVIDER], json.dumps(unshown).encode(), "application/json")
    assert refused.value.kind == "schema-invalid"
    assert [(f.location, "shownToParticipantOn" in f.message) for f in refused.value.findings] == [("/body", True)], refused.value.findings
    report = provider_sample("bericht.beurteilung.3010", case_id)
    xml = to_jobcenter(hub, send(hub, PROVIDER, "provider-json", report), "bericht.beurteilung.3010")
    assert "<fk:teilnehmerVorgelegtAm>2027-03-02</fk:teilnehmerVorgelegtAm>" in xml
    assert report["body"]["attachment"]["content"] in xml, "the PDF must arrive unchanged"

    # 2050: exit with drop-out reason and destination
    xml = to_jobcenter(hub, send(hub, PROVIDER, "provider-json", provider_sample("teilnahme.austritt.2050", case_id)), "teilnahme.austritt.2050")
    assert "<fk:code>arbeitsaufnahme</fk:code>" in xml and "<fk:code>beschaeftigung_svp</fk:code>" in xml

    # 4010: a second client at the same provider, then one invoice for both; each line reaches the
    # Jobcenter under its own Kundennummer
    second = agency_sample("zuweisung.anmeldung.1020", customer_number="123D456790", bg_number="12345BG0000002")
    second["body"]["participant"].update(given_name="Aylin", family_name="Demir", birth_date="1991-05-17")
    second_case = to_provider(hub, send(hub, JOBCENTER, "agency-xml", second), "zuweisung.anmeldung.1020")["caseId"]
    assert second_case != case_id
    invoice = provider_sample("abrechnung.monat.4010", case_id)
    invoice["body"]["lines"][1]["case_id"] = second_case
    xml = to_jobcenter(hub, send(hub, PROVIDER, "provider-json", invoice), "abrechnung.monat.4010")
    ns = {"fk": "urn:xoev-de:casechain:standard:fallkette"}
    lines = [
        (p.findtext("fk:kundennummer", namespaces=ns), p.findtext("fk:betrag", namespaces=ns))
        for p in etree.fromstring(xml.encode()).findall("fk:position", ns)
    ]
    assert lines == [("123D456789", "142.5"), ("123D456790", "135.0")], lines
    assert case_id not in xml and second_case not in xml, "the provider's pseudonyms must not reach the Jobcenter"

    # nobody else saw any of it
    with db.read(hub.engine) as conn:
        others = conn.execute(sa.select(sa.func.count()).select_from(deliveries).where(deliveries.c.recipient == OTHER_PROVIDER)).scalar_one()
        provider_bodies = [r.body for r in conn.execute(sa.select(deliveries.c.body).where(deliveries.c.recipient == PROVIDER))]
    assert others == 0, "another provider received something of this chain"
    for raw in provider_bodies:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        assert not [s for s in AGENCY_IDS if s in text], "a provider received an agency identifier"


def _assigned(hub: Hub, provider: str = PROVIDER, customer: str = "123D456789") -> str:
    data = agency_sample("zuweisung.anmeldung.1020", customer_number=customer)
    data["header"]["reader"] = {"id": provider}
    data["body"]["participant"]["given_name"] = f"Kunde {customer}"
    message_id = send(hub, JOBCENTER, "agency-xml", data)
    return delivered(hub, message_id)[provider]["json"]["body"]["caseId"]


def test_an_invoice_line_for_a_case_that_is_not_the_senders_refuses_the_invoice_naming_the_line(hub: Hub) -> None:
    mine = _assigned(hub)
    theirs = _assigned(hub, OTHER_PROVIDER, "123D456790")
    invoice = provider_sample("abrechnung.monat.4010", mine)
    invoice["body"]["lines"][1]["case_id"] = theirs
    message_id = send(hub, PROVIDER, "provider-json", invoice)
    answer = rueckweisung(hub, message_id, PROVIDER)
    assert answer["reason"] == "business-rule"
    assert [f["location"] for f in answer["findings"]] == ["/body/lines/1/caseId"], answer["findings"]
    assert "lines 2" in answer["findings"][0]["message"] and theirs in answer["findings"][0]["message"]
    with db.read(hub.engine) as conn:
        assert not conn.execute(
            sa.select(deliveries.c.id).where(deliveries.c.message_id == message_id, deliveries.c.recipient == JOBCENTER)
        ).first(), "a refused invoice must reach nobody"


def test_an_invoice_not_addressed_to_a_jobcenter_reaches_nobody(hub: Hub) -> None:
    mine = _assigned(hub)
    invoice = provider_sample("abrechnung.monat.4010", mine)
    invoice["body"]["lines"] = [invoice["body"]["lines"][0]]
    invoice["body"].update(participant_days_total=19, total_amount="142.50")
    invoice["header"]["reader"] = {"id": "kreis-musterland"}  # not a Jobcenter: no route
    with pytest.raises(Refusal) as refused:
        send(hub, PROVIDER, "provider-json", invoice)
    assert refused.value.kind == "forbidden" and refused.value.findings[0].pointer == "/header/reader/id", refused.value
    with db.read(hub.engine) as conn:
        assert not conn.execute(sa.select(messages.c.id).where(messages.c.message_type == "abrechnung.monat.4010")).first(), "an invoice for a reader no route allows must not be stored"


def test_a_provider_reports_a_change_to_the_case_owner(hub: Hub) -> None:
    case_id = _assigned(hub)
    change = provider_sample("teilnahme.aenderung.2020", case_id, change_kind="verlaengerung", new_period_end="2027-08-31", feedback_uuid=None)
    change["body"] = {k: v for k, v in change["body"].items() if v is not None}
    change["header"].update(author={"id": PROVIDER}, reader={"id": JOBCENTER}, purpose="eingliederung")
    xml = to_jobcenter(hub, send(hub, PROVIDER, "provider-json", change), "teilnahme.aenderung.2020")
    assert "<fk:neuesEnde>2027-08-31</fk:neuesEnde>" in xml and "<fk:kundennummer>123D456789</fk:kundennummer>" in xml


def test_a_decline_without_a_reason_is_refused_by_the_pipeline(hub: Hub) -> None:
    case_id = _assigned(hub)
    absage = json.loads(encode(hub, "provider-json", provider_sample("zuweisung.rueckmeldung.1030", case_id)))
    absage["body"]["answer"] = "absage"  # valid against the schema, which cannot say "a reason with an Absage"
    accepted = ingress.accept(hub, hub.partners[PROVIDER], json.dumps(absage).encode(), "application/json")
    drain(hub)
    answer = rueckweisung(hub, accepted.id, PROVIDER)
    assert answer["reason"] == "schema-invalid" and "decline_reason" in answer["findings"][0]["message"]
