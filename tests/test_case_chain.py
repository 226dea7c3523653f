"""The case chain as its users expect it: links that follow the messages, refusals that name the
link's state, steering rules that open tasks with deadlines, decisions that reach the provider, and
a provider that sees only its own link.

In process (the pipeline drained in the test's thread); the whole story through a running hub on
both backends is tests/test_case_chain_story.py.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from hub.chain import calendar, tasks
from hub.chain.steering import Steering
from hub.chain.view import chain_view, find_case
from hub.endpoints import decisions
from hub.findings import Refusal
from hub.runtime import Hub
from hub.scheduler import DeadlineScheduler
from hub.store import db
from hub.store.tables import chain_deadlines, chain_events, chain_links, deliveries, messages
from hub.yaml_lines import ContractError
from tests.conftest import CONTRACTS, JOBCENTER, OTHER_PROVIDER, PROVIDER, agency_sample, provider_sample, send

CUSTOMER = "123D456789"
MEASURE = "962-AGH-2026-0042"


def assign(hub: Hub, customer: str = CUSTOMER, provider: str = PROVIDER, **body: Any) -> str:
    """The Jobcenter assigns the client to `provider`'s measure; the provider's case reference."""
    data = agency_sample("zuweisung.anmeldung.1020", customer_number=customer, **body)
    data["header"]["reader"] = {"id": provider}
    message_id = send(hub, JOBCENTER, "agency-xml", data)
    with db.read(hub.engine) as conn:
        raw = conn.execute(sa.select(deliveries.c.body).where(deliveries.c.message_id == message_id, deliveries.c.recipient == provider)).scalar_one()
    return json.loads(raw)["body"]["caseId"]


def report(hub: Hub, case_id: str, message_type: str, provider: str = PROVIDER, **body: Any) -> str:
    data = provider_sample(message_type, case_id, **body)
    data["header"]["author"] = {"id": provider}
    return send(hub, provider, "provider-json", data)


def status_of(hub: Hub, message_id: str) -> str:
    with db.read(hub.engine) as conn:
        return conn.execute(sa.select(messages.c.status).where(messages.c.id == message_id)).scalar_one()


def link_status(hub: Hub) -> list[str]:
    with db.read(hub.engine) as conn:
        return [r.status for r in conn.execute(sa.select(chain_links.c.status).order_by(chain_links.c.opened_at))]


def rueckweisung(hub: Hub, recipient: str) -> dict[str, Any]:
    with db.read(hub.engine) as conn:
        row = conn.execute(sa.select(deliveries.c.body, deliveries.c.format).where(
            deliveries.c.recipient == recipient, deliveries.c.message_type == "administration.rueckweisung.0010").order_by(deliveries.c.id.desc())).first()
    assert row is not None, f"{recipient} received no rueckweisung"
    return hub.adapter(row.format).decode(row.body).body_dict()


def open_tasks(hub: Hub, kind: str | None = None) -> list[tasks.Task]:
    with db.read(hub.engine) as conn:
        return tasks.listing(conn, JOBCENTER, kind=kind)


def view(hub: Hub, viewer: str, ref: str) -> dict[str, Any]:
    with db.read(hub.engine) as conn:
        case = find_case(conn, viewer, False, ref)
        return chain_view(conn, hub.chain.steering, case, viewer, whole=case.owner == viewer, reference=ref, today=calendar.today())


# -- links follow the messages -------------------------------------------------------------------------
def test_an_assignment_opens_a_link_and_the_start_moves_it(hub: Hub) -> None:
    case_id = assign(hub)
    assert link_status(hub) == ["assigned"], "the assignment opens one link"
    report(hub, case_id, "zuweisung.rueckmeldung.1030")
    report(hub, case_id, "teilnahme.eintritt.2010")
    assert link_status(hub) == ["started"]
    with db.read(hub.engine) as conn:
        link = conn.execute(sa.select(chain_links)).one()
    assert (link.period_start, link.start_date, link.branch) == (dt.date(2026, 12, 1), dt.date(2026, 12, 1), "06"), "the link keeps period and start"


def test_an_exit_before_the_start_is_refused_naming_the_state_and_changes_nothing(hub: Hub) -> None:
    case_id = assign(hub)
    with db.read(hub.engine) as conn:
        events_before = conn.execute(sa.select(sa.func.count()).select_from(chain_events)).scalar_one()
    message_id = report(hub, case_id, "teilnahme.austritt.2050")
    assert status_of(hub, message_id) == "rejected"
    answer = rueckweisung(hub, PROVIDER)
    assert "'assigned'" in answer["detail"], f"the rueckweisung names the link's state: {answer['detail']}"
    assert "started" in answer["findings"][0]["message"], "and the states in which an exit is accepted"
    assert link_status(hub) == ["assigned"], "the refused exit changed the link"
    with db.read(hub.engine) as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(chain_events)).scalar_one() == events_before, "the refused exit left a record entry"
        assert not conn.execute(sa.select(deliveries).where(deliveries.c.message_id == message_id, deliveries.c.recipient == JOBCENTER)).first(), \
            "the refused exit reached the Jobcenter"


def test_a_second_start_is_refused(hub: Hub) -> None:
    case_id = assign(hub)
    assert status_of(hub, report(hub, case_id, "teilnahme.eintritt.2010")) == "routed"
    second = report(hub, case_id, "teilnahme.eintritt.2010", start_date="2026-12-02")
    assert status_of(hub, second) == "rejected", "a second start was accepted"
    assert "'started'" in rueckweisung(hub, PROVIDER)["detail"]


def test_a_referral_whose_answer_deadline_lies_before_the_message_is_refused(hub: Hub) -> None:
    data = agency_sample("zuweisung.kontakt.1010", customer_number=CUSTOMER, answer_by="2026-10-01")
    message_id = send(hub, JOBCENTER, "agency-xml", data)
    assert status_of(hub, message_id) == "rejected"
    assert "answer_by 2026-10-01" in rueckweisung(hub, JOBCENTER)["findings"][0]["message"]
    assert link_status(hub) == [], "a refused referral opened a link"


# -- the cooperation feedback loop -----------------------------------------------------------------------
def test_a_cooperation_feedback_opens_a_decision_task_delivered_to_the_owner(hub: Hub) -> None:
    case_id = assign(hub)
    report(hub, case_id, "teilnahme.eintritt.2010")
    feedback = report(hub, case_id, "teilnahme.mitwirkung.2040")
    (task,) = open_tasks(hub, "cooperation_decision")
    assert task.due_on == dt.date(2026, 12, 20), "due by the provider's decisionRequestedBy"
    assert task.rule_id == "cooperation-decision" and task.rule_version == hub.chain.steering.version, "the task remembers its rule version"
    assert task.cause_message_id == feedback
    with db.read(hub.engine) as conn:
        (delivery,) = conn.execute(sa.select(deliveries).where(deliveries.c.message_type == "steuerung.aufgabe.5010")).all()
        (owed,) = conn.execute(sa.select(chain_deadlines).where(chain_deadlines.c.task_id == task.id)).all()
    assert delivery.recipient == JOBCENTER and task.id.encode() in delivery.body, "the task reaches the owner's system as steuerung.aufgabe"
    assert CUSTOMER.encode() in delivery.body, "under the owner's own case reference"
    assert (owed.partner_id, owed.kind, owed.due_on) == (JOBCENTER, "cooperation_decision", task.due_on), "the decision is the owner's deadline"


def test_the_case_managers_decision_reaches_the_provider_without_the_benefit_consequence(hub: Hub) -> None:
    case_id = assign(hub)
    report(hub, case_id, "teilnahme.eintritt.2010")
    report(hub, case_id, "teilnahme.mitwirkung.2040")
    (task,) = open_tasks(hub, "cooperation_decision")
    done = decisions.complete(hub, task.id, "continue", "Minderung 10 % nach § 31a SGB II geprüft", owner=JOBCENTER, by=JOBCENTER)
    from tests.conftest import drain

    drain(hub)
    assert done["status"] == "done" and done["decision"] == "continue" and done["decision_message_id"]
    with db.read(hub.engine) as conn:
        (change,) = conn.execute(sa.select(deliveries.c.body).where(
            deliveries.c.recipient == PROVIDER, deliveries.c.message_type == "teilnahme.aenderung.2020")).all()
        owed = conn.execute(sa.select(chain_deadlines.c.status).where(chain_deadlines.c.task_id == task.id)).scalar_one()
    body = json.loads(change.body)["body"]
    assert body["changeKind"] == "entscheidung_fortsetzung" and body["caseId"] == case_id
    text = change.body.decode().lower()
    for leak in ("minderung", "31a", "sanktion", "10 %", "remark", "bemerkung"):
        assert leak not in text, f"the provider's copy of the decision carries {leak!r}"
    assert owed == "met", "completing the task meets the owner's decision deadline"
    assert link_status(hub) == ["started"], "a decision to continue keeps the link running"


def test_a_decision_sent_by_the_jobcenters_own_system_closes_the_task(hub: Hub) -> None:
    case_id = assign(hub)
    report(hub, case_id, "teilnahme.eintritt.2010")
    report(hub, case_id, "teilnahme.mitwirkung.2040")
    end = agency_sample("teilnahme.aenderung.2020", customer_number=CUSTOMER, change_kind="entscheidung_beendigung", effective_date="2026-12-15")
    send(hub, JOBCENTER, "agency-xml", end)
    assert open_tasks(hub, "cooperation_decision") == [], "the Jobcenter's own 2020 did not close the decision task"
    assert link_status(hub) == ["ended"], "ending by decision ends the link"


def test_bad_decisions_are_refused_and_change_nothing(hub: Hub) -> None:
    case_id = assign(hub)
    report(hub, case_id, "teilnahme.eintritt.2010")
    report(hub, case_id, "teilnahme.mitwirkung.2040")
    (task,) = open_tasks(hub, "cooperation_decision")
    with pytest.raises(Refusal) as unknown:
        decisions.complete(hub, "01NOSUCHTASK0000000000000X", "continue", None, owner=JOBCENTER, by=JOBCENTER)
    assert unknown.value.status == 404
    with pytest.raises(Refusal) as foreign:
        decisions.complete(hub, task.id, "continue", None, owner="kreis-musterland", by="kreis-musterland")
    assert foreign.value.status == 404, "another agency learns that the task exists"
    with pytest.raises(Refusal) as wrong:
        decisions.complete(hub, task.id, "sanction", None, owner=JOBCENTER, by=JOBCENTER)
    assert wrong.value.status == 400 and "continue" in wrong.value.findings[0].message
    assert [t.id for t in open_tasks(hub, "cooperation_decision")] == [task.id], "a refused decision changed the task"
    decisions.complete(hub, task.id, "end", None, owner=JOBCENTER, by=JOBCENTER)
    with pytest.raises(Refusal) as twice:
        decisions.complete(hub, task.id, "continue", None, owner=JOBCENTER, by=JOBCENTER)
    assert twice.value.status == 409, "a decision on a closed task"


# -- steering rules ---------------------------------------------------------------------------------------
def test_a_second_unexcused_absence_within_30_days_opens_a_task(hub: Hub) -> None:
    case_id = assign(hub)
    report(hub, case_id, "teilnahme.eintritt.2010")
    report(hub, case_id, "teilnahme.anwesenheit.2030", absences=[{"date": "2026-12-03", "reason": "unentschuldigt"}])
    assert open_tasks(hub, "repeated_absence") == [], "one unexcused absence is not yet a pattern"
    report(hub, case_id, "teilnahme.anwesenheit.2030", month="2027-01", absences=[{"date": "2027-01-02", "reason": "unentschuldigt"}])
    assert len(open_tasks(hub, "repeated_absence")) == 1, "the second unexcused absence within 30 days opened no task"


def test_a_drop_out_proposes_the_next_link_and_the_chain_shows_it(hub: Hub) -> None:
    case_id = assign(hub)
    report(hub, case_id, "teilnahme.eintritt.2010")
    report(hub, case_id, "teilnahme.austritt.2050", dropout_reason="durch_teilnehmer", destination="arbeitsuchend", remark=None)
    (task,) = open_tasks(hub, "next_link")
    assert task.proposed_measure == "bewerbungscoaching"
    chain = view(hub, JOBCENTER, CUSTOMER)
    (link,) = chain["links"]
    assert (link["status"], link["outcome"], link["destination"]) == ("ended", "abbruch", "arbeitsuchend")
    assert [e["kind"] for e in link["record"]][:3] == ["assignment", "start", "exit"]
    assert chain["next_step"][0]["proposed_measure"] == "bewerbungscoaching"
    kinds = {d["kind"]: d["state"] for d in link["deadlines"]}
    assert kinds["start"] == "met" and "assessment" in kinds, "the start was met; an assessment is now expected"


def test_a_job_taken_up_sets_the_case_status(hub: Hub) -> None:
    case_id = assign(hub)
    report(hub, case_id, "teilnahme.eintritt.2010")
    report(hub, case_id, "teilnahme.austritt.2050")  # the sample: drop-out for a job, destination employment
    assert view(hub, JOBCENTER, CUSTOMER)["status"] == "integrated"


# -- deadlines ---------------------------------------------------------------------------------------------
def test_a_passed_deadline_is_one_breach_of_the_partner_that_owed_it(hub: Hub) -> None:
    assign(hub)  # start expected within 3 working days of 2026-12-01
    scheduler = DeadlineScheduler(hub)
    later = dt.datetime(2026, 12, 10, 12, tzinfo=dt.timezone.utc)
    assert scheduler.sweep(later) == 1
    assert scheduler.sweep(later) == 0, "a missed deadline was counted twice"
    with db.read(hub.engine) as conn:
        (missed,) = conn.execute(sa.select(chain_deadlines).where(chain_deadlines.c.status == "missed")).all()
    assert (missed.partner_id, missed.kind, missed.due_on) == (PROVIDER, "start", dt.date(2026, 12, 4))
    (task,) = open_tasks(hub, "overdue_report")
    assert task.cause_deadline_id == missed.id
    assert view(hub, JOBCENTER, CUSTOMER)["breaches"][0]["kind"] == "start"


def test_the_late_report_closes_the_overdue_task_and_stays_a_breach(hub: Hub) -> None:
    case_id = assign(hub)
    DeadlineScheduler(hub).sweep(dt.datetime(2026, 12, 10, 12, tzinfo=dt.timezone.utc))
    report(hub, case_id, "teilnahme.eintritt.2010")
    assert open_tasks(hub, "overdue_report") == [], "the late start did not close the task that chased it"
    (deadline,) = [d for d in view(hub, JOBCENTER, CUSTOMER)["links"][0]["deadlines"] if d["kind"] == "start"]
    assert deadline["status"] == "missed" and deadline["state"] == "missed, came late"


def test_working_days_follow_the_federal_states_holidays() -> None:
    # Corpus Christi (4 June 2026) is a holiday in NW and BY, not in Berlin
    assert calendar.add_working_days(dt.date(2026, 6, 3), 1, "NW") == dt.date(2026, 6, 5)
    assert calendar.add_working_days(dt.date(2026, 6, 3), 1, "BE") == dt.date(2026, 6, 4)
    # Epiphany (6 January) in BY only: the 5th working day of January 2027
    assert calendar.nth_working_day(2027, 1, 5, "BY") == dt.date(2027, 1, 11)
    assert calendar.nth_working_day(2027, 1, 5, "NW") == dt.date(2027, 1, 8)
    assert calendar.due_date({"working_day_of_next_month": 5}, dt.date(2026, 12, 1), "NW", "2026-12") == dt.date(2027, 1, 8)


# -- privacy -------------------------------------------------------------------------------------------------
def test_a_provider_sees_only_its_own_link_and_another_sees_nothing(hub: Hub) -> None:
    ours = assign(hub)
    theirs = assign(hub, provider=OTHER_PROVIDER, measure_number="962-BC-2026-0007")
    report(hub, ours, "teilnahme.eintritt.2010")
    report(hub, ours, "teilnahme.mitwirkung.2040")
    mine = view(hub, PROVIDER, ours)
    assert [link["measure_number"] for link in mine["links"]] == [MEASURE], "the provider sees another provider's link"
    text = json.dumps(mine)
    for hidden in (OTHER_PROVIDER, "962-BC-2026-0007", "cooperation_decision", "tasks", "next_step", CUSTOMER, "status\": \"integrated"):
        assert hidden not in text, f"the provider's view of the chain shows {hidden!r}"
    with pytest.raises(Refusal) as other:
        view(hub, OTHER_PROVIDER, ours)
    assert other.value.status == 404, "a provider learns that another provider's case exists"
    assert len(view(hub, JOBCENTER, CUSTOMER)["links"]) == 2, "the owner sees both links"
    assert theirs != ours


# -- rules are data, checked with file and line --------------------------------------------------------------
def _contracts_with(tmp_path: Path, name: str, old: str, new: str) -> Path:
    import shutil

    target = tmp_path / "contracts"
    shutil.copytree(CONTRACTS, target)
    path = target / "chain" / name
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{name} no longer holds {old!r}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return target


@pytest.mark.parametrize(("name", "old", "new", "says"), [
    ("rules.yaml", "if: {exit_kind: abbruch}", "if: {exit_kynd: abbruch}", "unknown field 'exit_kynd'"),
    ("rules.yaml", "on: {message: teilnahme.mitwirkung.2040}", "on: {message: teilnahme.mitwirkung.2041}", "unknown message type"),
    ("rules.yaml", "propose: bewerbungscoaching", "propose: yoga", "unknown measure 'yoga'"),
    ("rules.yaml", "due: {sla: start_message, after: period_start}", "due: {sla: start_mesage, after: period_start}", "unknown service level"),
    ("lifecycle.yaml", "    from: [started, changed]\n    to: ended", "    from: [started, changed]\n    to: finished", "unknown state 'finished'"),
    ("lifecycle.yaml", "  not_started: {label: nicht angetreten, final: true}", "  not_started: {label: nicht angetreten, final: true}\n  paused: {label: pausiert}", "'paused' cannot be reached"),
])
def test_a_rule_file_with_an_error_names_file_and_line(tmp_path: Path, name: str, old: str, new: str, says: str) -> None:
    contracts = _contracts_with(tmp_path, name, old, new)
    with pytest.raises(ContractError) as error:
        Steering.load(contracts)
    text = str(error.value)
    assert says in text, text
    assert error.value.path.endswith(name) and error.value.line > 0, f"the error names no file and line: {text}"
    line = (contracts / "chain" / name).read_text(encoding="utf-8").splitlines()[error.value.line - 1]
    assert new.splitlines()[-1].strip()[:12] in line or says.split("'")[1] in line, f"line {error.value.line} is not the wrong one: {line!r}"


def test_the_shipped_chain_contracts_check_out() -> None:
    steering = Steering.load(CONTRACTS)
    assert steering.rules and steering.version.startswith("2-")
    assert {"start", "attendance", "assessment", "cooperation_decision"} <= steering.deadline_kinds


# -- the benefit consequence never leaves the agency ------------------------------------------------------
def test_no_contract_of_any_type_version_or_format_has_a_field_for_the_benefit_consequence() -> None:
    import re

    schemas = [p for p in (CONTRACTS / "messages").rglob("*") if p.suffix in (".xsd", ".json") and "examples" not in p.parts]
    assert schemas, "no schema files found"
    for path in schemas:
        text = path.read_text(encoding="utf-8")
        # the names of elements and properties, not the documentation (which says why there is none)
        names = re.findall(r'name="([^"]+)"', text) if path.suffix == ".xsd" else re.findall(r'"([A-Za-z_]+)"\s*:\s*\{', text)
        for name in names:
            for word in ("minderung", "sanktion", "kuerzung", "sanction", "benefitcut"):
                assert word not in name.lower(), f"{path.relative_to(CONTRACTS)} has a field {name!r} for the benefit consequence"


def test_a_decision_that_tries_to_carry_the_benefit_consequence_is_refused(hub: Hub) -> None:
    from tests.conftest import encode

    assign(hub)
    decision = agency_sample("teilnahme.aenderung.2020", customer_number=CUSTOMER, change_kind="entscheidung_fortsetzung")
    xml = encode(hub, "agency-xml", decision).replace(b"</fk:aenderungsart>", b"</fk:aenderungsart><fk:leistungsminderung>30</fk:leistungsminderung>", 1)
    assert b"leistungsminderung" in xml, "the test could not add the element"
    from hub.endpoints import ingress

    with pytest.raises(Refusal) as refused:
        ingress.accept(hub, hub.partners[JOBCENTER], xml, "application/xml")
    assert refused.value.status == 422, "a message carrying the benefit consequence was accepted"
    with db.read(hub.engine) as conn:
        assert not conn.execute(sa.select(deliveries).where(deliveries.c.recipient == PROVIDER, deliveries.c.message_type == "teilnahme.aenderung.2020")).first()


def test_the_hub_does_not_start_with_a_broken_rule_file(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    contracts = _contracts_with(tmp_path, "rules.yaml", "if: {exit_kind: abbruch}", "if: {exit_kynd: abbruch}")
    env = {**os.environ, "HUB_CONTRACTS_DIR": str(contracts), "HUB_DATABASE_URL": f"sqlite:///{tmp_path / 'hub.db'}"}
    for command in (["worker"], ["serve", "--port", "1"]):
        r = subprocess.run([sys.executable, "-m", "hub.cli", *command], env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 1, f"hub {command[0]} started with a broken rule file: {r.stderr}"
        assert "rules.yaml:" in r.stderr and "exit_kynd" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = subprocess.run([sys.executable, "-m", "hub.cli", "contracts", "check"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "exit_kynd" in r.stdout + r.stderr, r.stdout + r.stderr


def test_a_further_feedback_before_the_decision_joins_the_open_task_and_its_earlier_date_holds(hub: Hub) -> None:
    case_id = assign(hub)
    report(hub, case_id, "teilnahme.eintritt.2010")
    report(hub, case_id, "teilnahme.mitwirkung.2040")  # decision requested by 2026-12-20
    report(hub, case_id, "teilnahme.mitwirkung.2040", event="drohender_abbruch", facts="Kündigt Abbruch an.", decision_requested_by="2026-12-15")
    (task,) = open_tasks(hub, "cooperation_decision")
    assert task.due_on == dt.date(2026, 12, 15), "the joined feedback's earlier date does not hold"
    with db.read(hub.engine) as conn:
        owed = conn.execute(sa.select(chain_deadlines.c.due_on).where(chain_deadlines.c.task_id == task.id)).scalar_one()
    assert owed == dt.date(2026, 12, 15), "the owner's deadline did not move with the task"
    kinds = [e["kind"] for e in view(hub, JOBCENTER, CUSTOMER)["links"][0]["record"]]
    assert kinds.count("cooperation") == 2 and kinds.count("task_joined") == 1 and kinds.count("task") == 1
