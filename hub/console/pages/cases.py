"""A steering agency's cases: the list, a case's chain as a timeline with its tasks and deadlines,
the open tasks, and completing one with a decision.

A case manager sees only the cases of their own agency, by the agency's own reference (the
Kundennummer); another agency's case is "not found", never "forbidden" -- the page must not tell that
it exists. Operators see every case by the hub's case id. The reads are the API's (hub.chain.view,
hub.chain.tasks) and so are their audit entries; completing a task is hub.endpoints.decisions, which
sends the decision to the provider as the agency's own message.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from hub.chain import membership, tasks
from hub.chain.calendar import today
from hub.chain.view import chain_view, find_case, read_purpose
from hub.console.web import SECURITY_HEADERS, CaseManager, PageError, Steering, Visit, posted
from hub.endpoints import decisions
from hub.findings import Refusal
from hub.store.history import audit

router = APIRouter()

REF = r"^[A-Za-z0-9._:/-]{1,40}$"


def purpose(v: Visit) -> tuple[str, str]:
    """Why the visitor reads a case: an operator runs the hub, a case manager steers the integration."""
    return read_purpose(v.user.role == "operator")


def viewer(v: Visit) -> tuple[str, bool]:
    """(the partner the visitor reads as, whether as an operator)."""
    return (v.user.agency or "", False) if v.user.role == "case_manager" else (v.user.actor, True)


@router.get("/cases", include_in_schema=False)
def case_list(v: Steering) -> Response:
    agency, operator = viewer(v)
    with v.write() as conn:
        found = membership.listing(conn, None if operator else agency, limit=200)
        why, basis = purpose(v)
        audit(conn, v.user.actor, "cases-read", partner=agency or None, purpose=why, legal_basis=basis, count=len(found))
    rows = [{"ref": c["id"] if operator else c["references"].get(agency, c["id"]), "owner": c["owner"], "opened_at": c["opened_at"],
             "members": sorted(c["references"])} for c in found]
    return v.page("cases.html", cases=rows, operator=operator)


@router.get("/cases/go", include_in_schema=False)
def go(v: Steering, ref: Annotated[str, Query(max_length=40)] = "") -> Response:
    return RedirectResponse(f"/ops/cases/{urllib.parse.quote(ref.strip(), safe='')}", status_code=303, headers=SECURITY_HEADERS)


@router.get("/cases/{case_ref}", include_in_schema=False)
def case_chain(case_ref: str, v: Steering) -> Response:
    agency, operator = viewer(v)
    with v.write() as conn:
        try:
            case = find_case(conn, agency, operator, case_ref)
        except Refusal:
            raise PageError(404, v._("No case %(ref)s is known to you.", ref=case_ref[:40])) from None
        if not operator and case.owner != agency:
            raise PageError(404, v._("No case %(ref)s is known to you.", ref=case_ref[:40]))
        view = chain_view(conn, v.hub.chain.steering, case, agency or case.owner, whole=True, reference=case_ref, today=today())
        why, basis = purpose(v)
        audit(conn, v.user.actor, "chain-read", partner=agency or None, purpose=why, legal_basis=basis, case=case.id, links=len(view["links"]))
    return v.page("chain.html", view=view, can_decide=not operator, state=v.hub.chain.steering.lifecycle.label)


@router.get("/tasks", include_in_schema=False)
def task_list(
    v: CaseManager,
    kind: Annotated[str | None, Query(max_length=40, pattern=r"^[a-z_]*$")] = None,
    due_before: Annotated[dt.date | None, Query()] = None,
    status: Annotated[str, Query(pattern="^(open|done|cancelled)$")] = "open",
) -> Response:
    agency = v.user.agency or ""
    with v.write() as conn:
        found = tasks.listing(conn, agency, kind=kind or None, due_before=due_before, status=status, limit=200)
        refs = {t.case_id: membership.local_ref(conn, t.case_id, agency) or t.case_id for t in found}
        why, basis = purpose(v)
        audit(conn, v.user.actor, "tasks-read", partner=agency, purpose=why, legal_basis=basis, tasks=[t.id for t in found])
    return v.page("tasks.html", tasks=[{**t.as_dict(), "case_ref": refs[t.case_id]} for t in found], today=today().isoformat())


@router.post("/tasks/{task_id}/complete", include_in_schema=False)
async def complete(request: Request, task_id: str, v: CaseManager) -> Response:
    fields = await posted(request, v)
    decision, remark = fields.get("decision", "").strip(), fields.get("remark", "").strip()[:4000] or None
    back = fields.get("back", "/ops/tasks")
    if not back.startswith("/ops/"):
        back = "/ops/tasks"
    if not decision:
        raise PageError(422, v._("Please choose a decision."))
    from starlette.concurrency import run_in_threadpool

    try:
        await run_in_threadpool(decisions.complete, v.hub, task_id, decision, remark, owner=v.user.agency, by=v.user.actor)
    except Refusal as exc:
        if exc.status == 404:
            raise PageError(404, v._("No such task is yours.")) from None
        raise PageError(exc.status, exc.detail) from None
    return v.back(back, "task-done")
