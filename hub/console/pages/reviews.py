"""Identity reviews for operators: the two records side by side with the comparison levels that
decided, confirm or reject, a person's merge history and unmerge.

The same index functions as `/v1/persons/reviews` (hub.dedup): the person index decides who wins
when two operators decide at once; every read and decision is an audit entry (§ 80 SGB X).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from hub.console.web import Operator, PageError, Visit, posted
from hub.findings import Refusal
from hub.store.history import audit

router = APIRouter()

#: the fields shown side by side, in this order
FIELDS = ("given_name", "family_name", "birth_name", "birth_date", "sex", "street", "house_number", "postcode", "city", "nationality", "bg_number")


def _index(v: Visit):  # type: ignore[no-untyped-def]
    if v.hub.person_index is None:
        raise PageError(404, v._("No master person index is configured."))
    return v.hub.person_index


@router.get("/reviews", include_in_schema=False)
def reviews(v: Operator) -> Response:
    with v.write() as conn:
        items = _index(v).reviews(conn, "open")
        audit(conn, v.user.actor, "reviews-read", count=len(items))
    return v.page("reviews.html", reviews=items, fields=FIELDS)


@router.post("/reviews/{review_id}/{decision}", include_in_schema=False)
async def decide(request: Request, review_id: str, decision: str, v: Operator) -> Response:
    await posted(request, v)
    if decision not in ("confirm", "reject"):
        raise PageError(404, v._("Unknown decision."))
    confirm = decision == "confirm"
    try:
        with v.write() as conn:
            _index(v).decide(conn, review_id, confirm, v.user.actor)
            audit(conn, v.user.actor, "review-confirmed" if confirm else "review-rejected", review=review_id)
    except Refusal as exc:
        raise PageError(exc.status, v._("This review was already decided.") if exc.status == 409 else v._("There is no such review.")) from None
    return v.back("/ops/reviews", "review-confirmed" if confirm else "review-rejected")


@router.get("/persons/{person_id}", include_in_schema=False)
def person(person_id: str, v: Operator) -> Response:
    with v.write() as conn:
        try:
            view = _index(v).person(conn, person_id)
        except Refusal:
            raise PageError(404, v._("There is no such person.")) from None
        audit(conn, v.user.actor, "person-read", person=person_id)
    return v.page("person.html", person=view, fields=FIELDS)


@router.post("/persons/{person_id}/unmerge", include_in_schema=False)
async def unmerge(request: Request, person_id: str, v: Operator) -> Response:
    await posted(request, v)
    try:
        with v.write() as conn:
            _index(v).unmerge(conn, person_id, v.user.actor)
            audit(conn, v.user.actor, "person-unmerged", person=person_id)
    except Refusal as exc:
        raise PageError(exc.status, v._("This person is not merged into another.") if exc.status == 409 else v._("There is no such person.")) from None
    return v.back(f"/ops/persons/{person_id}", "unmerged")
