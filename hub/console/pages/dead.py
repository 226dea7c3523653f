"""Dead letters for operators: what the hub gave up on, and replaying it.

Replaying is `message_store.replay`, the same as `hub messages replay`: a dead delivery is pushed
again, a message the pipeline gave up on runs through it again; one already delivered is refused
with a sentence, and nothing changes.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from hub.console.web import Operator
from hub.store import message_store

router = APIRouter()


@router.get("/dead", include_in_schema=False)
def dead(v: Operator) -> Response:
    with v.read() as conn:
        found = message_store.dead_list(conn, limit=200)
    return v.page("dead.html", dead=found)
