"""Dead letters for operators: what the hub gave up on, filtered, and replaying one or all matching.

The list and the bulk replay are hub.store.dead_letters', the same as `hub messages dead` and
`hub messages replay --all`: replaying all matching first shows how many it will replay and asks to
confirm; it works in batches, leaves out what was replayed already (unless asked), and a message
delivered meanwhile is refused by the replay itself, with nothing changed, and counted as skipped.
"""

from __future__ import annotations

import urllib.parse

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from hub.console.web import Operator, PageError, Visit, as_local_midnight, posted
from hub.findings import Refusal
from hub.store import dead_letters
from hub.store.history import audit

router = APIRouter()

FIELDS = ("partner", "message_type", "reason", "queue", "at_from", "at_to", "include_replayed", "cursor")


def _filter(v: Visit, given: dict[str, str]) -> dead_letters.DeadLetterFilter:
    wanted = as_local_midnight({k: val for k, val in given.items() if k in FIELDS and val != ""}, ("at_from",), ("at_to",))
    try:
        return dead_letters.DeadLetterFilter.parse(**wanted)
    except Refusal as exc:
        raise PageError(400, exc.detail) from None


@router.get("/dead", include_in_schema=False)
def dead(request: Request, v: Operator) -> Response:
    f = _filter(v, dict(request.query_params))
    with v.read() as conn:
        found = dead_letters.page(conn, f)
        total = dead_letters.count(conn, f.model_copy(update={"cursor": None}), replayed=None if f.include_replayed else False)
    more = None
    if found.next_cursor:
        more = urllib.parse.urlencode({**{k: x for k, x in request.query_params.items() if k != "cursor"}, "cursor": found.next_cursor})
    return v.page("dead.html", dead=found.items, total=total, more=more)


@router.post("/dead/replay", include_in_schema=False)
async def replay_matching(request: Request, v: Operator) -> Response:
    """First step: how many would be replayed (confirm); second step (`confirmed`): replay them."""
    fields = await posted(request, v)
    f = _filter(v, {k: x for k, x in fields.items() if k != "cursor"})
    with v.read() as conn:
        todo = dead_letters.count(conn, f, replayed=None if f.include_replayed else False)
        already = 0 if f.include_replayed else dead_letters.count(conn, f, replayed=True)
    if fields.get("confirmed") != str(todo):
        # the count confirmed must be the count now: a filter that matches more meanwhile asks again
        return v.page("dead_confirm.html", todo=todo, already=already, fields={k: x for k, x in fields.items() if k in FIELDS and x})
    result = await run_in_threadpool(dead_letters.replay_matching, v.hub.engine, f, v.user.actor, v.hub.transport)
    with v.write() as conn:
        audit(conn, v.user.actor, "replayed-matching", purpose="betrieb", replayed=result.replayed, skipped=result.skipped_processed + result.skipped_replayed)
    if not result.replayed and not todo:
        raise PageError(409, v._("Nothing matches that has not been replayed already."))
    skipped = result.skipped_processed + result.skipped_replayed + result.skipped_no_message
    return v.back(f"/ops/dead?n={result.replayed}&skipped={skipped}", "replay-done")
