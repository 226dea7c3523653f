"""Deadlines: what a partner owes the chain and by when; met by a message, missed by the scheduler.

A deadline is unique by its key (link, kind, month), so a rule that fires twice expects once. It is
missed by `claim_missed`: a conditional UPDATE (open -> missed) that exactly one worker wins, in the
transaction that also opens the breach's task -- with several workers, on SQLite and PostgreSQL
alike, a passed deadline is one breach, and a worker killed midway leaves it open for the next.

Expecting and meeting go through the transaction's unit of work, like the pipeline's other rows:
a report that expects or meets something writes nothing at once (the embedded queue can process it
outside the write lock), and a report meets what an earlier report of the same batch expected
(the collected rows are read too; updates are written after inserts).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.chain.reads import cached
from hub.ids import new_id
from hub.store import unit_of_work
from hub.store.db import InsertOnce, utcnow
from hub.store.tables import chain_deadlines

OPEN = ("open", "missed")  # a missed deadline still learns when the late message came


@dataclass(frozen=True)
class Deadline:
    id: str
    case_id: str
    link_id: str | None
    partner_id: str
    kind: str
    message_type: str | None
    month: str | None
    task_id: str | None
    due_on: dt.date
    status: str
    rule_id: str


def _deadline(row: Any) -> Deadline:
    m = row if isinstance(row, dict) else row._mapping
    return Deadline(m["id"], m["case_id"], m["link_id"], m["partner_id"], m["kind"], m["message_type"], m["month"], m["task_id"],
                    m["due_on"], m["status"], m["rule_id"])


_insert_once = InsertOnce(chain_deadlines)
#: answered by a message (once: the first answer keeps its day); open -> met, a miss stays a miss
_ANSWER = (
    chain_deadlines.update()
    .where(chain_deadlines.c.id == sa.bindparam("b_id"), chain_deadlines.c.met_on.is_(None))
    .values(
        status=sa.case((chain_deadlines.c.status == "open", sa.bindparam("b_status")), else_=chain_deadlines.c.status),
        resolved_at=sa.case((chain_deadlines.c.status == "open", sa.bindparam("b_at")), else_=chain_deadlines.c.resolved_at),
        met_on=sa.bindparam("b_day"), met_by=sa.bindparam("b_by"),
    )
)
_CANCEL = chain_deadlines.update().where(chain_deadlines.c.id == sa.bindparam("b_id"), chain_deadlines.c.status == "open").values(
    status="cancelled", resolved_at=sa.bindparam("b_at"))


def expect(
    conn: Connection, *, case_id: str, link_id: str | None, partner_id: str, kind: str, message_type: str | None, due_on: dt.date,
    rule_id: str, rule_version: str, month: str | None = None, task_id: str | None = None, key: str | None = None,
) -> None:
    """Expect a message (or a task's completion) by `due_on`; nothing if it is expected already."""
    unit_of_work.execute(conn, _insert_once(conn), {
        "id": new_id(), "key": key or f"{link_id}:{kind}:{month or ''}", "case_id": case_id, "link_id": link_id, "partner_id": partner_id,
        "kind": kind, "message_type": message_type, "month": month, "task_id": task_id, "due_on": due_on, "status": "open",
        "rule_id": rule_id, "rule_version": rule_version, "created_at": utcnow(), "resolved_at": None, "met_on": None, "met_by": None,
    })


# built once: a report asks these (the pipeline's hot path)
_OF_LINK = sa.select(chain_deadlines).where(
    chain_deadlines.c.link_id == sa.bindparam("link_id"), chain_deadlines.c.status.in_(sa.bindparam("statuses", expanding=True)),
    chain_deadlines.c.met_on.is_(None),
)
_OF_LINK_FOR = _OF_LINK.where(chain_deadlines.c.message_type == sa.bindparam("message_type"))


def _of_link(conn: Connection, link_id: str, statuses: tuple[str, ...], message_type: str | None = None) -> list[Deadline]:
    """The link's deadlines in `statuses` (with `message_type`: only those it answers), those
    collected in this transaction included."""
    params = {"link_id": link_id, "statuses": list(statuses), "message_type": message_type}
    stored = cached(conn, ("deadlines", link_id, statuses, message_type),
                    lambda: [_deadline(r) for r in conn.execute(_OF_LINK if message_type is None else _OF_LINK_FOR, params)])
    found = {d.id: d for d in stored}
    for row in unit_of_work.collected(conn, _insert_once(conn)):
        if row["link_id"] == link_id and row["status"] in statuses and message_type in (None, row["message_type"]):
            found.setdefault(row["id"], _deadline(row))
    return list(found.values())


def meet(conn: Connection, link_id: str, message_type: str, month: str | None, message_id: str, today: dt.date) -> list[str]:
    """The deadlines of the link this message answers: open ones are met; missed ones keep their
    miss and learn the day the late message came. Returns their ids."""
    ids = [d.id for d in _of_link(conn, link_id, OPEN, message_type) if d.month is None or month is None or d.month == month]
    for deadline_id in ids:
        unit_of_work.execute(conn, _ANSWER, {"b_id": deadline_id, "b_status": "met", "b_at": utcnow(), "b_day": today, "b_by": message_id})
    return ids


def meet_task(conn: Connection, task_id: str, today: dt.date) -> None:
    """A decision deadline is met by completing its task (late: the miss stays, the day is noted)."""
    ids = {row.id for row in conn.execute(sa.select(chain_deadlines.c.id).where(chain_deadlines.c.task_id == task_id))}
    ids |= {row["id"] for row in unit_of_work.collected(conn, _insert_once(conn)) if row["task_id"] == task_id}
    for deadline_id in ids:
        unit_of_work.execute(conn, _ANSWER, {"b_id": deadline_id, "b_status": "met", "b_at": utcnow(), "b_day": today, "b_by": None})


_MOVE_TASK_DUE = chain_deadlines.update().where(
    chain_deadlines.c.task_id == sa.bindparam("b_task"), chain_deadlines.c.status == "open", chain_deadlines.c.due_on > sa.bindparam("b_due"),
).values(due_on=sa.bindparam("b_due"))


def move_task_due(conn: Connection, task_id: str, due_on: dt.date) -> None:
    """The owner's deadline of a task moves with the task's due date."""
    unit_of_work.execute(conn, _MOVE_TASK_DUE, {"b_task": task_id, "b_due": due_on})


def open_of_link(conn: Connection, link_id: str) -> list[Deadline]:
    return _of_link(conn, link_id, ("open",))


def cancel(conn: Connection, ids: list[str]) -> None:
    for deadline_id in ids:
        unit_of_work.execute(conn, _CANCEL, {"b_id": deadline_id, "b_at": utcnow()})


def cancel_case(conn: Connection, case_id: str) -> None:
    """A closed chain owes nothing any more."""
    conn.execute(chain_deadlines.update().where(chain_deadlines.c.case_id == case_id, chain_deadlines.c.status == "open").values(
        status="cancelled", resolved_at=utcnow()))


def passed(conn: Connection, today: dt.date, limit: int = 100) -> list[Deadline]:
    """Open deadlines whose day has passed (due yesterday or earlier), oldest first."""
    rows = conn.execute(
        sa.select(chain_deadlines).where(chain_deadlines.c.status == "open", chain_deadlines.c.due_on < today)
        .order_by(chain_deadlines.c.due_on, chain_deadlines.c.id).limit(limit)
    )
    return [_deadline(r) for r in rows]


def claim_missed(conn: Connection, deadline_id: str) -> bool:
    """Mark a passed deadline missed; True for exactly one caller (the others find it taken)."""
    result = conn.execute(chain_deadlines.update().where(chain_deadlines.c.id == deadline_id, chain_deadlines.c.status == "open").values(
        status="missed", resolved_at=utcnow()))
    return result.rowcount == 1


def of_case(conn: Connection, case_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(sa.select(chain_deadlines).where(chain_deadlines.c.case_id == case_id).order_by(chain_deadlines.c.due_on, chain_deadlines.c.id))
    return [dict(r._mapping) for r in rows]
