"""The whole story of a case chain, end to end through a running hub, on both backends (SQLite with
the embedded queue; PostgreSQL with RabbitMQ): the Jobcenter refers and assigns a client; the
provider accepts, starts, reports monthly attendance with an unexcused absence, sends a cooperation
feedback, then a drop-out; a deadline passes unreported; the case manager completes the tasks and
decides; the chain shows every link, the breach and the proposed next step; a second provider sees
none of it; the audit log verifies, and a changed entry is named.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections import Counter
from typing import Any

import httpx
import sqlalchemy as sa

from hub.scheduler import DeadlineScheduler
from hub.store import db
from hub.store.tables import audit_log
from tests.conftest import ROOT, JOBCENTER, OTHER_PROVIDER, PROVIDER, LiveHub, agency_sample, encode, post, provider_sample, wait_for, wait_until

CUSTOMER = "123D456789"
START = "2026-10-01"  # a participation that began two months ago: its October attendance never came


def _send(live: LiveHub, client: httpx.Client, fmt: str, data: dict[str, Any]) -> str:
    r = post(client, encode(live.hub, fmt, data), fmt)
    assert r.status_code == 202, f"{data['header']['message_type']} was not accepted: {r.status_code} {r.text}"
    message_id = r.json()["id"]
    wait_until(lambda: client.get(f"/v1/messages/{message_id}").json()["status"] != "received", 20, f"{message_id} processed")
    status = client.get(f"/v1/messages/{message_id}").json()["status"]
    assert status in ("routed", "delivered"), f"{data['header']['message_type']} ended {status}"
    return message_id


def _chain(client: httpx.Client, ref: str) -> dict[str, Any]:
    r = client.get(f"/v1/cases/{ref}/chain")
    assert r.status_code == 200, r.text
    return r.json()


def _tasks(client: httpx.Client, **params: str) -> list[dict[str, Any]]:
    r = client.get("/v1/tasks", params=params)
    assert r.status_code == 200, r.text
    return r.json()["tasks"]


def test_the_whole_case_chain_story(live_hub: LiveHub) -> None:
    live = live_hub
    with live.client(JOBCENTER) as jc, live.client(PROVIDER) as pr, live.client(OTHER_PROVIDER) as other:
        # the Jobcenter refers the client to the provider, which accepts; then it assigns
        _send(live, jc, "agency-xml", agency_sample("zuweisung.kontakt.1010", customer_number=CUSTOMER, answer_by="2026-11-30"))
        (referral,) = wait_for(pr, "zuweisung.kontakt.1010")
        case_id = referral["body"]["body"]["caseId"]
        _send(live, pr, "provider-json", provider_sample("zuweisung.rueckmeldung.1030", case_id))
        assignment = agency_sample("zuweisung.anmeldung.1020", customer_number=CUSTOMER, period_start=START, period_end="2027-03-31")
        _send(live, jc, "agency-xml", assignment)
        assert _chain(jc, CUSTOMER)["links"][0]["status"] == "assigned"

        # the provider starts the client and reports November with an unexcused absence
        _send(live, pr, "provider-json", provider_sample("teilnahme.eintritt.2010", case_id, start_date=START))
        _send(live, pr, "provider-json", provider_sample(
            "teilnahme.anwesenheit.2030", case_id, month="2026-11", days=[{"date": "2026-11-02", "code": "anwesend_vor_ort"}],
            absences=[{"date": "2026-11-03", "reason": "unentschuldigt"}], week_absences=None))

        # a cooperation feedback reaches the case manager as a task with its deadline
        _send(live, pr, "provider-json", provider_sample("teilnahme.mitwirkung.2040", case_id, event_date="2026-11-20", decision_requested_by="2026-12-18"))
        (feedback_task,) = _tasks(jc, kind="cooperation_decision")
        assert feedback_task["due_on"] == "2026-12-18"
        (pushed,) = wait_for(jc, "steuerung.aufgabe.5010")
        assert feedback_task["id"] in pushed["body"], "the Jobcenter's system did not receive the task as steuerung.aufgabe"

        # the case manager decides through the task API: the provider receives the decision
        r = jc.post(f"/v1/tasks/{feedback_task['id']}/complete", json={"decision": "continue", "remark": "Gespräch am 25.11., Minderung geprüft"})
        assert r.status_code == 200, r.text
        (decision,) = wait_for(pr, "teilnahme.aenderung.2020")
        assert decision["body"]["body"]["changeKind"] == "entscheidung_fortsetzung"
        assert "inderung" not in str(decision["body"]), "the benefit consequence reached the provider"

        # then the client drops out
        _send(live, pr, "provider-json", provider_sample(
            "teilnahme.austritt.2050", case_id, exit_date="2026-11-27", dropout_reason="durch_teilnehmer", destination="arbeitsuchend", remark=None))

        # the October attendance never came: its deadline (5th working day of November) passes
        breached = DeadlineScheduler(live.hub).sweep(dt.datetime(2026, 12, 3, 12, tzinfo=dt.timezone.utc))
        assert breached == 1, f"{breached} deadlines were missed, expected the October attendance only"

        chain = _chain(jc, CUSTOMER)
        (link,) = chain["links"]
        assert [e["kind"] for e in link["record"] if e["kind"] not in ("task", "task_done", "breach")] == [
            "referral", "answer", "assignment", "start", "attendance", "cooperation", "decision", "exit",
        ], "the chain's record is not the story"
        assert (link["status"], link["outcome"], link["destination"]) == ("ended", "abbruch", "arbeitsuchend")
        (breach,) = chain["breaches"]
        assert (breach["kind"], breach["month"], breach["partner"]) == ("attendance", "2026-10", PROVIDER)
        assert chain["next_step"] and chain["next_step"][0]["proposed_measure"] == "bewerbungscoaching", "no next link was proposed"

        # the case manager works the remaining tasks
        open_now = {t["kind"]: t for t in _tasks(jc)}
        assert {"next_link", "overdue_report"} <= set(open_now), f"open tasks: {sorted(open_now)}"
        for kind, choice in (("overdue_report", "reminded"), ("next_link", "assign_proposed")):
            r = jc.post(f"/v1/tasks/{open_now[kind]['id']}/complete", json={"decision": choice})
            assert r.status_code == 200, r.text
        again = jc.post(f"/v1/tasks/{open_now['next_link']['id']}/complete", json={"decision": "none"})
        assert again.status_code == 409, "a decision on a closed task was taken"
        assert not _tasks(jc, kind="next_link")

        # a second provider sees none of it
        assert other.get(f"/v1/cases/{case_id}/chain").status_code == 404
        assert other.get("/v1/tasks").status_code == 403
        assert other.get(f"/v1/tasks/{feedback_task['id']}").status_code == 403
        inbox = other.get("/v1/inbox", params={"limit": 500}).json()["deliveries"]
        assert not any(case_id in str(d["body"]) or CUSTOMER in str(d["body"]) for d in inbox), "the second provider received this case"
        # and the provider itself sees only its own link, without the agency's tasks
        own = _chain(pr, case_id)
        assert len(own["links"]) == 1 and "tasks" not in own["links"][0] and "next_step" not in own
        # bad input: an unknown case, an unknown task
        assert jc.get("/v1/cases/999X9999999/chain").status_code == 404
        assert jc.post("/v1/tasks/01NOSUCHTASK0000000000000X/complete", json={"decision": "continue"}).status_code == 404
        assert jc.post(f"/v1/tasks/{feedback_task['id']}/complete", json={"decision": "continue", "extra": 1}).status_code == 400

    # every transmission and read of the story is in the audit log, and the log verifies ...
    with db.read(live.hub.engine) as conn:
        actions = Counter(conn.execute(sa.select(audit_log.c.action)).scalars())
        victim = conn.execute(sa.select(audit_log.c.id).where(audit_log.c.action == "chain-read").order_by(audit_log.c.id)).scalars().first()
    assert {"transmitted", "chain-read", "tasks-read", "task-completed", "inbox-read"} <= set(actions), f"audited: {sorted(actions)}"
    verified = _hub_cli(live, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    # ... until one entry's field is changed: `hub audit verify` names that entry
    with db.write(live.hub.engine) as conn:
        conn.execute(audit_log.update().where(audit_log.c.id == victim).values(actor="someone-else"))
    tampered = _hub_cli(live, "audit", "verify")
    assert tampered.returncode == 1 and f"entry {victim} " in tampered.stdout + tampered.stderr, tampered.stdout + tampered.stderr


def _hub_cli(live: LiveHub, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hub.cli", *args], env={**os.environ, **live.env}, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
