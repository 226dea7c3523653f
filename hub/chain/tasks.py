"""Tasks for the case owner: decisions due, late reports to chase, the next link to decide.

A task belongs to the steering agency that owns the case (`owner`); nobody else lists, reads or
completes it. It keeps what the rule said when it opened the task (`spec`: the decisions it offers,
what closes it, the proposal) and the rule version, so a later change of the rules does not change
what an open task means.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.chain import conditions
from hub.chain.reads import cached
from hub.findings import Refusal
from hub.ids import new_id
from hub.store import unit_of_work
from hub.store.db import InsertOnce, aware, utcnow
from hub.store.tables import chain_tasks

STATUSES = ("open", "done", "cancelled")


@dataclass(frozen=True)
class Task:
    id: str
    case_id: str
    link_id: str | None
    owner: str
    kind: str
    title: str
    status: str
    due_on: dt.date
    rule_id: str
    rule_version: str
    proposed_measure: str | None
    spec: dict[str, Any]
    cause_message_id: str | None = None
    cause_deadline_id: str | None = None
    decision: str | None = None
    remark: str | None = None
    created_at: dt.datetime | None = None
    completed_at: dt.datetime | None = None
    completed_by: str | None = None
    decision_message_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "case_id": self.case_id, "link_id": self.link_id, "owner": self.owner, "kind": self.kind, "title": self.title,
            "status": self.status, "due_on": self.due_on.isoformat(), "rule": self.rule_id, "rule_version": self.rule_version,
            "proposed_measure": self.proposed_measure, "decisions": sorted(self.spec.get("decisions") or {}),
            "decision": self.decision, "remark": self.remark,
            "created_at": aware(self.created_at).isoformat() if self.created_at else None,
            "completed_at": aware(self.completed_at).isoformat() if self.completed_at else None,
            "completed_by": self.completed_by, "decision_message_id": self.decision_message_id,
        }


def _task(row: Any) -> Task:
    m = row if isinstance(row, dict) else row._mapping
    return Task(**{k: m.get(k) for k in Task.__dataclass_fields__})


_insert_once = InsertOnce(chain_tasks)
#: closed by a message of the pipeline (collected: a report that closes a task writes nothing at once)
_CLOSE = chain_tasks.update().where(chain_tasks.c.id == sa.bindparam("b_id"), chain_tasks.c.status == "open").values(
    status=sa.bindparam("b_status"), decision=sa.bindparam("b_decision"), remark=sa.bindparam("b_remark"),
    completed_at=sa.bindparam("b_at"), completed_by=sa.bindparam("b_by"), decision_message_id=sa.bindparam("b_message"),
)


_MOVE_DUE = chain_tasks.update().where(chain_tasks.c.id == sa.bindparam("b_id"), chain_tasks.c.due_on > sa.bindparam("b_due")).values(
    due_on=sa.bindparam("b_due"))


def move_due(conn: Connection, task: Task, due_on: dt.date) -> None:
    """An earlier due date for an open task (a further cause joined it), collected like the rest."""
    unit_of_work.execute(conn, _MOVE_DUE, {"b_id": task.id, "b_due": due_on})


def open_task(
    conn: Connection, *, key: str, case_id: str, link_id: str | None, owner: str, kind: str, title: str, due_on: dt.date,
    rule_id: str, rule_version: str, proposed_measure: str | None, spec: dict[str, Any],
    cause_message_id: str | None = None, cause_deadline_id: str | None = None,
) -> Task:
    """Open a task (through the transaction's unit of work). Unique per key (rule and cause): the
    pipeline processes a cause once, and the key keeps a second opening from being written."""
    row = {
        "id": new_id(), "key": key, "case_id": case_id, "link_id": link_id, "owner": owner, "kind": kind, "title": title[:255],
        "status": "open", "due_on": due_on, "rule_id": rule_id, "rule_version": rule_version, "proposed_measure": proposed_measure,
        "cause_message_id": cause_message_id, "cause_deadline_id": cause_deadline_id, "spec": spec, "created_at": utcnow(),
        "decision": None, "remark": None, "completed_at": None, "completed_by": None, "decision_message_id": None,
        "closes_on": _closes_on(spec.get("closed_by")),
    }
    unit_of_work.execute(conn, _insert_once(conn), row)
    return _task(row)


def get(conn: Connection, task_id: str, owner: str | None = None) -> Task:
    """The task, or not-found: also when it is another agency's (which must not learn it exists)."""
    query = sa.select(chain_tasks).where(chain_tasks.c.id == task_id)
    if owner is not None:
        query = query.where(chain_tasks.c.owner == owner)
    row = conn.execute(query).first()
    if row is None:
        raise Refusal("not-found", f"No task {task_id} is yours")
    return _task(row)


def listing(
    conn: Connection, owner: str | None, *, case_id: str | None = None, kind: str | None = None, due_before: dt.date | None = None,
    status: str = "open", limit: int = 100,
) -> list[Task]:
    """The owner's tasks (an operator's: everyone's), soonest due first."""
    query = sa.select(chain_tasks).where(chain_tasks.c.status == status)
    if owner is not None:
        query = query.where(chain_tasks.c.owner == owner)
    if case_id is not None:
        query = query.where(chain_tasks.c.case_id == case_id)
    if kind is not None:
        query = query.where(chain_tasks.c.kind == kind)
    if due_before is not None:
        query = query.where(chain_tasks.c.due_on <= due_before)
    return [_task(r) for r in conn.execute(query.order_by(chain_tasks.c.due_on, chain_tasks.c.id).limit(limit))]


def of_case(conn: Connection, case_id: str) -> list[Task]:
    return [_task(r) for r in conn.execute(sa.select(chain_tasks).where(chain_tasks.c.case_id == case_id).order_by(chain_tasks.c.created_at, chain_tasks.c.id))]


# built once: a report asks this (the pipeline's hot path)
_OPEN_OF_LINK = sa.select(chain_tasks).where(chain_tasks.c.link_id == sa.bindparam("link_id"), chain_tasks.c.status == "open")
_OPEN_OF_LINK_CLOSING = _OPEN_OF_LINK.where(chain_tasks.c.closes_on.in_(sa.bindparam("closes_on", expanding=True)))


def _closes_on(closed_by: Any) -> str | None:
    return closed_by if closed_by == "expected" else (closed_by or {}).get("message") if isinstance(closed_by, dict) else None


def open_of_link(conn: Connection, link_id: str, closes_on: set[str] | None = None) -> list[Task]:
    """The link's open tasks (with `closes_on`: only those one of these messages could close),
    those collected in this transaction included."""
    def read() -> list[Task]:
        if closes_on is None:
            return [_task(r) for r in conn.execute(_OPEN_OF_LINK, {"link_id": link_id})]
        return [_task(r) for r in conn.execute(_OPEN_OF_LINK_CLOSING, {"link_id": link_id, "closes_on": sorted(closes_on)})]

    found = {t.id: t for t in cached(conn, ("tasks", link_id, frozenset(closes_on) if closes_on is not None else None), read)}
    for row in unit_of_work.collected(conn, _insert_once(conn)):
        if row["link_id"] == link_id and (closes_on is None or row["closes_on"] in closes_on):
            found.setdefault(row["id"], _task(row))
    return list(found.values())


def close(conn: Connection, task: Task, status: str, *, by: str, decision: str | None = None, remark: str | None = None,
          message_id: str | None = None) -> None:
    """Close an open task from the pipeline (collected; a task closed meanwhile stays as it is)."""
    unit_of_work.execute(conn, _CLOSE, {"b_id": task.id, "b_status": status, "b_decision": decision, "b_remark": remark,
                                        "b_at": utcnow(), "b_by": by, "b_message": message_id})


def closed_by_message(task: Task, message_type: str, body: dict[str, Any], met: set[str]) -> bool:
    """Does this arriving message close the task? (`closed_by` of its rule; `expected`: the message
    its overdue deadline waited for.)"""
    closed = task.spec.get("closed_by")
    if closed == "expected":
        return task.cause_deadline_id in met
    return isinstance(closed, dict) and closed.get("message") == message_type and conditions.holds(closed.get("if"), body)


def finish(
    conn: Connection, task: Task, status: str, *, decision: str | None = None, remark: str | None = None, by: str,
    decision_message_id: str | None = None,
) -> bool:
    """Close an open task at once (done or cancelled); False if it was closed meanwhile (by a
    message, by another request): the caller then reads what closed it."""
    params = {"b_id": task.id, "b_status": status, "b_decision": decision, "b_remark": remark, "b_at": utcnow(), "b_by": by,
              "b_message": decision_message_id}
    return conn.execute(_CLOSE, params).rowcount == 1
