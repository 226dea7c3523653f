"""Operator endpoints of the master person index: the review queue, persons, merge and unmerge, and
the data conflicts of master data (docs/identity.md).

Only operators reach them: providers may not query the person index at all (§ 79 SGB X), and every
access is written to the audit log. A data conflict is a review of its own kind: not "same person?"
(confirm or reject) but "which value?" (pick a or b), so it has its own list and decision beside the
match reviews, under the same prefix, roles and audit.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Security
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field

from hub.api.auth import caller
from hub.api.openapi import BEARER, problems
from hub.dedup import master_data
from hub.pipeline.master_data import resolve_conflict
from hub.store import db
from hub.findings import Refusal
from hub.store.history import audit
from hub.partners import Partner

router = APIRouter(prefix="/v1/persons", tags=["persons (operators)"])


async def operator(request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None) -> Partner:
    """The authenticated operator, or 401/403 (the bearer dependency documents the scheme)."""
    partner = await caller(request)
    if not partner.is_operator:
        raise Refusal("forbidden", "Only operators may use the person index")
    return partner


Operator = Annotated[Partner, Depends(operator)]


def _index(request: Request):  # type: ignore[no-untyped-def]
    index = request.app.state.hub.person_index
    if index is None:
        raise Refusal("not-found", "No master person index is configured (contracts/dedup/model.json)")
    return index


@router.get("/reviews", summary="Matches waiting for an operator's decision", responses=problems(400, 401, 403, 404, 503))
def reviews(request: Request, who: Operator, status: Annotated[str, Query(pattern="^(open|confirmed|rejected)$")] = "open") -> dict[str, Any]:
    hub = request.app.state.hub
    with db.write(hub.engine) as conn:
        items = _index(request).reviews(conn, status)
        audit(conn, who.id, "reviews-read", count=len(items))
    return {"reviews": items, "count": len(items)}


def _decide(request: Request, review_id: str, who: Partner, confirm: bool) -> dict[str, Any]:
    hub = request.app.state.hub
    with db.write(hub.engine) as conn:
        result = _index(request).decide(conn, review_id, confirm, who.id)
        audit(conn, who.id, "review-confirmed" if confirm else "review-rejected", review=review_id)
    return result


@router.post("/reviews/{review_id}/confirm", summary="Same person: merge the record's person into the candidate", responses=problems(401, 403, 404, 409, 503))
def confirm(review_id: str, request: Request, who: Operator) -> dict[str, Any]:
    return _decide(request, review_id, who, True)


@router.post("/reviews/{review_id}/reject", summary="Different persons: keep them apart", responses=problems(401, 403, 404, 409, 503))
def reject(review_id: str, request: Request, who: Operator) -> dict[str, Any]:
    return _decide(request, review_id, who, False)


@router.get("/conflicts", summary="Master data two partners changed concurrently, waiting for an operator", responses=problems(400, 401, 403, 503))
def conflicts(request: Request, who: Operator, status: Annotated[str, Query(pattern="^(open|resolved)$")] = "open") -> dict[str, Any]:
    hub = request.app.state.hub
    with db.write(hub.engine) as conn:
        items = master_data.conflicts(conn, status)
        audit(conn, who.id, "conflicts-read", count=len(items))
    return {"conflicts": items, "count": len(items)}


class Pick(BaseModel):
    """The operator's decision of a data conflict."""

    model_config = ConfigDict(extra="forbid")
    pick: str = Field(pattern="^[ab]$", description="a: the hub's value (the earlier change); b: the concurrent change", examples=["b"])


@router.post(
    "/conflicts/{conflict_id}/resolve", summary="Decide a data conflict: the picked value is applied and forwarded to the partners that hold another",
    responses=problems(400, 401, 403, 404, 409, 503),
)
def resolve(conflict_id: str, decision: Pick, request: Request, who: Operator) -> dict[str, Any]:
    hub = request.app.state.hub
    with db.write(hub.engine) as conn:
        return resolve_conflict(hub, conn, conflict_id, decision.pick, who.id)


@router.get("/{person_id}", summary="A person: records, id cross-reference and history", responses=problems(401, 403, 404, 503))
def person(person_id: str, request: Request, who: Operator) -> dict[str, Any]:
    hub = request.app.state.hub
    with db.write(hub.engine) as conn:
        view = _index(request).person(conn, person_id)
        audit(conn, who.id, "person-read", person=person_id)
    return view


@router.post("/{person_id}/unmerge", summary="Undo the merge of this person into another", responses=problems(401, 403, 404, 409, 503))
def unmerge(person_id: str, request: Request, who: Operator) -> dict[str, Any]:
    hub = request.app.state.hub
    with db.write(hub.engine) as conn:
        _index(request).unmerge(conn, person_id, who.id)
        audit(conn, who.id, "person-unmerged", person=person_id)
        return _index(request).person(conn, person_id)
