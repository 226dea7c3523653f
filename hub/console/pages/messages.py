"""A message for operators: its timeline of stages with the history entries, its deliveries, and
-- on a stated reason -- its content.

The timeline is `message_store.message_view`, the same as `GET /v1/messages/{id}` for an operator.
The content holds personal data: only operators open it, each time with a reason from a fixed list,
and each opening is an audit entry naming the reason (§ 67d, § 80 SGB X).
"""

from __future__ import annotations

import urllib.parse
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from hub.console.web import SECURITY_HEADERS, Operator, PageError, as_local_midnight, posted
from hub.findings import Refusal
from hub.store import message_store, search
from hub.store.history import audit

router = APIRouter()

ID = r"^[0-9A-Za-z]{1,40}$"
#: why an operator may open a message's content (the audit entry names it)
REASONS = ("fault-analysis", "partner-enquiry", "data-protection-request")


@router.get("/messages/go", include_in_schema=False)
def go(v: Operator, id: Annotated[str, Query(max_length=40)] = "") -> Response:
    return RedirectResponse(f"/ops/messages/{id.strip()}", status_code=303, headers=SECURITY_HEADERS)


@router.get("/messages/{message_id}", include_in_schema=False)
def message(message_id: str, v: Operator) -> Response:
    with v.write() as conn:
        try:
            view = message_store.message_view(conn, message_id, None)
        except Refusal:
            raise PageError(404, v._("There is no message %(id)s.", id=message_id[:40])) from None
        audit(conn, v.user.actor, "message-read", message_id=message_id)
    return v.page("message.html", m=view, reasons=REASONS)


@router.get("/messages/{message_id}/content", include_in_schema=False)
def content(message_id: str, v: Operator, reason: Annotated[str, Query(max_length=40)] = "") -> Response:
    if reason not in REASONS:
        raise PageError(400, v._("Please choose why you open the content."))
    with v.write() as conn:
        try:
            fmt, raw = message_store.raw_content(conn, message_id)
        except Refusal:
            raise PageError(404, v._("There is no message %(id)s.", id=message_id[:40])) from None
        audit(conn, v.user.actor, "message-content-read", message_id=message_id, purpose="betrieb", reason=reason)
    text = raw.decode("utf-8", errors="replace") if raw is not None else None
    return v.page("message_content.html", message_id=message_id, fmt=fmt, text=text, reason=reason)


@router.post("/messages/{message_id}/replay", include_in_schema=False)
async def replay(request: Request, message_id: str, v: Operator) -> Response:
    await posted(request, v)
    try:
        with v.write() as conn:
            message_store.replay(conn, message_id, v.user.actor, v.hub.transport)
    except Refusal as exc:
        raise PageError(exc.status, exc.detail if exc.status != 404 else v._("There is no message %(id)s.", id=message_id[:40])) from None
    return v.back(f"/ops/messages/{message_id}", "replayed")


@router.get("/messages", include_in_schema=False)
def search_page(request: Request, v: Operator) -> Response:
    """Search by id, partner, type, status, case reference and time: hub.store.search over metadata.
    A search over several filters looks back in slices within a time budget; the page then says how
    far back it looked and offers to go on."""
    wanted = as_local_midnight({k: val for k, val in request.query_params.items() if k in FILTER_FIELDS and val != ""},
                               ("received_from",), ("received_to",))
    try:
        f = search.MessageFilter.parse(**wanted)
    except Refusal as exc:
        raise PageError(400, exc.detail) from None
    page = None
    if wanted:
        with v.write() as conn:
            page = search.search(conn, f)
            audit(conn, v.user.actor, "messages-searched", count=len(page.items))
    more = None
    if page and page.next_cursor:
        more = urllib.parse.urlencode({**{k: val for k, val in request.query_params.items() if k != "cursor"}, "cursor": page.next_cursor})
    return v.page("messages.html", page=page, more=more, statuses=STATUSES)


FILTER_FIELDS = ("id", "partner", "role", "message_type", "status", "case_ref", "received_from", "received_to", "limit", "cursor")
STATUSES = ("received", "routed", "rejected", "duplicate", "delivered", "dead")
