"""Where a case manager's decision enters the hub: completing a task through the API or the CLI.

A decision that the provider must learn (continue or end a participation after a cooperation
feedback) leaves the hub as an ordinary teilnahme.aenderung.2020 from the case owner: built in the
owner's own format, then accepted through ingress like any message the owner's system sends --
validated against its contract, routed, minimised, audited. Its message UUID is derived from the
task and the decision, so a retried request is a resend (answered with the first id), never a
second decision. The benefit consequence of a decision has no field in any message type: it cannot
leave the agency this way either.

Order: the message first, then the task; if the pipeline closed the task by that very message in
between (its rule's `closed_by`), the task is simply given the decision's own words.
"""

from __future__ import annotations

import uuid
from typing import Any


from hub.canonical import Message
from hub.chain import deadlines, links, membership, tasks
from hub.chain.calendar import today
from hub.chain.engine import close_chain
from hub.endpoints import ingress
from hub.findings import Finding, Refusal
from hub.partners import Partner
from hub.runtime import Hub
from hub.store import db
from hub.store.db import utcnow
from hub.store.history import audit
from hub.store.tables import chain_tasks

DECISION_PURPOSE = "massnahmedurchfuehrung"


def complete(hub: Hub, task_id: str, decision: str, remark: str | None, *, owner: str | None, by: str) -> dict[str, Any]:
    """Complete a task with `decision`; `owner` None: an operator (the CLI), else only the owner's task."""
    with db.read(hub.engine) as conn:
        task = tasks.get(conn, task_id, owner)
    if task.status != "open":
        raise Refusal("conflict", f"Task {task_id} is {task.status} already" + (f" (decision {task.decision})" if task.decision else ""))
    offered = task.spec.get("decisions") or {}
    if decision not in offered:
        raise Refusal("invalid-request", f"Decision {decision!r} is not one this task offers", [Finding(f"decision must be one of: {', '.join(sorted(offered))}", pointer="/decision")])
    does = offered[decision] or {}
    message_id = _send(hub, task, does) if does.get("send") else None
    with db.write(hub.engine) as conn:
        if not tasks.finish(conn, task, "done", decision=decision, remark=remark, by=by, decision_message_id=message_id):
            if message_id is None or not _closed_by_own_message(conn, task.id, message_id, decision, remark, by):
                raise Refusal("conflict", f"Task {task_id} was completed meanwhile")
        deadlines.meet_task(conn, task.id, today())
        if does.get("close"):
            close_chain(conn, task.case_id, f"task:{task.id}")
        links.record(conn, task.case_id, task.link_id, "task_done", message_id=message_id, detail={"task": task.id, "decision": decision, "by": by})
        audit(conn, by, "task-completed", message_id=message_id, partner=task.owner, purpose="eingliederung",
              legal_basis=hub.purposes.purposes["eingliederung"].legal_basis, task=task.id, decision=decision)
        done = tasks.get(conn, task.id)
    return done.as_dict()


def _closed_by_own_message(conn: Any, task_id: str, message_id: str, decision: str, remark: str | None, by: str) -> bool:
    """The pipeline closed the task by the decision's own message: give it the decision's words."""
    result = conn.execute(
        chain_tasks.update().where(chain_tasks.c.id == task_id, chain_tasks.c.decision_message_id == message_id)
        .values(decision=decision, remark=remark, completed_by=by, completed_at=utcnow())
    )
    return result.rowcount == 1


def _send(hub: Hub, task: tasks.Task, does: dict[str, Any]) -> str:
    """The decision as the owner's message, through ingress (validated, routed, audited); its id."""
    owner: Partner | None = hub.partners.get(task.owner)
    if owner is None or task.link_id is None:
        raise Refusal("conflict", f"Task {task.id} has no link or owner to send its decision for")
    with db.read(hub.engine) as conn:
        case = membership.case_by_id(conn, task.case_id)
        link = links.latest_by_id(conn, task.link_id)
    provider = link.partner_id if link else None
    message_type = does["send"]
    version = owner.version_for(message_type, hub.registry.versions(message_type, owner.format))
    answers = task.spec.get("answers_uuid")
    header = {
        "message_uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"casechain:decision:{task.id}")), "message_type": message_type,
        "created_at": utcnow().isoformat(), "author": {"id": owner.id, "name": owner.name},
        "reader": {"id": provider, "name": hub.partners[provider].name} if provider in hub.partners else None,
        "reference_uuid": answers, "purpose": DECISION_PURPOSE,
        "legal_basis": hub.purposes.purposes[DECISION_PURPOSE].legal_basis, "version": version, "test": bool(link and link.test),
    }
    body: dict[str, Any] = {"customer_number": case.customer_number, "measure_number": link.measure_number,
                            "change_kind": does["change_kind"], "effective_date": today().isoformat()}
    if answers and str(does["change_kind"]).startswith("entscheidung_"):
        body["feedback_uuid"] = answers
    adapter = hub.adapter(owner.format)
    data = adapter.encode(Message.build({k: v for k, v in header.items() if v is not None}, body), version)
    return ingress.accept(hub, owner, data, adapter.media_type).id
