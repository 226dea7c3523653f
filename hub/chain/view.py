"""The chain of a case as its viewer may see it: the links in order with status, period, reports,
deadlines met or missed, tasks and decisions, and the proposed next step.

Who sees what (§ 35 SGB I, purpose limitation): the case owner and operators see the whole chain; a
provider sees only its own links -- their record and the deadlines it owes -- and nothing that would
tell it other links exist: no case status, no tasks, no proposals, no other partner's names.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.chain import deadlines, links, tasks
from hub.chain.links import jsonable
from hub.chain.membership import Case, case_for_ref, find
from hub.chain.steering import Steering
from hub.findings import Refusal
from hub.store.history import OWN_PURPOSES
from hub.store.tables import cases

#: why the steering agency reads its own case (contracts/purposes.yaml `eingliederung`)
OWNER_READ = ("eingliederung", "§ 50 Abs. 1 SGB II")


def read_purpose(operator: bool) -> tuple[str, str]:
    """(purpose, legal basis) of reading a whole chain, its tasks or its report, for the audit log:
    an operator runs the hub (§ 80 SGB X), the owner steers the client's integration."""
    return ("betrieb", OWN_PURPOSES["betrieb"]) if operator else OWNER_READ


#: record entries only the steering side sees
_OWNER_ONLY = {"task", "task_joined", "task_done", "notice", "case_status"}


def find_case(conn: Connection, viewer_id: str, operator: bool, ref: str) -> Case:
    """The case the viewer means: a partner by its own reference, an operator by the hub's case id.
    Not found also when it is another partner's case (which it must not learn exists)."""
    case = find(conn, ref) if operator else case_for_ref(conn, viewer_id, ref)
    if case is None:
        raise Refusal("not-found", f"No case {ref} is known to you")
    return case


def chain_view(conn: Connection, steering: Steering, case: Case, viewer_id: str, *, whole: bool, reference: str, today: dt.date) -> dict[str, Any]:
    """The chain for `viewer_id`; `whole` for the owner and operators, else only the viewer's links."""
    lifecycle = steering.lifecycle
    shown = links.of_case(conn, case.id, None if whole else viewer_id)
    ids = {link.id for link in shown}
    events = [e for e in links.events_of_case(conn, case.id) if (e.link_id in ids) and (whole or e.kind not in _OWNER_ONLY)]
    owed = [d for d in deadlines.of_case(conn, case.id) if whole or (d["link_id"] in ids and d["partner_id"] == viewer_id)]
    all_tasks = tasks.of_case(conn, case.id) if whole else []
    chain = []
    for n, link in enumerate(shown, 1):
        chain.append({
            "link": n,
            "id": link.id,
            "partner": link.partner_id,
            "measure_number": link.measure_number,
            "status": link.status,
            "status_label": lifecycle.label(link.status),
            "test": link.test,
            **{k: jsonable(v) for k, v in link.values.items() if v is not None},
            "record": [_entry(e) for e in events if e.link_id == link.id],
            "deadlines": [_deadline(d, today) for d in owed if d["link_id"] == link.id],
            **({"tasks": [t.as_dict() for t in all_tasks if t.link_id == link.id]} if whole else {}),
        })
    view: dict[str, Any] = {"case": reference, "links": chain}
    if whole:
        row = conn.execute(sa.select(cases.c.status, cases.c.created_at, cases.c.closed_at).where(cases.c.id == case.id)).one()
        view.update({
            "case_id": case.id, "owner": case.owner, "status": row.status, "opened_at": jsonable(row.created_at),
            "closed_at": jsonable(row.closed_at),
            "case_record": [_entry(e) for e in links.events_of_case(conn, case.id) if e.link_id is None],
            "open_tasks": [t.as_dict() for t in all_tasks if t.status == "open"],
            "breaches": [_deadline(d, today) for d in owed if d["status"] == "missed"],
            "next_step": [
                {"task": t.id, "title": t.title, "due_on": t.due_on.isoformat(), "proposed_measure": t.proposed_measure,
                 "proposal": t.spec.get("proposal")}
                for t in all_tasks if t.status == "open" and t.proposed_measure
            ],
            "rules_version": steering.version,
        })
    return view


def _entry(e: Any) -> dict[str, Any]:
    return {k: v for k, v in {
        "at": jsonable(e.at), "kind": e.kind, "message_id": e.message_id, "message_type": e.message_type,
        "from": e.status_from, "to": e.status_to, "detail": e.detail,
    }.items() if v is not None}


def _deadline(d: dict[str, Any], today: dt.date) -> dict[str, Any]:
    state = d["status"]
    if state == "met" and d["met_on"] and d["met_on"] > d["due_on"]:
        state = "met late"
    elif state == "missed" and d["met_on"]:
        state = "missed, came late"
    return {k: v for k, v in {
        "kind": d["kind"], "partner": d["partner_id"], "message_type": d["message_type"], "month": d["month"],
        "due_on": jsonable(d["due_on"]), "status": d["status"], "state": state, "met_on": jsonable(d["met_on"]),
        "overdue": d["status"] == "open" and d["due_on"] < today,
    }.items() if v is not None}


def timeline(view: dict[str, Any]) -> str:
    """The chain as a readable timeline for a terminal (`hub cases show`)."""
    lines = [f"Case {view['case']}" + (f"  owner {view['owner']}  status {view['status']}  opened {view['opened_at'][:10]}" if "owner" in view else "")]
    for link in view["links"]:
        period = f"{link.get('period_start', '?')} – {link.get('period_end', '?')}" if link.get("period_start") else "no period yet"
        lines.append(f"\n{link['link']}. {link['measure_number']} at {link['partner']}: {link['status_label']} ({link['status']}), {period}"
                     + (f", ended {link['end_date']} {link.get('outcome', '')} → {link.get('destination', '')}".rstrip(" →") if link.get("end_date") else ""))
        for entry in link["record"]:
            change = f" {entry.get('from')} → {entry['to']}" if entry.get("to") and entry.get("to") != entry.get("from") else ""
            detail = ", ".join(f"{k}={v}" for k, v in (entry.get("detail") or {}).items() if not isinstance(v, (list, dict)))
            lines.append(f"   {entry['at'][:16].replace('T', ' ')}  {entry['kind']:<12}{change}" + (f"  ({detail})" if detail else ""))
        for d in link["deadlines"]:
            lines.append(f"   deadline {d['kind']}{' ' + d['month'] if d.get('month') else ''} due {d['due_on']} ({d['partner']}): {d['state']}")
        for t in link.get("tasks", []):
            lines.append(f"   task {t['id']} {t['kind']} due {t['due_on']}: {t['status']}" + (f", decided {t['decision']}" if t.get("decision") else ""))
    if view.get("next_step"):
        lines.append("\nProposed next step:")
        lines += [f"   {s['proposal'] or s['proposed_measure']} (task {s['task']}, due {s['due_on']})" for s in view["next_step"]]
    if view.get("breaches"):
        lines.append(f"\nSLA breaches: {len(view['breaches'])}")
    return "\n".join(lines)
