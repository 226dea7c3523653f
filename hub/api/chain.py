"""The case chain over HTTP: the steering agency's tasks, and the chain of a case.

Tasks are the case owner's: an agency lists, reads and completes only its own (another agency's
task is "not found", not "forbidden": it must not learn the task exists); providers have none.
Operators see every agency's. The chain: the owner and operators see all of it, a provider only its
own link. Every read is an audit entry (§ 67d, § 80 SGB X).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from hub.api.auth import Caller
from hub.api.openapi import problems
from hub.chain import tasks
from hub.chain.calendar import today
from hub.chain.view import chain_view, find_case, read_purpose
from hub.endpoints import decisions
from hub.findings import Refusal
from hub.partners import Partner
from hub.runtime import Hub
from hub.store import db
from hub.store.history import audit

router = APIRouter(prefix="/v1", tags=["case chain"])


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: str = Field(min_length=1, max_length=40, pattern=r"^[a-z_]+$", description="one of the task's `decisions`")
    remark: str | None = Field(default=None, max_length=4000, description="the case manager's note; stays inside the agency")


def _owner_scope(hub: Hub, who: Partner) -> str | None:
    """Whose tasks the caller may see: its own (a case owner), everyone's (an operator, None)."""
    if who.is_operator:
        return None
    if who.role not in hub.routes.case_owner_roles:
        raise Refusal("forbidden", "Only the steering agency that owns a case has tasks")
    return who.id


@router.get("/tasks", summary="The caller's open tasks (an operator's: every agency's)", responses=problems(400, 401, 403, 503))
def list_tasks(
    request: Request, who: Caller,
    case: Annotated[str | None, Query(max_length=40, description="the caller's own case reference")] = None,
    kind: Annotated[str | None, Query(max_length=40, pattern=r"^[a-z_]+$")] = None,
    due_before: Annotated[dt.date | None, Query(description="only tasks due on or before this day")] = None,
    status: Annotated[str, Query(pattern="^(open|done|cancelled)$")] = "open",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    hub: Hub = request.app.state.hub
    owner = _owner_scope(hub, who)
    with db.write(hub.engine) as conn:
        case_id = find_case(conn, who.id, who.is_operator, case).id if case else None
        found = tasks.listing(conn, owner, case_id=case_id, kind=kind, due_before=due_before, status=status, limit=limit)
        purpose, basis = read_purpose(who.is_operator)
        audit(conn, who.id, "tasks-read", partner=who.id, purpose=purpose, legal_basis=basis, tasks=[t.id for t in found])
    return {"tasks": [t.as_dict() for t in found], "count": len(found)}


@router.get("/tasks/{task_id}", summary="One of the caller's tasks", responses=problems(401, 403, 404, 503))
def get_task(request: Request, task_id: str, who: Caller) -> dict[str, Any]:
    hub: Hub = request.app.state.hub
    owner = _owner_scope(hub, who)
    with db.write(hub.engine) as conn:
        task = tasks.get(conn, task_id, owner)
        purpose, basis = read_purpose(who.is_operator)
        audit(conn, who.id, "task-read", partner=who.id, purpose=purpose, legal_basis=basis, task=task.id)
    return task.as_dict()


@router.post("/tasks/{task_id}/complete", summary="Complete a task with a decision", responses=problems(400, 401, 403, 404, 409, 422, 503))
async def complete_task(request: Request, task_id: str, body: Decision, who: Caller) -> dict[str, Any]:
    hub: Hub = request.app.state.hub
    owner = _owner_scope(hub, who)
    return await run_in_threadpool(decisions.complete, hub, task_id, body.decision, body.remark, owner=owner, by=who.id)


@router.get("/cases/{case_ref}/chain", summary="The chain of a case (a provider sees only its own link)", responses=problems(401, 404, 503))
def get_chain(request: Request, case_ref: str, who: Caller) -> dict[str, Any]:
    hub: Hub = request.app.state.hub
    with db.write(hub.engine) as conn:
        case = find_case(conn, who.id, who.is_operator, case_ref)
        whole = who.is_operator or case.owner == who.id
        view = chain_view(conn, hub.chain.steering, case, who.id, whole=whole, reference=case_ref, today=today())
        purpose, basis = read_purpose(who.is_operator) if whole else ("massnahmedurchfuehrung", "§ 50 Abs. 1 SGB II")
        audit(conn, who.id, "chain-read", partner=who.id, purpose=purpose, legal_basis=basis, case=case.id, links=len(view["links"]))
    return view
